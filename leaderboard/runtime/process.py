"""Process-wide runtime tuning shared by every service process (and the echo
baseline, so benchmark ratios compare like with like): the event loop and the
garbage collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_LOOPS = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T], *, event_loop: str = "uvloop") -> T:
    """asyncio.run on the configured loop. uvloop's loop (libuv, in C) costs
    less per callback, future and socket than asyncio's pure-Python one."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def tune_gc(gen0_threshold: int) -> None:
    """Call once the service has started. Moves everything alive now (modules,
    servers, pools) out of the collector's sight, and collects the youngest
    generation less often: full collections over a large heap were the longest
    pauses of a busy service (they showed as its p99). 0: leave it alone."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
