"""`leaderboard demo`: simulated players of a few games submit scores at a steady rate
against the running deployment, so `leaderboard watch` has something to show."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from leaderboard.runtime.config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="simulated players submitting scores (for `leaderboard watch`)")
    parser.add_argument("--rate", type=float, default=20.0, help="score submissions per second (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    parser.add_argument("--players", type=int, default=50, help="player accounts to play with (default 50)")
    parser.add_argument("--allow-remote", action="store_true", help="allow targets that are not loopback addresses")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.cli.bench import refuse_remote
    from leaderboard.cli.stack_state import with_running_stack

    err = Console(stderr=True)
    if args.rate <= 0 or args.duration <= 0 or args.players < 1:
        err.print("--rate and --duration must be > 0, --players >= 1")
        return 2
    settings = with_running_stack(settings)
    if refuse_remote(settings, args.allow_remote, err):
        return 2
    return asyncio.run(_demo(args, settings, err))


async def _demo(args: argparse.Namespace, settings: Settings, err: Console) -> int:
    from leaderboard.bench.accounts import login_admin
    from leaderboard.bench.availability import NotImplementedYet
    from leaderboard.bench.demo import GAMES, demo_password, demo_players, ensure_boards, log_in_all, run_demo
    from leaderboard.client import Client

    base = Client.from_settings(settings)
    try:
        admin = await login_admin(base, settings)
        created = await ensure_boards(admin.client)
        if created:
            err.print(f"created leaderboards: {', '.join(created)}")
        players = demo_players(args.players)
        password = demo_password(settings)
        with err.status(f"logging in {len(players)} players (argon2: a few per second) ..."):
            await log_in_all(base, players, password)
        err.print("watch it live:  " + "   ".join(f"leaderboard watch {g.board_id}" for g in GAMES))
        progress = Progress(
            TextColumn("demo"), BarColumn(), TextColumn("{task.fields[line]}"), TimeElapsedColumn(), console=err
        )
        with progress:
            task = progress.add_task("demo", total=1.0, line="")
            stats = await run_demo(
                base,
                players,
                password,
                rate=args.rate,
                duration_s=args.duration,
                on_tick=lambda s, f: progress.update(task, completed=f, line=s.line()),
            )
        Console().print(
            f"demo done: {stats.sent:,} submitted at {args.rate:g}/s for {args.duration:g} s; {stats.line()}"
        )
        return 0
    except NotImplementedYet as exc:
        err.print(f"[yellow]not implemented yet[/yellow]: {exc}; nothing to demo")
        return 1
    finally:
        await base.close()
