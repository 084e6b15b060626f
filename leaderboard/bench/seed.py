"""Fast seeding: many players onto a leaderboard, or a score history.

One RPC per player would take longer than the benchmark itself, so seeding
sends batches of 1,000 events with several calls in flight: ApplyScores for
live rankings (a million players in seconds when ranking is fast), and
BatchSubmitScores for a score history in PostgreSQL. Both stop at a time
limit and report how far they got.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from leaderboard.bench.availability import require
from leaderboard.client import Client
from leaderboard.runtime.ids import uuid_text
from leaderboard.v1 import ranking_pb2, scores_pb2

BATCH = 1000
_INDEX_BITS = 40  # up to 10^12 players per population

SeedProgress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Population:
    """Player ids `0..size-1` as UUIDs computed on demand (a million strings are not kept)."""

    size: int
    base: int = field(default_factory=lambda: uuid.uuid4().int & ~((1 << _INDEX_BITS) - 1))

    def user_id(self, index: int) -> str:
        # The low 40 bits of a v4 UUID hold neither version nor variant bits: still a valid v4.
        return uuid_text(self.base | index)

    def random_user_id(self, rng: random.Random | None = None) -> str:
        return self.user_id((rng or random).randrange(self.size))


@dataclass(frozen=True)
class SeedResult:
    done: int
    wanted: int
    seconds: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.done >= self.wanted

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


async def _batched(
    total: int,
    send: Callable[[int, int], Awaitable[int]],
    *,
    in_flight: int,
    time_limit_s: float,
    progress: SeedProgress | None,
) -> tuple[int, float]:
    """Run `send(start, count)` over [0, total) in batches, `in_flight` at once, until the time limit."""
    started = time.perf_counter()
    deadline = started + time_limit_s
    next_start = 0
    done = 0

    async def worker() -> None:
        nonlocal next_start, done
        while next_start < total and time.perf_counter() < deadline:
            start, next_start = next_start, min(total, next_start + BATCH)
            # Not `done += await ...`: that reads `done` before awaiting and loses other workers' counts.
            sent = await send(start, next_start - start)
            done += sent
            if progress is not None:
                progress(done, total)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done, time.perf_counter() - started


async def seed_board(
    caller: Callable[[], Awaitable[Client]],
    board_id: str,
    population: Population,
    *,
    in_flight: int = 6,
    time_limit_s: float = 180.0,
    progress: SeedProgress | None = None,
) -> SeedResult:
    """Give every player of `population` a random score on `board_id` via RankingService.ApplyScores.

    `caller` gives the client per batch, so a token can be renewed during a long seeding.
    """
    events_base = uuid.uuid4().int & ~((1 << _INDEX_BITS) - 1)
    rng = random.Random()

    async def send(start: int, count: int) -> int:
        achieved = _now()
        request = ranking_pb2.ApplyScoresRequest()
        for i in range(start, start + count):
            request.events.add(
                event_id=str(uuid.UUID(int=events_base | i)),
                leaderboard_id=board_id,
                user_id=population.user_id(i),
                score=rng.randrange(1_000_000_000),
                achieved_at=achieved,
                display_name=f"player{i}",
            )
        client = await caller()
        reply = await require(
            "RankingService.ApplyScores", client.ranking.ApplyScores(request, metadata=client.metadata)
        )
        return len(reply.results)

    done, seconds = await _batched(
        population.size, send, in_flight=in_flight, time_limit_s=time_limit_s, progress=progress
    )
    return SeedResult(done, population.size, seconds)


async def seed_history(
    client: Client,
    board_id: str,
    population: Population,
    events: int,
    *,
    in_flight: int = 4,
    time_limit_s: float = 120.0,
    progress: SeedProgress | None = None,
) -> SeedResult:
    """Submit `events` scores of random players of `population` via ScoreService.BatchSubmitScores."""
    rng = random.Random()
    errors: Counter[str] = Counter()

    async def send(start: int, count: int) -> int:
        request = scores_pb2.BatchSubmitScoresRequest()
        for _ in range(count):
            request.requests.add(
                leaderboard_id=board_id,
                score=rng.randrange(1_000_000_000),
                request_id=str(uuid.uuid4()),
                user_id=population.random_user_id(rng),
            )
        reply = await require(
            "ScoreService.BatchSubmitScores",
            client.scores.BatchSubmitScores(request, metadata=client.metadata),
        )
        ok = 0
        for result in reply.results:
            if result.code == 0:
                ok += 1
            else:
                errors[result.reason or str(result.code)] += 1
        return ok

    done, seconds = await _batched(events, send, in_flight=in_flight, time_limit_s=time_limit_s, progress=progress)
    return SeedResult(done, events, seconds, dict(errors))
