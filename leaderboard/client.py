"""The typed async client of all four services.

Used by the CLI, the benchmarks, the tests and by the services themselves
(scores -> ranking, everyone -> auth's signing keys). Every unary call has a
deadline (service config `timeout`), and UNAVAILABLE is retried by gRPC's own
retry policy; SubmitScore is safe to retry because it is idempotent by
request_id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from leaderboard.runtime.config import Settings
from leaderboard.runtime.errors import STATUS_DETAILS_KEY
from leaderboard.v1 import auth_pb2_grpc, ranking_pb2_grpc, reports_pb2_grpc, scores_pb2_grpc

SERVICE_NAMES = {
    "auth": "leaderboard.v1.AuthService",
    "scores": "leaderboard.v1.ScoreService",
    "ranking": "leaderboard.v1.RankingService",
    "reports": "leaderboard.v1.ReportService",
}

_RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def error_details(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """The ErrorInfo (reason, metadata) of a failed call; ("", {}) when it has none."""
    trailing = cast(Sequence[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}


def service_config(timeout_seconds: float) -> str:
    return json.dumps(
        {
            # Spreads calls over every address a `dns:///` target resolves to (replicas).
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": name} for name in SERVICE_NAMES.values()],
                    "retryPolicy": _RETRY,
                    "timeout": f"{timeout_seconds:.3f}s",
                },
                # Streams live as long as the subscriber wants: no default deadline.
                {
                    "name": [{"service": SERVICE_NAMES["ranking"], "method": "SubscribeRankUpdates"}],
                    "retryPolicy": _RETRY,
                },
            ],
        }
    )


def channel_options(timeout_seconds: float) -> list[tuple[str, str | int]]:
    return [
        ("grpc.service_config", service_config(timeout_seconds)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]


def open_channel(target: str, timeout_seconds: float = 10.0) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=channel_options(timeout_seconds))


@dataclass
class Client:
    """Stubs of the four services over shared channels, plus the caller's token.

    Pass `client.metadata` to each call: `await c.ranking.GetUserRank(req, metadata=c.metadata)`.
    """

    targets: dict[str, str]
    timeout_seconds: float = 10.0
    token: str | None = None
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, token: str | None = None) -> Client:
        return cls(
            targets={name: settings.target(name) for name in SERVICE_NAMES},
            timeout_seconds=settings.rpc_timeout_seconds,
            token=token,
        )

    def channel(self, service: str) -> grpc.aio.Channel:
        channel = self._channels.get(service)
        if channel is None:
            channel = open_channel(self.targets[service], self.timeout_seconds)
            self._channels[service] = channel
        return channel

    @cached_property
    def auth(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return auth_pb2_grpc.AuthServiceStub(self.channel("auth"))

    @cached_property
    def scores(self) -> scores_pb2_grpc.ScoreServiceAsyncStub:
        return scores_pb2_grpc.ScoreServiceStub(self.channel("scores"))

    @cached_property
    def ranking(self) -> ranking_pb2_grpc.RankingServiceAsyncStub:
        return ranking_pb2_grpc.RankingServiceStub(self.channel("ranking"))

    @cached_property
    def reports(self) -> reports_pb2_grpc.ReportServiceAsyncStub:
        return reports_pb2_grpc.ReportServiceStub(self.channel("reports"))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def with_token(self, token: str | None) -> Client:
        """Same channels, another caller."""
        return Client(self.targets, self.timeout_seconds, token, self._channels)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
