"""`leaderboard watch <leaderboard_id>`: a live top-N table.

Follows RankingService.SubscribeRankUpdates (a snapshot, then coalesced
changes). While that RPC answers UNIMPLEMENTED it polls ListTopEntries every
second instead, and says so under the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import grpc
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from leaderboard.client import Client
from leaderboard.runtime.config import Settings
from leaderboard.v1 import common_pb2, ranking_pb2

WINDOWS = {
    "all-time": common_pb2.WINDOW_ALL_TIME,
    "daily": common_pb2.WINDOW_DAILY,
    "weekly": common_pb2.WINDOW_WEEKLY,
    "monthly": common_pb2.WINDOW_MONTHLY,
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("watch", help="live top-N table of a leaderboard")
    parser.add_argument("leaderboard_id")
    parser.add_argument("--top", type=int, default=10, help="entries to show (1-100, default 10)")
    parser.add_argument("--window", choices=list(WINDOWS), default="all-time")
    parser.add_argument("--token", default="", help="access token to watch with (default: the local bench admin)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls when polling")
    parser.add_argument("--allow-remote", action="store_true", help="allow targets that are not loopback addresses")
    parser.set_defaults(handler=run)


@dataclass
class View:
    leaderboard_id: str
    window: str
    entries: list[common_pb2.LeaderboardEntry] = field(default_factory=list)
    total_players: int = 0
    messages: int = 0
    mode: str = "connecting ..."
    updated: float = 0.0

    def render(self) -> Group:
        table = Table(title=f"{self.leaderboard_id} — {self.window}", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("player")
        table.add_column("score", justify="right")
        table.add_column("since")
        for entry in self.entries:
            achieved = (
                entry.achieved_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if entry.HasField("achieved_at") else ""
            )
            table.add_row(str(entry.rank), entry.display_name or entry.user_id, f"{entry.score:,}", achieved)
        if not self.entries:
            table.add_row("", "[dim]no entries yet[/dim]", "", "")
        # Under the table, not as its caption: a narrow table would wrap it.
        return Group(table, Text(self.caption(), style="dim"))

    def caption(self) -> str:
        age = f", updated {time.time() - self.updated:.0f} s ago" if self.updated else ""
        return f"{self.total_players:,} players · {self.mode}{age}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.cli.bench import refuse_remote
    from leaderboard.cli.stack_state import with_running_stack

    err = Console(stderr=True)
    if not 1 <= args.top <= 100 or args.interval <= 0:
        err.print("--top must be 1-100 and --interval > 0")
        return 2
    settings = with_running_stack(settings)
    if refuse_remote(settings, args.allow_remote, err):
        return 2
    return asyncio.run(_watch(args, settings, err))


async def _watch(args: argparse.Namespace, settings: Settings, err: Console) -> int:
    from leaderboard.bench.accounts import login_admin
    from leaderboard.bench.availability import NotImplementedYet

    base = Client.from_settings(settings)
    view = View(args.leaderboard_id, args.window)
    try:
        client = base.with_token(args.token) if args.token else (await login_admin(base, settings)).client
        with Live(view.render(), console=Console(), refresh_per_second=4) as live:
            follow = _follow(client, args, view, live)
            if args.duration > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(follow, args.duration)
            else:
                await follow
        return 0
    except NotImplementedYet as exc:
        err.print(f"[yellow]not implemented yet[/yellow]: {exc}")
        return 1
    except grpc.aio.AioRpcError as exc:
        err.print(f"[red]{exc.code().name}[/red]: {exc.details()}")
        return 1
    finally:
        await base.close()


async def _follow(client: Client, args: argparse.Namespace, view: View, live: Live) -> None:
    window = WINDOWS[args.window]
    request = ranking_pb2.SubscribeRankUpdatesRequest(leaderboard_id=args.leaderboard_id, window=window, top_n=args.top)
    try:
        async for message in client.ranking.SubscribeRankUpdates(request, metadata=client.metadata):
            view.messages += 1
            # A delta carries the whole top list when it changed, nothing when it did not.
            if message.kind == ranking_pb2.RANK_UPDATE_KIND_SNAPSHOT or message.top_entries:
                view.entries = list(message.top_entries)
            view.total_players = message.total_players
            view.mode = f"streaming (SubscribeRankUpdates, {view.messages:,} messages)"
            view.updated = time.time()
            live.update(view.render())
        return
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
    await _poll(client, args, view, live, window)


async def _poll(client: Client, args: argparse.Namespace, view: View, live: Live, window: int) -> None:
    from leaderboard.bench.availability import require

    request = ranking_pb2.ListTopEntriesRequest(
        leaderboard_id=args.leaderboard_id,
        window=window,  # type: ignore[arg-type]
        page_size=args.top,
    )
    while True:
        reply = await require(
            "RankingService.ListTopEntries", client.ranking.ListTopEntries(request, metadata=client.metadata)
        )
        view.entries = list(reply.entries)
        view.total_players = reply.total_players
        view.mode = f"polling ListTopEntries every {args.interval:g} s (SubscribeRankUpdates is not implemented yet)"
        view.updated = time.time()
        live.update(view.render())
        await asyncio.sleep(args.interval)
