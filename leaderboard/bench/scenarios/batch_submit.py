"""`batch-submit`: BatchSubmitScores of 1,000 submissions per call; figures in submissions/s."""

from __future__ import annotations

import uuid
from typing import ClassVar

import grpc

from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.scenarios.submit import ServiceCall
from leaderboard.bench.seed import BATCH, Population
from leaderboard.v1 import scores_pb2

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class BatchSubmitCall(ServiceCall):
    method = "ScoreService.BatchSubmitScores"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, players: int, population_base: int) -> None:
        super().__init__(targets, token)
        self.board_id = board_id
        self.population = Population(players, population_base)

    async def call(self) -> int:
        request = scores_pb2.BatchSubmitScoresRequest()
        for _ in range(BATCH):
            request.requests.add(
                leaderboard_id=self.board_id,
                score=self.rng.randrange(1_000_000_000),
                request_id=str(uuid.uuid4()),
                user_id=self.population.random_user_id(self.rng),
            )
        reply = await self.client.scores.BatchSubmitScores(request, metadata=self.metadata)
        ok = 0
        for result in reply.results:
            if result.code == 0:
                ok += 1
            else:
                self.item_errors[_CODE_NAMES.get(result.code, str(result.code))] += 1
        return ok


class BatchSubmitScenario(Scenario):
    name = "batch-submit"
    baseline = "redis"
    default_concurrency: ClassVar[tuple[int, ...]] = (4,)
    uses_players = True

    def __init__(self) -> None:
        self.board_id = ""

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        await ctx.server()
        if not self.board_id:
            self.board_id = await ctx.create_board("batch")
        return []

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        server = await ctx.server()
        population = Population(params.players)
        spec = WorkloadSpec(
            f"{__name__}:BatchSubmitCall",
            {
                "targets": ctx.targets,
                "token": server.token,
                "board_id": self.board_id,
                "players": population.size,
                "population_base": population.base,
            },
        )
        recording = await ctx.load("batch-submit", spec, concurrency=params.concurrency, processes=params.processes)
        return [Measured("batch-submit", recording, unit="submissions")]
