"""Latency percentiles, throughput and error counts of one measurement."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for no values).

    Nearest rank always returns an observed latency, so p99 of 100 samples is
    the 99th smallest, never an interpolation between two requests.
    """
    if not sorted_values:
        return 0.0
    if not 0 < pct <= 100:
        raise ValueError("percentile must be in (0, 100]")
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """Figures of one measurement window. Latencies in milliseconds."""

    requests: int
    errors: dict[str, int]
    elapsed_s: float
    requests_per_s: float
    items: int
    items_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    item_errors: dict[str, int] = field(default_factory=dict)
    # Longest time inside the window in which no call was answered: a stall of the system
    # under test (a collector pause, a fork) shows here even when the percentiles hide it.
    longest_gap_ms: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    latencies_s: Sequence[float],
    *,
    errors: Mapping[str, int] | None = None,
    elapsed_s: float,
    items: int | None = None,
    item_errors: Mapping[str, int] | None = None,
    answered_at: Sequence[float] | None = None,
) -> Summary:
    """Summary of successful requests' latencies (seconds) over `elapsed_s`.

    Requests/s counts successful requests only: a failing service must not
    look fast. `items` counts work done inside requests (a batch of 1,000
    submissions is one request and 1,000 items); default one per request.
    `answered_at`: when each call of the window was answered (any clock, seconds).
    """
    ordered = sorted(latencies_s)
    moments = sorted(answered_at or ())
    gap = max((b - a for a, b in pairwise(moments)), default=0.0)
    count = len(ordered)
    done = count if items is None else items
    per_s = (lambda n: n / elapsed_s) if elapsed_s > 0 else (lambda n: 0.0)
    return Summary(
        requests=count,
        errors=dict(sorted(Counter(errors or {}).items())),
        elapsed_s=round(elapsed_s, 3),
        requests_per_s=per_s(count),
        items=done,
        items_per_s=per_s(done),
        p50_ms=percentile(ordered, 50) * 1000,
        p95_ms=percentile(ordered, 95) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        mean_ms=(sum(ordered) / count if count else 0.0) * 1000,
        item_errors=dict(sorted(Counter(item_errors or {}).items())),
        longest_gap_ms=gap * 1000,
    )


def median_run(runs: Sequence[Summary]) -> Summary:
    """The run with the median throughput (the lower middle one of an even count).

    A whole run is quoted, not a per-figure median, so its latencies and its
    throughput belong together.
    """
    if not runs:
        raise ValueError("no runs")
    ordered = sorted(runs, key=lambda s: s.items_per_s)
    return ordered[(len(ordered) - 1) // 2]
