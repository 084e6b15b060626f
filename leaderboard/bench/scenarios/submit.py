"""`submit`: unary SubmitScore by a game server for random players, each acknowledged after commit."""

from __future__ import annotations

import random
from typing import ClassVar

from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import Workload, WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.seed import Population
from leaderboard.client import Client
from leaderboard.runtime.ids import random_uuid4
from leaderboard.v1 import scores_pb2


class NotAppliedError(Exception):
    """Acknowledged (committed) but not yet applied by ranking; counted as an error."""


class ServiceCall(Workload):
    """A workload that calls our services with a token, over its own channels."""

    def __init__(self, targets: dict[str, str], token: str) -> None:
        super().__init__()
        self.targets = targets
        self.token = token
        self.rng = random.Random()

    async def open(self) -> None:
        self.client = Client(self.targets, token=self.token)
        self.metadata = self.client.metadata

    async def close(self) -> None:
        await self.client.close()


class SubmitCall(ServiceCall):
    method = "ScoreService.SubmitScore"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, players: int, population_base: int) -> None:
        super().__init__(targets, token)
        self.board_id = board_id
        self.population = Population(players, population_base)

    async def call(self) -> int:
        request = scores_pb2.SubmitScoreRequest(
            leaderboard_id=self.board_id,
            score=self.rng.randrange(1_000_000_000),
            request_id=random_uuid4(self.rng),  # unique: every call is a new submission, never a replay
            user_id=self.population.random_user_id(self.rng),
        )
        reply = await self.client.scores.SubmitScore(request, metadata=self.metadata)
        if not reply.applied:
            raise NotAppliedError  # durable, but ranked later by the relay: not done end to end
        return 1


class SubmitScenario(Scenario):
    name = "submit"
    baseline = "echo"
    default_concurrency: ClassVar[tuple[int, ...]] = (64,)
    concurrency_under_all: ClassVar[tuple[int, ...] | None] = (64, 256)  # issue 6's two points
    uses_players = True
    # What a subclass changes: the workload class (in its own module) and what an item is.
    workload: ClassVar[str] = f"{__name__}:SubmitCall"
    unit: ClassVar[str] = "req"

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        await ctx.server()
        # Every run submits for the same --players players, whose entries exist from the
        # start: each run of a point measures a board of that size in the same state. (A
        # new population per run had grown the board by --players a run: the third run of
        # `batch-submit` wrote to a board of ~300,000 players, and Valkey's cost per event
        # grew with it.)
        return await ctx.seed_notes(params.players, self.name)

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        server = await ctx.server()
        board = await ctx.seeded_board(params.players, self.name)
        if board.population.size == 0:
            raise RuntimeError("seeding stored no player")
        spec = WorkloadSpec(
            self.workload,
            {
                "targets": ctx.targets,
                "token": server.token,
                "board_id": board.board_id,
                "players": board.population.size,
                "population_base": board.population.base,
            },
        )
        recording = await ctx.load(self.name, spec, concurrency=params.concurrency, processes=params.processes)
        return [Measured(self.name, recording, unit=self.unit)]
