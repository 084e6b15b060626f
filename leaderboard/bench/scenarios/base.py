"""What a scenario is: setup once, then one measurement per call of `measure`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import Recording


@dataclass(frozen=True)
class Params:
    """One point of the benchmark matrix."""

    concurrency: int
    players: int
    processes: int = 1


@dataclass
class Measured:
    """One row's figures from one run: a label, the raw recording, and what an item is."""

    label: str
    recording: Recording
    unit: str = "req"
    notes: list[str] = field(default_factory=list)
    steal_percent: float | None = None  # of the machine's CPU time during the run (steal.py)


class Scenario:
    name: ClassVar[str]
    baseline: ClassVar[str | None] = None  # "echo" (same concurrency) or "redis" (the store's ceiling)
    default_concurrency: ClassVar[tuple[int, ...]] = (64,)
    concurrency_under_all: ClassVar[tuple[int, ...] | None] = None  # None: default_concurrency
    uses_players: ClassVar[bool] = False
    players_under_all: ClassVar[int | None] = None  # board size `bench all` uses (None: --players)
    single_process: ClassVar[bool] = False  # needs one clock for acks and deliveries

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        """Setup before the runs (accounts, boards, seeding); returns notes for the report."""
        return []

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        raise NotImplementedError
