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
        self._max_keys = max_keys
        # A dict keeps insertion order: re-inserting on use makes the first key the least
        # recently seen (cheaper than an OrderedDict, which showed in batch profiles).
        self._buckets: dict[str, tuple[float, float]] = {}

    def try_acquire(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """0.0 when allowed; otherwise the seconds to wait before `cost` tokens are there."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self._rate
        if len(self._buckets) > self._max_keys + self._max_keys // 8:
            # Forget the least recently seen players, an eighth at a time (deleting
            # one by one from a dict's front would make each lookup of it slower).
            self._buckets = dict(list(self._buckets.items())[-self._max_keys :])
        return wait
