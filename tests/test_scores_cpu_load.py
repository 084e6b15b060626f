"""CpuLoad: how CPU-bound the process is, from its CPU time over wall time."""

from __future__ import annotations

import pytest

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
    return CpuLoad(low=0.5, high=1.0, window_seconds=0.125, cpu_seconds=lambda: clocks.cpu, clock=lambda: clocks.wall)


def test_pressure_grows_from_low_to_high_share_of_a_core() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    assert load.pressure() == 0.0  # no window has passed yet
    for share, pressure in ((0.25, 0.0), (0.5, 0.0), (0.625, 0.25), (0.875, 0.75), (1.0, 1.0), (1.5, 1.0)):
        clocks.run(0.125, share)
        assert load.pressure() == pressure, share


def test_measured_at_most_once_per_window() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    clocks.run(0.125, 1.0)
    assert load.pressure() == 1.0
    clocks.run(0.0625, 0.0)  # within the window: the last answer stands
    assert load.pressure() == 1.0
    clocks.run(0.0625, 1.5)  # a window of 0.125 s at 75%
    assert load.pressure() == 0.5


def test_a_burst_after_a_quiet_spell_is_not_pressure_at_once() -> None:
    # The first window after a quiet spell covers all of it: a lone burst does not count.
    clocks = Clocks()
    load = load_on(clocks)
    clocks.run(10.0, 0.01)
    clocks.run(0.125, 1.0)
    assert load.pressure() == 0.0
    clocks.run(0.125, 1.0)
    assert load.pressure() == 1.0


def test_low_must_be_below_high() -> None:
    with pytest.raises(ValueError, match="below"):
        CpuLoad(low=0.9, high=0.9)
