"""Wiring of ScoreService: what `leaderboard serve scores` runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from leaderboard.runtime.server import Runtime
from leaderboard.runtime.service_token import ServiceToken
from leaderboard.v1 import scores_pb2_grpc
from services.scores.batcher import SubmitBatcher, now_ms
from services.scores.outbox_relay import OutboxRelay
from services.scores.ranking_link import RankingLink
from services.scores.rate_limit import RateLimiter
from services.scores.score_store import ScoreStore
from services.scores.servicer import ScoreServicer

log = logging.getLogger("leaderboard.scores")

PARTITION_CHECK_SECONDS = 6 * 3600


class ScoreServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.store = ScoreStore(runtime.engine, timeout_seconds=settings.db_timeout_seconds)
        token = ServiceToken(runtime.client, "scores", settings.internal_secret)
        self.ranking = RankingLink(runtime.client, token)
        self.batcher = SubmitBatcher(
            self.store,
            self.ranking,
            linger_seconds=settings.batch_linger_ms / 1000,
            max_batch=settings.batch_max_size,
        )
        self.relay = OutboxRelay(self.store, self.ranking)
        limiter = RateLimiter(settings.submit_rate_per_second, 2 * settings.submit_rate_per_second)
        self.servicer = ScoreServicer(self.store, self.ranking, self.batcher, limiter)
        self._maintenance: asyncio.Task[None] | None = None

    def register(self, server: grpc.aio.Server) -> None:
        scores_pb2_grpc.add_ScoreServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.store.ensure_partitions(now_ms())
        await self.batcher.start()
        await self.relay.start()
        self._maintenance = asyncio.create_task(self._partitions_loop(), name="partitions")

    async def _partitions_loop(self) -> None:
        while True:
            await asyncio.sleep(PARTITION_CHECK_SECONDS)
            try:
                await self.store.ensure_partitions(now_ms())
            except Exception:
                log.warning("partition maintenance failed", exc_info=True)

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self.relay.stop()
        await self.batcher.stop()


async def create_service(runtime: Runtime) -> ScoreServiceApp:
    return ScoreServiceApp(runtime)
