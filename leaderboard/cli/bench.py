"""`leaderboard bench <scenario>|all`: measure throughput and latency.

Against the running `make up` deployment by default (store URLs from
.leaderboard/endpoints.env), or a deployment of its own with --embedded.
Load only ever goes to loopback addresses unless --allow-remote is given, and
every measurement is bounded by --duration and --max-requests.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import shlex
import signal
import sys
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from leaderboard.cli.stack_state import with_running_stack
from leaderboard.runtime.config import Settings

if TYPE_CHECKING:
    from leaderboard.bench.context import Options
    from leaderboard.bench.driver import Plan
    from leaderboard.bench.report import Row

DURATION_ALONE_S = 10.0
DURATION_UNDER_ALL_S = 5.0
WARMUP_ALONE_S = 1.0
WARMUP_UNDER_ALL_S = 0.5
SEED_SECONDS_ALONE = 300.0
SEED_SECONDS_UNDER_ALL = 90.0  # keeps `make bench` under 10 minutes whatever the seeding speed


def _int_list(raw: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {raw!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected integers >= 1")
    return values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from leaderboard.bench.catalog import DEFAULT_MAX_REQUESTS, SCENARIOS

    listing = "\n".join(f"  {name:13} {what}" for name, what in SCENARIOS.items())
    parser = sub.add_parser(
        "bench",
        help="measure throughput and latency (a scenario, or all)",
        description="Closed-loop benchmarks with baselines measured in the same run.\n\nScenarios:\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], metavar="scenario", help="a scenario, or all")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds per measurement (default {DURATION_ALONE_S:g}; {DURATION_UNDER_ALL_S:g} under all)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help=f"unmeasured seconds before each measurement (default {WARMUP_ALONE_S:g}; "
        f"{WARMUP_UNDER_ALL_S:g} under all)",
    )
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=None,
        help="requests in flight; a list runs each (64,256). Default 64 for unary scenarios, 4 for "
        "batch-submit and report, 16 for stream submitters and login; under all, submit runs 64,256",
    )
    parser.add_argument(
        "--players",
        type=_int_list,
        default=None,
        help="board size to seed / players to pick from; a list runs each (default 100000; "
        "1000000 for redis, rank and top under all)",
    )
    parser.add_argument("--processes", type=int, default=1, help="load-generator processes (default 1)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        help=f"upper bound on requests per measurement (default {DEFAULT_MAX_REQUESTS:,})",
    )
    parser.add_argument("--subscribers", type=int, default=100, help="streams opened by the stream scenario")
    parser.add_argument("--repeat", type=int, default=1, help="runs per point; the median run is reported")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write every figure as JSON")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="start a deployment of its own (embedded PostgreSQL + Valkey, the four services) and stop it after",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes per service with --embedded")
    parser.add_argument(
        "--seed-seconds", type=float, default=None, help="time limit of each seeding step (default 300; 90 under all)"
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow targets that are not loopback addresses")
    parser.set_defaults(handler=run)


# --- where the load goes --------------------------------------------------------------------


def _host_of_target(target: str) -> str:
    if target.startswith("unix:"):
        return "localhost"
    target = target.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 or target.startswith("[") else target
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name we would have to resolve: not provably local


def remote_targets(settings: Settings) -> list[str]:
    """Targets of the load that are not loopback addresses."""
    found = []
    for name in ("auth", "scores", "ranking", "reports"):
        target = settings.target(name)
        if not is_loopback(_host_of_target(target)):
            found.append(f"{name} at {target}")
    if settings.redis_url and not settings.redis_url.startswith("unix:"):
        host = urlsplit(settings.redis_url).hostname or ""
        if not is_loopback(host):
            found.append(f"Redis at {host}")
    return found


def refuse_remote(settings: Settings, allow_remote: bool, err: Console) -> bool:
    """True (after saying why) when the load would leave this machine without --allow-remote."""
    remote = remote_targets(settings)
    if remote and not allow_remote:
        err.print(f"refusing non-loopback targets ({'; '.join(remote)}); pass --allow-remote to insist")
        return True
    return False


# --- the run -------------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.bench.catalog import SCENARIOS
    from leaderboard.bench.context import Options
    from leaderboard.bench.driver import Plan
    from leaderboard.bench.report import loadavg, now_iso
    from leaderboard.bench.stack import EmbeddedStack

    err = Console(stderr=True)
    under_all = args.scenario == "all"
    for flag in ("processes", "repeat", "max_requests", "subscribers", "workers"):
        if getattr(args, flag) < 1:
            err.print(f"--{flag.replace('_', '-')} must be >= 1")
            return 2
    options = Options(
        duration_s=args.duration or (DURATION_UNDER_ALL_S if under_all else DURATION_ALONE_S),
        warmup_s=args.warmup if args.warmup is not None else (WARMUP_UNDER_ALL_S if under_all else WARMUP_ALONE_S),
        max_requests=args.max_requests,
        seed_seconds=args.seed_seconds or (SEED_SECONDS_UNDER_ALL if under_all else SEED_SECONDS_ALONE),
        subscribers=args.subscribers,
    )
    plan = Plan(
        # Under `all` echo is measured beside each scenario it is the baseline of, run for run.
        scenarios=[s for s in SCENARIOS if s != "echo"] if under_all else [args.scenario],
        concurrency=args.concurrency,
        players=args.players,
        processes=args.processes,
        repeat=args.repeat,
        under_all=under_all,
    )
    # SIGTERM stops like Ctrl-C: the embedded stack and the echo server are always stopped.
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    stack: EmbeddedStack | None = None
    started_at = now_iso()
    load_at_start = loadavg()
    try:
        if args.embedded:
            err.print("starting an embedded deployment (PostgreSQL, Valkey, four services) ...")
            began = time.perf_counter()
            stack = EmbeddedStack(settings, workers=args.workers)
            try:
                settings = stack.start()
            except (RuntimeError, TimeoutError, OSError) as exc:
                stack.stop(keep_files=True)  # the logs say why
                stack = None
                err.print(f"[red]the embedded deployment did not start: {exc}[/red]")
                return 1
            err.print(f"deployment up in {time.perf_counter() - began:.1f} s (logs in {stack.logs})")
        else:
            settings = with_running_stack(settings)
        if refuse_remote(settings, args.allow_remote, err):
            return 2
        rows = asyncio.run(_run(settings, options, plan))
    finally:
        if stack is not None:
            err.print("stopping the embedded deployment ...")
            stack.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
    return _finish(args, rows, options=options, plan=plan, started_at=started_at, load_at_start=load_at_start)


async def _run(settings: Settings, options: Options, plan: Plan) -> list[Row]:
    from leaderboard.bench.context import BenchContext
    from leaderboard.bench.driver import Driver

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[requests]:>10,} done"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    ctx = BenchContext(settings, options, progress)
    with progress:
        try:
            return await Driver(ctx, plan).run()
        finally:
            await ctx.close()


def _finish(
    args: argparse.Namespace,
    rows: list[Row],
    *,
    options: Options,
    plan: Plan,
    started_at: str,
    load_at_start: list[float] | None,
) -> int:
    from leaderboard.bench.report import FAILED, now_iso, print_report, write_json

    command = "leaderboard " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "leaderboard bench"
    title = (
        f"{command}  —  {options.duration_s:g} s per run after {options.warmup_s:g} s warm-up, "
        f"median of {plan.repeat}, {plan.processes} load process(es)"
    )
    # Piped output (make bench | tee) still gets every column.
    print_report(rows, Console(width=None if sys.stdout.isatty() else 180), title)
    if args.json is not None:
        write_json(
            args.json,
            rows,
            command=command,
            parameters={
                "scenarios": plan.scenarios,
                "duration_s": options.duration_s,
                "warmup_s": options.warmup_s,
                "max_requests": options.max_requests,
                "concurrency": plan.concurrency,
                "players": plan.players,
                "processes": plan.processes,
                "repeat": plan.repeat,
                "subscribers": options.subscribers,
                "seed_seconds": options.seed_seconds,
                "embedded": args.embedded,
                "workers": args.workers,
            },
            started_at=started_at,
            finished_at=now_iso(),
            loadavg_at_start=load_at_start,
        )
        Console(stderr=True).print(f"wrote {args.json}")
    return 1 if any(row.status == FAILED for row in rows) else 0
