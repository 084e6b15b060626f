"""`echo`: a bare grpc.aio unary echo in its own process, the ceiling of Python gRPC here."""

from __future__ import annotations

from typing import ClassVar

import grpc

from leaderboard.bench.context import BenchContext
from leaderboard.bench.echo_server import ECHO_METHOD
from leaderboard.bench.runner import Workload, WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.client import channel_options

# About the size of our small requests (a SubmitScoreRequest with two UUIDs is ~100 bytes).
PAYLOAD_BYTES = 100


class EchoCall(Workload):
    method = "leaderboard.bench.EchoService.Echo"

    def __init__(self, target: str, payload_bytes: int = PAYLOAD_BYTES) -> None:
        super().__init__()
        self.target = target
        self.payload = b"x" * payload_bytes
        self.channel: grpc.aio.Channel | None = None

    async def open(self) -> None:
        # The same channel options as the project's client, so only the server differs.
        self.channel = grpc.aio.insecure_channel(self.target, options=channel_options(10.0))
        self.echo = self.channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)

    async def call(self) -> int:
        await self.echo(self.payload, timeout=10.0)
        return 1

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)


def echo_spec(target: str) -> WorkloadSpec:
    return WorkloadSpec(f"{__name__}:EchoCall", {"target": target})


class EchoScenario(Scenario):
    name = "echo"
    default_concurrency: ClassVar[tuple[int, ...]] = (64,)

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        spec = echo_spec(await ctx.echo_target())
        recording = await ctx.load("echo", spec, concurrency=params.concurrency, processes=params.processes)
        return [Measured("echo", recording)]
