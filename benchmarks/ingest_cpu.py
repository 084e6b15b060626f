"""Instructions per submission of the ingest path's Python, counted by callgrind.

What `bench batch-submit` spends in ScoreService and RankingService is mostly their
Python, and its CPU-time figures move by ±15% from minute to minute on a shared
machine. Instructions counted under valgrind's callgrind repeat to within ~0.1% for
the same code (PYTHONHASHSEED fixed), so a change to the hot path shows its effect:

    .venv/bin/python -m benchmarks.ingest_cpu             # both cases
    .venv/bin/python -m benchmarks.ingest_cpu ranking     # one

Cases (each over 3 calls of 1,000 events or submissions, after one warm-up call):
- `ranking`: RankingServicer.ApplyScores with the real Ranking, validation, packing
  and answer building; the Redis round trip is replaced by a canned answer of
  apply.lua's shape (apply.lua itself: benchmarks/apply_lua.py).
- `scores`: ScoreServicer.BatchSubmitScores with the real validation, batcher,
  statement building, ApplyScores request building and answers; the PostgreSQL
  driver and RankingService are replaced by stand-ins that answer at once (the
  stand-in's own cost, counted separately, is subtracted).
No sockets, no servers: this counts our Python, not the stores (the services'
tests and `leaderboard bench` run those for real). The baseline, same run: parsing
and serializing the case's request and response messages (what any Python gRPC
service pays for them), per item.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.callgrind import Callgrind
from leaderboard.runtime.context import Principal, principal_var
from leaderboard.runtime.db import create_engine
from leaderboard.runtime.ids import random_uuid4s, uuid7s
from leaderboard.v1 import common_pb2, ranking_pb2, scores_pb2
from services.ranking import rank_store
from services.ranking.catalog import Board, Policy, SortOrder
from services.ranking.ranking import Ranking
from services.ranking.servicer import RankingServicer
from services.scores.batcher import SubmitBatcher
from services.scores.ranking_link import RankingLink
from services.scores.rate_limit import RateLimiter
from services.scores.score_store import ScoreStore
from services.scores.servicer import ScoreServicer
from services.scores.submissions import MAX_SAFE_SCORE, BoardRules

ITEMS = 1000
CALLS = 3
BOARD = "bench-board"
Case = tuple[Callable[[], None], Callable[[], None] | None, Callable[[], None]]  # work, its stand-ins, baseline


def _players(rng: random.Random) -> list[str]:
    return random_uuid4s(100_000, rng)


# --- ranking -------------------------------------------------------------------------------


class _CannedRankStore:
    """RankStore.apply answering every event as apply.lua would (applied, a standing)."""

    page_ttl_ms = 60_000

    def __init__(self) -> None:
        now = int(time.time() * 1000)
        self._answers = b"".join(
            rank_store._RESULT.pack(0, i % 2, 1, -123_456_789, now, 1000 + i, 5000, 100_000) for i in range(ITEMS)
        )

    async def apply(self, boards: Sequence[Any], global_events: Sequence[Any], now_ms: int) -> list[Any]:
        return [rank_store._applied(self._answers) for _ in boards]


class _OneBoard:
    def __init__(self, board: Board) -> None:
        self._board = board

    async def find(self, board_id: str) -> Board:
        return self._board

    def forget(self, board_id: str) -> None:
        return None


def _ranking_case() -> Case:
    board = Board(BOARD, "g", "B", SortOrder.DESCENDING, Policy.BEST, None, None, False, (), 0.0, 0)
    catalog: Any = _OneBoard(board)
    store: Any = _CannedRankStore()
    ranking = Ranking(catalog, None, store, default_retention=8, dedup_window_seconds=3600)  # type: ignore[arg-type]
    servicer = RankingServicer(catalog, None, ranking)  # type: ignore[arg-type]
    rng = random.Random(3)
    players = _players(rng)
    requests = []
    for _ in range(CALLS):
        request = ranking_pb2.ApplyScoresRequest()
        now = int(time.time() * 1000)
        for event_id in uuid7s(ITEMS, now):
            event = request.events.add(
                event_id=event_id, leaderboard_id=BOARD, user_id=rng.choice(players), score=rng.randrange(10**9)
            )
            event.achieved_at.seconds, event.achieved_at.nanos = now // 1000, now % 1000 * 1_000_000
        requests.append(request)
    loop = asyncio.new_event_loop()
    replies = [loop.run_until_complete(servicer.ApplyScores(r, None)) for r in requests]  # type: ignore[arg-type]
    wire = [(r.SerializeToString(), a.SerializeToString()) for r, a in zip(requests, replies, strict=True)]

    def work() -> None:
        for request in requests:
            loop.run_until_complete(servicer.ApplyScores(request, None)).SerializeToString()  # type: ignore[arg-type]

    def baseline() -> None:
        for request_bytes, reply_bytes in wire:
            ranking_pb2.ApplyScoresRequest.FromString(request_bytes).SerializeToString()
            ranking_pb2.ApplyScoresResponse.FromString(reply_bytes).SerializeToString()

    return work, None, baseline


# --- scores ----------------------------------------------------------------------------------


class _Cursor:
    def __init__(self, row: tuple[int, list[str]]) -> None:
        self._row = row

    async def fetchone(self) -> tuple[int, list[str]]:
        return self._row


class _Driver:
    """The batch statement's connection: stores nothing, answers with a new batch id."""

    batches = 0

    async def execute(self, query: str, params: Any, prepare: bool = False) -> _Cursor:
        _Driver.batches += 1
        return _Cursor((_Driver.batches, []))


def _applied_answer(request: ranking_pb2.ApplyScoresRequest) -> ranking_pb2.ApplyScoresResponse:
    """What RankingService answers for `request` (every event applied, a third improved)."""
    reply = ranking_pb2.ApplyScoresResponse()
    add = reply.results.add
    for i, event in enumerate(request.events):
        result = add(event_id=event.event_id, improved=i % 3 == 0)
        entry = result.entry
        entry.user_id, entry.score, entry.rank, entry.percentile = event.user_id, event.score, 1000 + i, 55.5
        entry.achieved_at.CopyFrom(event.achieved_at)
    return reply


class _Ranking:
    """RankingService's ApplyScores, answering at once; keeps the last requests it got, so
    that its own cost can be counted on the same requests."""

    def __init__(self) -> None:
        self.requests: list[ranking_pb2.ApplyScoresRequest] = []

    async def ApplyScores(
        self, request: ranking_pb2.ApplyScoresRequest, **call: Any
    ) -> ranking_pb2.ApplyScoresResponse:
        self.requests = [*self.requests[-(CALLS - 1) :], request]
        return _applied_answer(request)


class _Client:
    def __init__(self) -> None:
        self.ranking = _Ranking()


class _Token:
    async def metadata(self) -> tuple[()]:
        return ()

    def invalidate(self) -> None:
        return None


def _scores_case() -> Case:
    store = ScoreStore(create_engine("postgresql://bench@127.0.0.1:1/bench"))  # never connects

    @contextlib.asynccontextmanager
    async def connection() -> AsyncIterator[_Driver]:
        yield _Driver()

    store._batch_connection = connection  # type: ignore[assignment,method-assign]
    client = _Client()
    link = RankingLink(client, _Token())  # type: ignore[arg-type]
    link._rules[BOARD] = (float("inf"), BoardRules(BOARD, -MAX_SAFE_SCORE, MAX_SAFE_SCORE, False))
    batcher = SubmitBatcher(store, link, linger_seconds=0.005, max_batch=ITEMS)
    servicer = ScoreServicer(store, link, batcher, RateLimiter(1e9, 2e9))
    rng = random.Random(5)
    players = _players(rng)
    server = Principal(user_id=random_uuid4s(1, rng)[0], role=common_pb2.ROLE_SERVER, username="game-server",
                       display_name="", expires_at=float("inf"))  # fmt: skip
    requests = []
    for _ in range(CALLS):
        request = scores_pb2.BatchSubmitScoresRequest()
        for request_id in random_uuid4s(ITEMS, rng):
            request.requests.add(
                leaderboard_id=BOARD, user_id=rng.choice(players), score=rng.randrange(10**9), request_id=request_id
            )
        requests.append(request)
    loop = asyncio.new_event_loop()
    principal_var.set(server)
    loop.run_until_complete(batcher.start())

    async def submit_all() -> list[scores_pb2.BatchSubmitScoresResponse]:
        return [await servicer.BatchSubmitScores(r, None) for r in requests]  # type: ignore[arg-type]

    replies = loop.run_until_complete(submit_all())
    assert all(item.response.applied for reply in replies for item in reply.results)
    apply_requests = client.ranking.requests  # those the batches above sent
    assert sum(len(r.events) for r in apply_requests) == CALLS * ITEMS
    wire = [(r.SerializeToString(), a.SerializeToString()) for r, a in zip(requests, replies, strict=True)]

    def work() -> None:
        for reply in loop.run_until_complete(submit_all()):
            reply.SerializeToString()

    def stand_ins() -> None:
        for apply_request in apply_requests:
            _applied_answer(apply_request)

    def baseline() -> None:
        for request_bytes, reply_bytes in wire:
            scores_pb2.BatchSubmitScoresRequest.FromString(request_bytes).SerializeToString()
            scores_pb2.BatchSubmitScoresResponse.FromString(reply_bytes).SerializeToString()

    return work, stand_ins, baseline


CASES: dict[str, Callable[[], Case]] = {"ranking": _ranking_case, "scores": _scores_case}


# --- counting ----------------------------------------------------------------------------------


def _counted(fn: Callable[[], None], counter: Callgrind) -> int:
    """Instructions of one call of `fn` (this process runs under callgrind)."""
    fn()  # warm-up: caches, first-call paths
    counter.instrument(True)
    counter.zero()
    fn()
    total = counter.dump()
    counter.instrument(False)
    return total


def _inside(name: str, out: str) -> None:
    work, stand_ins, baseline = CASES[name]()
    counter = Callgrind(os.getpid(), Path(out))
    per_item = CALLS * ITEMS
    counted = _counted(work, counter)
    if stand_ins is not None:
        counted -= _counted(stand_ins, counter)
    print(f"{counted / per_item:.0f} {_counted(baseline, counter) / per_item:.0f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"{', '.join(CASES)} (default: all)")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.inside:
        _inside(args.inside, args.out)
        return
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    for name in args.cases or CASES:
        with tempfile.TemporaryDirectory(prefix="ingest-cpu-") as root:
            out = f"{root}/callgrind.out"
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                       sys.executable, "-m", "benchmarks.ingest_cpu", "--inside", name, "--out", out]  # fmt: skip
            env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict and set orders every run
            done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            counted, baseline = (int(x) for x in done.stdout.split()[-2:])
        print(f"{name}: {counted:,} instructions per item; baseline (parse + serialize its messages) "
              f"{baseline:,} ({counted / baseline:.1f}x)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
