"""How CPU-bound this process is: the batcher batches harder the busier it is."""

from __future__ import annotations

import time
from collections.abc import Callable


class CpuLoad:
    """The pressure on this process's core: 0.0 while it used at most `low` of a core
    over its last window, 1.0 from `high` on, in proportion between.

    Read when asked and re-measured at most once per `window_seconds`, so asking
    costs a clock read. After a quiet spell the first answer covers all of it (low).
    """

    def __init__(
        self,
        *,
        low: float = 0.7,
        high: float = 0.95,
        window_seconds: float = 0.1,
        cpu_seconds: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not low < high:
            raise ValueError("low must be below high")
        self._low = low
        self._span = high - low
        self._window = window_seconds
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._since = clock()
        self._cpu_since = cpu_seconds()
        self._pressure = 0.0

    def pressure(self) -> float:
        now = self._clock()
        elapsed = now - self._since
        if elapsed >= self._window and elapsed > 0:
            cpu = self._cpu_seconds()
            share = (cpu - self._cpu_since) / elapsed
            self._pressure = min(1.0, max(0.0, (share - self._low) / self._span))
            self._since, self._cpu_since = now, cpu
        return self._pressure
