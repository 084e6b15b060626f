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
from pathlib import Path

from redis.asyncio import Redis

from benchmarks.apply_lua import RandomEvents, _scripts
from leaderboard.runtime.embedded import EmbeddedValkey
from services.ranking import rank_store

SIZES = ((1, 3000), (30, 1000), (1000, 60))  # (events per call, calls)


async def measure(players: int, seed: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="apply-lua-calls-"))
    server = EmbeddedValkey(root)
    await asyncio.to_thread(server.start)
    redis = Redis.from_url(server.url)
    try:
        board = await RandomEvents.seeded(redis, _scripts(rank_store.SCRIPTS_DIR), players, random.Random(seed))
        for count, calls in SIZES:
            measured = [board.call_args(count) for _ in range(calls)]
            await redis.config_resetstat()
            for args in measured:
                await board.apply(args)
            stats = await redis.info("commandstats")
            per_call = stats["cmdstat_evalsha"]["usec_per_call"]
            inner = sum(v["usec"] for k, v in stats.items() if k != "cmdstat_evalsha") / calls
            print(
                f"{count:>5} events a call: {per_call:9.1f} µs a call ({inner:9.1f} in the commands it called), "
                f"{per_call / count:5.1f} µs an event"
            )
    finally:
        await redis.aclose()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apply_lua_calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=100_000, help="board size (default 100,000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args()
    asyncio.run(measure(args.players, args.seed))


if __name__ == "__main__":
    main()
