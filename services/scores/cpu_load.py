"""Whether this process is CPU-bound: the batcher batches harder only then."""

from __future__ import annotations

import time
from collections.abc import Callable


class CpuLoad:
    """Whether the process used at least `threshold` of a core over its last window.

    Read when asked and re-measured at most once per `window_seconds`, so asking
    costs a clock read. After a quiet spell the first answer covers all of it (no).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.8,
        window_seconds: float = 0.1,
        cpu_seconds: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._threshold = threshold
        self._window = window_seconds
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._since = clock()
        self._cpu_since = cpu_seconds()
        self._busy = False

    def busy(self) -> bool:
        now = self._clock()
        elapsed = now - self._since
        if elapsed >= self._window:
            cpu = self._cpu_seconds()
            self._busy = cpu - self._cpu_since >= self._threshold * elapsed
            self._since, self._cpu_since = now, cpu
        return self._busy
