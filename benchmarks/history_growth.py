"""PostgreSQL's CPU per submission of the batch statement as the score history grows.

`bench batch-submit` shows PostgreSQL's CPU per submission rising from run to run in
one deployment. This isolates it: one client sends ScoreStore.insert_batch batches of
1,000 submissions (random players of --players, random request ids, one board, as
`bench batch-submit` sends) into a fresh embedded PostgreSQL, and prints the server's
CPU time (the postmaster and its children, from /proc) per row for each --step rows:

    .venv/bin/python -m benchmarks.history_growth                         # every variant, in turn
    .venv/bin/python -m benchmarks.history_growth base no-user-index --rows 600000

Variants change the schema after migrating, to show what one part costs (they are
experiments, not supported schemas): `base` as migrated; `no-user-index` without the
history's (user_id, created_at, id) index; `no-request-key` without the idempotency
keys' primary key; `varchar-user` with the history's user_id stored as varchar text, as
before migration s0007, instead of uuid. After each variant it prints the sizes of the largest tables and indexes.
CPU time on a shared machine moves by ±15%: alternate variants and repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from leaderboard.bench.process_cpu import processes
from leaderboard.runtime.db import create_engine
from leaderboard.runtime.embedded import EmbeddedPostgres
from leaderboard.runtime.ids import random_uuid4s, uuid7s
from leaderboard.runtime.migrations import upgrade
from services.scores import score_store
from services.scores.score_store import ScoreStore
from services.scores.submissions import Submission, body_hash

BATCH = 1000
BOARD = "bench-board"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _varchar_user(conn: psycopg.Connection) -> None:
    conn.execute(
        'ALTER TABLE scores.score_events ALTER COLUMN user_id TYPE varchar(64) COLLATE "C" USING CAST(user_id AS text)'
    )
    statement = score_store._INSERT_NEW_BATCH.replace("CAST(e.v->>3 AS uuid) AS user_id", "e.v->>3 AS user_id")
    assert statement != score_store._INSERT_NEW_BATCH
    score_store._INSERT_NEW_BATCH = statement


VARIANTS: dict[str, Callable[[psycopg.Connection], object]] = {
    "base": lambda conn: None,
    "no-user-index": lambda conn: conn.execute("DROP INDEX scores.ix_score_events_user_created"),
    "no-request-key": lambda conn: conn.execute(
        "ALTER TABLE scores.submission_requests DROP CONSTRAINT pk_submission_requests"
    ),
    "varchar-user": _varchar_user,
}

_SIZES = """
    SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'scores' AND c.relkind IN ('r', 'i') ORDER BY 2 DESC LIMIT 6
"""


def _server_cpu_seconds(postmaster: int) -> float:
    """CPU time of the postmaster and its children (backends, writers, checkpointer)."""
    return sum(seconds for pid, (parent, _, seconds) in processes().items() if postmaster in (pid, parent))


def _batch(rng: random.Random, players: list[str], caller: str) -> list[Submission]:
    ms = time.time_ns() // 1_000_000
    created = _EPOCH + timedelta(milliseconds=ms)
    items = []
    for request_id, submission_id in zip(random_uuid4s(BATCH, rng), uuid7s(BATCH, ms), strict=True):
        user_id = players[int(rng.random() * len(players))]
        score = int(rng.random() * 1_000_000_000)
        fingerprint = body_hash(BOARD, user_id, score, {})
        item = Submission(caller, request_id, BOARD, user_id, score, {}, caller, "", fingerprint)
        item.id, item.created_at = submission_id, created
        items.append(item)
    return items


async def _fill(url: str, postmaster: int, name: str, *, rows: int, step: int, players: int) -> None:
    store = ScoreStore(create_engine(url))
    await store.ensure_partitions(datetime.now(UTC))  # as ScoreService does at start
    rng = random.Random(1)
    population = random_uuid4s(players, rng)
    caller = random_uuid4s(1, rng)[0]
    done = marked = 0
    mark = _server_cpu_seconds(postmaster)
    try:
        while done < rows:
            await store.insert_batch(_batch(rng, population, caller))
            done += BATCH
            if done - marked >= step or done >= rows:
                now = _server_cpu_seconds(postmaster)
                per_row = 1e6 * (now - mark) / (done - marked)
                print(f"{name}: rows {done:>9,}: postgres {per_row:5.1f} us per row", flush=True)
                mark, marked = now, done
    finally:
        await store.close()


def _run(name: str, rows: int, step: int, players: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="history-growth-"))
    server = EmbeddedPostgres(root / "postgres")
    try:
        url = server.start()
        upgrade(url, ("scores",))
        original = score_store._INSERT_NEW_BATCH
        with psycopg.connect(url, autocommit=True) as conn:
            VARIANTS[name](conn)
        assert server.proc is not None
        try:
            asyncio.run(_fill(url, server.proc.pid, name, rows=rows, step=step, players=players))
        finally:
            score_store._INSERT_NEW_BATCH = original
        with psycopg.connect(url, autocommit=True) as conn:
            sizes = ", ".join(f"{rel} {size / 1e6:.0f} MB" for rel, size in conn.execute(_SIZES).fetchall())
        print(f"{name}: {sizes}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history_growth", description=doc.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"{', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--rows", type=int, default=600_000, help="submissions to store (default 600,000)")
    parser.add_argument("--step", type=int, default=100_000, help="rows per printed figure (default 100,000)")
    parser.add_argument("--players", type=int, default=100_000, help="players to pick from (default 100,000)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    for name in args.variants or VARIANTS:
        _run(name, args.rows, args.step, args.players)


if __name__ == "__main__":
    main()
