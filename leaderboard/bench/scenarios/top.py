"""`top`: ListTopEntries(page_size=10) on the board `rank` seeded (seeded once, shared)."""

from __future__ import annotations

from leaderboard.bench.context import BenchContext, SeededBoard
from leaderboard.bench.runner import WorkloadSpec
from leaderboard.bench.scenarios.rank import SeededBoardScenario
from leaderboard.bench.scenarios.submit import ServiceCall
from leaderboard.v1 import ranking_pb2


class TopEntriesCall(ServiceCall):
    method = "RankingService.ListTopEntries"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, page_size: int = 10) -> None:
        super().__init__(targets, token)
        self.request = ranking_pb2.ListTopEntriesRequest(leaderboard_id=board_id, page_size=page_size)

    async def call(self) -> int:
        await self.client.ranking.ListTopEntries(self.request, metadata=self.metadata)
        return 1


class TopScenario(SeededBoardScenario):
    name = "top"

    def spec(self, ctx: BenchContext, token: str, board: SeededBoard) -> WorkloadSpec:
        return WorkloadSpec(
            f"{__name__}:TopEntriesCall", {"targets": ctx.targets, "token": token, "board_id": board.board_id}
        )
