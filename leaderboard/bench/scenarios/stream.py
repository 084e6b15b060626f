"""`stream`: N subscribers of SubscribeRankUpdates while game servers submit.

Measures what a player watching a leaderboard sees: the time from a
submission's acknowledgement to its appearance on every subscriber's stream.
Each submission gets a higher score than all before it, so it becomes the new
#1 and every subscriber's top list must show it; the latency of one delivery
is its receipt time minus the submit's ack time (the same clock: one
process). Updates are coalesced per tick, so submissions replaced within a
tick are never delivered; those that are give the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from typing import ClassVar

import grpc

from leaderboard.bench.availability import NotImplementedYet
from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import Recording, Workload
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.stats import summarize
from leaderboard.client import Client
from leaderboard.v1 import ranking_pb2, scores_pb2

TOP_N = 10
SNAPSHOT_TIMEOUT_S = 20.0


class RisingSubmitCall(Workload):
    """SubmitScore with ever higher scores; remembers when each was acknowledged."""

    method = "ScoreService.SubmitScore"

    def __init__(self, client: Client, board_id: str) -> None:
        super().__init__()
        self.client = client
        self.board_id = board_id
        self.sent: dict[int, float] = {}
        self.acks: dict[int, float] = {}
        self.scores = itertools.count(1_000_000)

    async def call(self) -> int:
        score = next(self.scores)
        request = scores_pb2.SubmitScoreRequest(
            leaderboard_id=self.board_id, score=score, request_id=str(uuid.uuid4()), user_id=str(uuid.uuid4())
        )
        self.sent[score] = time.perf_counter()
        await self.client.scores.SubmitScore(request, metadata=self.client.metadata)
        self.acks[score] = time.perf_counter()
        return 1


class Subscriber:
    """One stream; records when it first saw each score in its top list."""

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.snapshot = asyncio.Event()
        self.messages = 0
        self.error: grpc.aio.AioRpcError | None = None

    async def run(self, client: Client, board_id: str) -> None:
        request = ranking_pb2.SubscribeRankUpdatesRequest(leaderboard_id=board_id, top_n=TOP_N)
        try:
            async for message in client.ranking.SubscribeRankUpdates(request, metadata=client.metadata):
                now = time.perf_counter()
                self.messages += 1
                for entry in message.top_entries:
                    self.first_seen.setdefault(entry.score, now)
                self.snapshot.set()
        except grpc.aio.AioRpcError as exc:
            self.error = exc
            self.snapshot.set()


class StreamScenario(Scenario):
    name = "stream"
    default_concurrency: ClassVar[tuple[int, ...]] = (16,)
    single_process = True

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        await ctx.server()
        return [f"{ctx.options.subscribers} subscribers, top {TOP_N}, tick {ctx.settings.stream_tick_ms} ms"]

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        admin, server = await ctx.admin(), await ctx.server()
        board_id = await ctx.create_board("stream")  # fresh: every run starts from an empty top
        subscribers = [Subscriber() for _ in range(ctx.options.subscribers)]
        tasks = [asyncio.create_task(s.run(admin, board_id)) for s in subscribers]
        submitter = RisingSubmitCall(server, board_id)
        try:
            await self._await_snapshots(subscribers)
            # The runner starts at once: its window opens after the warm-up.
            window_start = time.perf_counter() + ctx.options.warmup_s
            submits = await ctx.load("stream submit", submitter, concurrency=params.concurrency, processes=1)
            # The last submissions need a tick or two to reach everyone.
            await asyncio.sleep(3 * ctx.settings.stream_tick_ms / 1000 + 0.2)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return [Measured("stream: submit", submits), self._deliveries(subscribers, submitter, submits, window_start)]

    @staticmethod
    async def _await_snapshots(subscribers: list[Subscriber]) -> None:
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_S):
                await asyncio.gather(*(s.snapshot.wait() for s in subscribers))
        except TimeoutError:
            waiting = sum(not s.snapshot.is_set() for s in subscribers)
            raise RuntimeError(f"{waiting} subscribers got no snapshot within {SNAPSHOT_TIMEOUT_S:.0f} s") from None
        for s in subscribers:
            if s.error is not None:
                if s.error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise NotImplementedYet("RankingService.SubscribeRankUpdates")
                raise s.error

    @staticmethod
    def _deliveries(
        subscribers: list[Subscriber], submitter: RisingSubmitCall, submits: Recording, window_start: float
    ) -> Measured:
        from_ack: list[float] = []
        from_send: list[float] = []
        early = 0
        delivered: set[int] = set()
        measured = {score for score, sent in submitter.sent.items() if sent >= window_start}
        for s in subscribers:
            for score, seen in s.first_seen.items():
                acked = submitter.acks.get(score)
                if acked is None or score not in measured:
                    continue
                if seen < acked:
                    early += 1  # ranking pushed it before scores answered the submitter
                from_ack.append(max(0.0, seen - acked))
                from_send.append(seen - submitter.sent[score])
                delivered.add(score)
        deliveries = Recording(elapsed_s=submits.elapsed_s)
        deliveries.latencies.extend(from_ack)
        deliveries.items = len(from_ack)
        deliveries.errors.update(s.error.code().name for s in subscribers if s.error is not None)
        acked_in_window = sum(1 for score in measured if score in submitter.acks)
        share = len(delivered) / acked_in_window if acked_in_window else 0.0
        since_send = summarize(from_send, elapsed_s=submits.elapsed_s)
        notes = [
            f"{share:.0%} of acknowledged submissions reached subscribers (coalescing keeps the latest state per tick)",
            f"counted from the submit's send instead: p50 {since_send.p50_ms:.1f} ms, p99 {since_send.p99_ms:.1f} ms",
        ]
        if early:
            notes.append(f"{early:,} deliveries arrived before the submitter's ack (counted as 0 ms)")
        return Measured("stream: delivery", deliveries, unit="deliveries", notes=notes)
