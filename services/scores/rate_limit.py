"""Per-player token bucket for submissions (per process).

With R replicas a player can reach R times the rate; the limit is about
stopping floods from one client, not exact accounting.
"""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: float, *, max_keys: int = 100_000) -> None:
        self._rate = rate_per_second
        self._burst = burst
        # Two generations of buckets: players seen since the last turnover, and those
        # seen in the one before. A full young generation becomes the old one and the
        # previous old one is dropped, so between max_keys/2 and max_keys of the most
        # recently seen players are remembered at no per-call cost (no LRU order to keep,
        # no dict to copy when trimming).
        self._generation = max(1, max_keys // 2)
        self._young: dict[str, tuple[float, float]] = {}
        self._old: dict[str, tuple[float, float]] = {}

    def try_acquire(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """0.0 when allowed; otherwise the seconds to wait before `cost` tokens are there."""
        now = time.monotonic() if now is None else now
        bucket = self._young.get(key)
        if bucket is None:
            bucket = self._old.pop(key, None)
            if bucket is None:
                bucket = (self._burst, now)
            if len(self._young) >= self._generation:
                self._old, self._young = self._young, {}
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        if tokens >= cost:
            self._young[key] = (tokens - cost, now)
            return 0.0
        self._young[key] = (tokens, now)
        return (cost - tokens) / self._rate
