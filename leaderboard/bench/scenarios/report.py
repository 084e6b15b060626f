"""`report`: GenerateTopPlayersReport (top 100) over a score history seeded through BatchSubmitScores."""

from __future__ import annotations

import time
from typing import ClassVar

from google.protobuf.timestamp_pb2 import Timestamp

from leaderboard.bench.availability import require
from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.scenarios.submit import ServiceCall
from leaderboard.bench.seed import Population, seed_history
from leaderboard.v1 import reports_pb2

# History size: --players events (at most this many) by a fifth as many players.
MAX_HISTORY = 200_000
LIMIT = 100


class TopPlayersReportCall(ServiceCall):
    method = "ReportService.GenerateTopPlayersReport"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, start: float, end: float) -> None:
        super().__init__(targets, token)
        self.request = self.request_for(board_id, start, end)

    @staticmethod
    def request_for(board_id: str, start: float, end: float) -> reports_pb2.GenerateTopPlayersReportRequest:
        return reports_pb2.GenerateTopPlayersReportRequest(
            leaderboard_id=board_id,
            start_time=Timestamp(seconds=int(start)),
            end_time=Timestamp(seconds=int(end)),
            limit=LIMIT,
        )

    async def call(self) -> int:
        await self.client.reports.GenerateTopPlayersReport(self.request, metadata=self.metadata)
        return 1


class ReportScenario(Scenario):
    name = "report"
    default_concurrency: ClassVar[tuple[int, ...]] = (4,)
    uses_players = True

    def __init__(self) -> None:
        self.boards: dict[int, tuple[str, float]] = {}

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        if params.players in self.boards:
            return []
        board_id = await ctx.create_board("report")
        admin, server = await ctx.admin(), await ctx.server()
        # Ask once on the empty board: no point seeding a history for an RPC that is not there yet.
        probe = TopPlayersReportCall.request_for(board_id, time.time() - 60, time.time())
        await require(
            TopPlayersReportCall.method, admin.reports.GenerateTopPlayersReport(probe, metadata=admin.metadata)
        )
        events = min(params.players, MAX_HISTORY)
        started = time.time()
        task = ctx.progress.add_task(f"seeding a history of {events:,} submissions", total=events, requests=0)
        try:
            result = await seed_history(
                server,
                board_id,
                Population(max(1, events // 5)),
                events,
                time_limit_s=ctx.options.seed_seconds,
                progress=lambda done, _total: ctx.progress.update(task, completed=done, requests=done),
            )
        finally:
            ctx.progress.remove_task(task)
        self.boards[params.players] = (board_id, started)
        notes = [
            f"history: {result.done:,} submissions by {max(1, events // 5):,} players via BatchSubmitScores "
            f"in {result.seconds:.1f} s ({result.per_second:,.0f}/s)"
        ]
        if result.errors:
            notes.append(f"seeding item errors: {result.errors}")
        return notes

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        board_id, started = self.boards[params.players]
        admin = await ctx.admin()
        assert admin.token is not None
        spec = WorkloadSpec(
            f"{__name__}:TopPlayersReportCall",
            {
                "targets": ctx.targets,
                "token": admin.token,
                "board_id": board_id,
                "start": started - 3600,
                "end": time.time() + 3600,
            },
        )
        recording = await ctx.load("report", spec, concurrency=params.concurrency, processes=params.processes)
        return [Measured("report", recording, unit="reports")]
