"""Wiring of RankingService: what `leaderboard serve ranking` runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

from leaderboard.runtime.errors import Unavailable
from leaderboard.runtime.redis_store import wait_until_ready
from leaderboard.runtime.server import Runtime
from leaderboard.runtime.service_token import ServiceToken
from leaderboard.v1 import ranking_pb2_grpc, scores_pb2
from services.ranking.catalog import GLOBAL_ID, CatalogCache
from services.ranking.catalog_store import CatalogStore
from services.ranking.rank_store import RankStore
from services.ranking.ranking import Ranking, ScoreEvent
from services.ranking.servicer import RankingServicer

# A rebuild streams a board's whole history; it may take long.
HISTORY_TIMEOUT_SECONDS = 3600.0
# A restarted Redis reads its dataset back before it answers (seconds per GB).
REDIS_STARTUP_WAIT_SECONDS = 300.0


class RankingServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.catalog_store = CatalogStore(runtime.sessions)
        self.catalog = CatalogCache(self.catalog_store.get, ttl_seconds=settings.ranking_catalog_cache_seconds)
        self.store = RankStore(
            runtime.redis,
            settings.redis_key_prefix,
            page_ttl_ms=settings.ranking_page_token_ttl_seconds * 1000,
        )
        self.token = ServiceToken(runtime.client, "ranking", settings.internal_secret)
        self.ranking = Ranking(
            self.catalog,
            self.catalog_store,
            self.store,
            default_retention=settings.window_retention_periods,
            dedup_window_seconds=settings.ranking_dedup_window_seconds,
            history=self.history,
        )
        self.servicer = RankingServicer(self.catalog, self.catalog_store, self.ranking)

    async def history(self, board_id: str) -> AsyncIterator[Sequence[ScoreEvent]]:
        """A board's score history from ScoreService, in commit order."""
        try:
            call = self.runtime.client.scores.StreamScoreEvents(
                scores_pb2.StreamScoreEventsRequest(leaderboard_id=board_id),
                metadata=await self.token.metadata(),
                timeout=HISTORY_TIMEOUT_SECONDS,
            )
            async for chunk in call:
                yield [
                    ScoreEvent(
                        e.event_id,
                        e.leaderboard_id,
                        e.user_id,
                        e.score,
                        e.achieved_at.seconds * 1000 + e.achieved_at.nanos // 1_000_000,
                        e.display_name,
                    )
                    for e in chunk.events
                ]
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                self.token.invalidate()
            raise Unavailable(
                f"score history unavailable: {exc.code().name}: {exc.details()}", reason="HISTORY_UNAVAILABLE"
            ) from None

    def register(self, server: grpc.aio.Server) -> None:
        ranking_pb2_grpc.add_RankingServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await wait_until_ready(self.runtime.redis, REDIS_STARTUP_WAIT_SECONDS)
        await self.store.load_scripts()
        await self.store.init_board(GLOBAL_ID)

    async def stop(self) -> None:
        await self.ranking.close()
        self.store.close()


async def create_service(runtime: Runtime) -> RankingServiceApp:
    return RankingServiceApp(runtime)
