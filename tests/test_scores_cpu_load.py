"""CpuLoad: whether the process is CPU-bound, from its CPU time over wall time."""

from __future__ import annotations

from services.scores.cpu_load import CpuLoad


class Clocks:
    """Wall and CPU clocks the test moves by hand (in binary fractions: exact sums)."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0

    def run(self, seconds: float, busy_fraction: float) -> None:
        self.wall += seconds
        self.cpu += seconds * busy_fraction


def load_on(clocks: Clocks) -> CpuLoad:
    return CpuLoad(threshold=0.8, window_seconds=0.125, cpu_seconds=lambda: clocks.cpu, clock=lambda: clocks.wall)


def test_busy_when_the_last_window_used_the_threshold_of_a_core() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    assert not load.busy()  # no window has passed yet
    clocks.run(0.125, 0.875)
    assert load.busy()
    clocks.run(0.25, 0.5)
    assert not load.busy()
    clocks.run(0.125, 0.875)
    assert load.busy()


def test_measured_at_most_once_per_window() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    clocks.run(0.125, 1.0)
    assert load.busy()
    clocks.run(0.0625, 0.0)  # within the window: the last answer stands
    assert load.busy()
    clocks.run(0.0625, 0.0)  # a window of 0.125 s at 50%
    assert not load.busy()


def test_a_burst_after_a_quiet_spell_is_not_busy_at_once() -> None:
    # The first window after a quiet spell covers all of it: a lone burst does not count.
    clocks = Clocks()
    load = load_on(clocks)
    clocks.run(10.0, 0.01)
    clocks.run(0.125, 1.0)
    assert not load.busy()
    clocks.run(0.125, 1.0)
    assert load.busy()
