"""Driving a process that runs under `valgrind --tool=callgrind --instr-atstart=no`:
instrumentation on and off, counters zeroed, and the instructions of a dump read back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

TIMEOUT_SECONDS = 20.0


class Callgrind:
    """callgrind_control for process `pid`, whose dumps are `out` and `out.N`."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out

    def instrument(self, on: bool) -> None:
        self._control("-i", "on" if on else "off")

    def zero(self) -> None:
        self._control("-z")

    def dump(self) -> int:
        """Instructions counted since the last zero (callgrind writes them to a new dump)."""
        before = set(self._dumps())
        self._control("-d")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for path in set(self._dumps()) - before:
                total = _total(path)
                if total is not None:
                    return total
            time.sleep(0.05)
        raise RuntimeError(f"callgrind wrote no dump beside {self.out}")

    def _dumps(self) -> list[Path]:
        return list(self.out.parent.glob(self.out.name + "*"))

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.pid)], check=True, capture_output=True)


def _total(path: Path) -> int | None:
    """The dump's instruction total; None while it is still being written."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return None
