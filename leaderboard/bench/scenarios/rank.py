"""`rank`: GetUserRank of random players on a board seeded with --players (1M under `all`)."""

from __future__ import annotations

from typing import ClassVar

from leaderboard.bench.context import BenchContext, SeededBoard
from leaderboard.bench.runner import WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.scenarios.submit import ServiceCall
from leaderboard.bench.seed import Population
from leaderboard.v1 import ranking_pb2


class UserRankCall(ServiceCall):
    method = "RankingService.GetUserRank"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, players: int, population_base: int) -> None:
        super().__init__(targets, token)
        self.board_id = board_id
        self.population = Population(players, population_base)

    async def call(self) -> int:
        request = ranking_pb2.GetUserRankRequest(
            leaderboard_id=self.board_id, user_id=self.population.random_user_id(self.rng)
        )
        await self.client.ranking.GetUserRank(request, metadata=self.metadata)
        return 1


class SeededBoardScenario(Scenario):
    uses_players = True
    players_under_all = 1_000_000
    baseline = "echo"
    default_concurrency: ClassVar[tuple[int, ...]] = (64,)

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        return await ctx.seed_notes(params.players)

    def spec(self, ctx: BenchContext, token: str, board: SeededBoard) -> WorkloadSpec:
        raise NotImplementedError

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        board = await ctx.seeded_board(params.players)
        if board.population.size == 0:
            raise RuntimeError("seeding stored no player")
        server = await ctx.server()
        assert server.token is not None
        recording = await ctx.load(
            self.name, self.spec(ctx, server.token, board), concurrency=params.concurrency, processes=params.processes
        )
        return [Measured(self.name, recording)]


class RankScenario(SeededBoardScenario):
    name = "rank"

    def spec(self, ctx: BenchContext, token: str, board: SeededBoard) -> WorkloadSpec:
        return WorkloadSpec(
            f"{__name__}:UserRankCall",
            {
                "targets": ctx.targets,
                "token": token,
                "board_id": board.board_id,
                "players": board.population.size,
                "population_base": board.population.base,
            },
        )
