"""Wiring of ScoreService: what `leaderboard serve scores` runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

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
PURGE_SECONDS = 600


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
            min_interval_seconds=settings.batch_min_interval_ms / 1000,
        )
        self.relay = OutboxRelay(self.store, self.ranking)
        limiter = RateLimiter(settings.submit_rate_per_second, 2 * settings.submit_rate_per_second)
        self.servicer = ScoreServicer(self.store, self.ranking, self.batcher, limiter)
        self._retention = timedelta(hours=settings.request_id_retention_hours)
        self._maintenance: list[asyncio.Task[None]] = []

    def register(self, server: grpc.aio.Server) -> None:
        scores_pb2_grpc.add_ScoreServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.store.ensure_partitions(now_ms())
        await self.batcher.start()
        await self.relay.start()
        self._maintenance.append(
            asyncio.create_task(self._every(PARTITION_CHECK_SECONDS, self._partitions), name="partitions")
        )
        if self._retention:
            self._maintenance.append(asyncio.create_task(self._every(PURGE_SECONDS, self._purge), name="purge"))

    async def _partitions(self) -> None:
        await self.store.ensure_partitions(now_ms())

    async def _purge(self) -> None:
        purged = await self.store.purge_requests(now_ms() - self._retention)
        if purged:
            log.info("forgot %d request ids older than %s", purged, self._retention)

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.warning("%s failed", job.__name__.strip("_"), exc_info=True)

    async def stop(self) -> None:
        for task in self._maintenance:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.relay.stop()
        await self.batcher.stop()
        await self.store.close()


async def create_service(runtime: Runtime) -> ScoreServiceApp:
    return ScoreServiceApp(runtime)
