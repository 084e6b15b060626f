"""CPU time each part of the deployment spent during a run, read from /proc.

Throughput on a shared 2-core VM moves with the minute; CPU time per request
moves much less, and split by process it says where a request's cost goes
(`CPU per submission: scores 47 us, postgres 45 us, ...`). Processes are told
apart by their command line; the load generator is this process and its
children that are nothing else. Machine-wide: a stray PostgreSQL or Redis
process of another project would count too (an idle one adds next to nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
# (role, what its command line contains), first match wins.
_ROLES = (
    ("scores", "serve scores"),
    ("ranking", "serve ranking"),
    ("auth", "serve auth"),
    ("reports", "serve reports"),
    ("echo", "leaderboard.bench.echo_server"),
    ("postgres", "postgres"),
    ("redis", "valkey-server"),
    ("redis", "redis-server"),
)
LOAD = "load generator"


def processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds since it started)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[int, str, float]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # Fields after the command: state, ppid, ..., utime (12th), stime (13th).
        found[int(entry.name)] = (int(stat[1]), cmdline, (int(stat[11]) + int(stat[12])) / tick)
    return found


# pid -> (role, CPU seconds since it started)
Reading = dict[int, tuple[str, float]]


def cpu_reading() -> Reading | None:
    """The CPU seconds so far of every process with a role; None without /proc."""
    if not (_PROC / "self" / "stat").exists():
        return None
    found = processes()
    me = os.getpid()
    reading: Reading = {}
    for pid, (parent, cmdline, seconds) in found.items():
        role = next((name for name, mark in _ROLES if mark in cmdline), None)
        if role is None and _descends_from(pid, parent, me, found):
            role = LOAD
        if role is not None:
            reading[pid] = (role, seconds)
    return reading


def spent_by_role(before: Reading, after: Reading) -> dict[str, float]:
    """CPU seconds by role between two readings, process by process: one that started in
    between counts from zero, and one that ended in between is not seen (what it spent
    since `before` is lost). Subtracting role totals instead took all the CPU time of a
    process that ended (a previous run's load generator on its way out) off its role's
    figure, which then came out short or negative."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        old = before.get(pid)
        start = old[1] if old is not None and old[0] == role else 0.0
        spent[role] = spent.get(role, 0.0) + seconds - start
    return spent


def _descends_from(pid: int, parent: int, ancestor: int, processes: dict[int, tuple[int, str, float]]) -> bool:
    seen = 0
    while pid != ancestor:
        if parent <= 1 or seen > 64:
            return False
        pid, seen = parent, seen + 1
        parent = processes.get(pid, (0, "", 0.0))[0]
    return True


def per_item_us(spent: dict[str, float], items: int) -> dict[str, float]:
    """Microseconds of CPU per item by role, from CPU seconds spent over `items` items
    (roles that used any, the busiest first)."""
    if items <= 0:
        return {}
    return {role: round(1e6 * s / items, 1) for role, s in sorted(spent.items(), key=lambda kv: -kv[1]) if s > 0}


def describe(cpu: dict[str, float], unit: str) -> str:
    """`CPU per submission: scores 47 us, postgres 45 us, ... (157 us in all)`."""
    shown = [f"{role} {us:,.0f} us" for role, us in cpu.items() if us >= 0.5]
    return f"CPU per {unit}: " + ", ".join(shown) + f" ({sum(cpu.values()):,.0f} us in all, from /proc)"
