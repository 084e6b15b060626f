"""`leaderboard demo`: players of a few games submitting scores at a steady rate.

Gives `leaderboard watch` something to show. Players are real accounts
(registered once, reused by later demos: their password is kept in the data
dir) and submit for themselves, so leaderboards show their display names.
The rate is open-loop: submissions are started on schedule whether or not
earlier ones have returned, up to a bound on those in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from leaderboard.bench.accounts import Caller
from leaderboard.bench.availability import require
from leaderboard.client import Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.secret_file import persistent_secret
from leaderboard.v1 import auth_pb2, common_pb2, ranking_pb2, scores_pb2

MAX_IN_FLIGHT = 256
_PASSWORD_FILE = "demo_players_password"
_NAMES = ("nova", "blaze", "pixel", "echo", "rogue", "viper", "comet", "frost", "ember", "zephyr", "orbit", "jinx")


@dataclass(frozen=True)
class Game:
    board_id: str
    display_name: str
    sort_order: common_pb2.SortOrder.ValueType
    update_policy: common_pb2.UpdatePolicy.ValueType
    score: Callable[[random.Random, float], int]  # (rng, skill) -> a plausible score


GAMES = (
    Game(
        "demo-space-race",
        "Space Race: high score",
        common_pb2.SORT_ORDER_DESCENDING,
        common_pb2.UPDATE_POLICY_BEST,
        lambda rng, skill: max(0, int(skill * rng.gauss(10_000, 2_500))),
    ),
    Game(
        "demo-tower-quest",
        "Tower Quest: points (summed)",
        common_pb2.SORT_ORDER_DESCENDING,
        common_pb2.UPDATE_POLICY_SUM,
        lambda rng, skill: max(1, int(skill * rng.gauss(100, 30))),
    ),
    Game(
        "demo-kart-rally",
        "Kart Rally: best lap (ms, lower wins)",
        common_pb2.SORT_ORDER_ASCENDING,
        common_pb2.UPDATE_POLICY_BEST,
        lambda rng, skill: max(30_000, int(90_000 / skill * rng.gauss(1.0, 0.05))),
    ),
)


@dataclass
class DemoPlayer:
    username: str
    display_name: str
    skill: float
    caller: Caller | None = None


@dataclass
class DemoStats:
    started: float = field(default_factory=time.perf_counter)
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # due while MAX_IN_FLIGHT were outstanding: the deployment is behind

    def line(self) -> str:
        elapsed = max(1e-9, time.perf_counter() - self.started)
        errors = ", ".join(f"{k} {v}" for k, v in self.errors.items()) or "none"
        behind = f", {self.skipped} skipped (behind)" if self.skipped else ""
        return f"{self.ok:,} acknowledged ({self.ok / elapsed:,.0f}/s), errors: {errors}{behind}"


def demo_password(settings: Settings) -> str:
    return persistent_secret(settings.data_dir / _PASSWORD_FILE, nbytes=18)


def demo_players(count: int) -> list[DemoPlayer]:
    rng = random.Random(7)  # the same players every run: accounts are reused
    return [
        DemoPlayer(
            f"demo-{_NAMES[i % len(_NAMES)]}-{i}",
            f"{_NAMES[i % len(_NAMES)].title()} {i}",
            rng.uniform(0.6, 1.4),
        )
        for i in range(count)
    ]


async def ensure_boards(admin: Client) -> list[str]:
    """Create the demo leaderboards that do not exist yet; returns the ids created."""
    created = []
    for game in GAMES:
        try:
            await require(
                "RankingService.GetLeaderboard",
                admin.ranking.GetLeaderboard(
                    ranking_pb2.GetLeaderboardRequest(leaderboard_id=game.board_id), metadata=admin.metadata
                ),
            )
            continue
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        board = common_pb2.Leaderboard(
            id=game.board_id,
            game_id=game.board_id.removeprefix("demo-"),
            display_name=game.display_name,
            sort_order=game.sort_order,
            update_policy=game.update_policy,
            windows=[common_pb2.WINDOW_DAILY, common_pb2.WINDOW_WEEKLY],
            global_weight=0.0,  # lap times and points do not add up to anything global
        )
        try:
            await require(
                "RankingService.CreateLeaderboard",
                admin.ranking.CreateLeaderboard(
                    ranking_pb2.CreateLeaderboardRequest(leaderboard=board), metadata=admin.metadata
                ),
            )
            created.append(game.board_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:  # another demo won the race
                raise
    return created


async def log_in(base: Client, player: DemoPlayer, password: str) -> None:
    """Register the player unless it exists, then log in."""
    try:
        await require(
            "AuthService.Register",
            base.auth.Register(
                auth_pb2.RegisterRequest(username=player.username, password=password, display_name=player.display_name)
            ),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    reply = await require(
        "AuthService.Login", base.auth.Login(auth_pb2.LoginRequest(username=player.username, password=password))
    )
    player.caller = Caller(base.with_token(reply.access_token), reply.access_token_expire_time.ToSeconds())


async def log_in_all(base: Client, players: list[DemoPlayer], password: str, in_flight: int = 4) -> None:
    gate = asyncio.Semaphore(in_flight)  # two argon2 hashes each: a few at a time

    async def one(player: DemoPlayer) -> None:
        async with gate:
            await log_in(base, player, password)

    await asyncio.gather(*(one(p) for p in players))


async def submit_one(base: Client, player: DemoPlayer, game: Game, password: str, rng: random.Random) -> None:
    if player.caller is None or not player.caller.fresh():
        await log_in(base, player, password)
    assert player.caller is not None
    client = player.caller.client
    request = scores_pb2.SubmitScoreRequest(
        leaderboard_id=game.board_id, score=game.score(rng, player.skill), request_id=str(uuid.uuid4())
    )
    await require("ScoreService.SubmitScore", client.scores.SubmitScore(request, metadata=client.metadata))


async def run_demo(
    base: Client,
    players: list[DemoPlayer],
    password: str,
    *,
    rate: float,
    duration_s: float,
    on_tick: Callable[[DemoStats, float], None] | None = None,
) -> DemoStats:
    """Submit `rate` scores per second for `duration_s` seconds; returns what happened."""
    rng = random.Random()
    stats = DemoStats()
    in_flight: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def one(player: DemoPlayer, game: Game) -> None:
        try:
            await submit_one(base, player, game, password, rng)
            stats.ok += 1
        except grpc.aio.AioRpcError as exc:
            stats.errors[exc.code().name] += 1
        except Exception as exc:  # NotImplementedYet ends the demo
            failure.append(exc)

    started = time.perf_counter()
    while not failure:
        elapsed = time.perf_counter() - started
        if elapsed >= duration_s:
            break
        due = int(elapsed * rate) - stats.sent - stats.skipped
        for _ in range(max(0, due)):
            if len(in_flight) >= MAX_IN_FLIGHT:
                stats.skipped += 1
                continue
            stats.sent += 1
            task = asyncio.create_task(one(rng.choice(players), rng.choice(GAMES)))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if on_tick is not None:
            on_tick(stats, min(1.0, elapsed / duration_s))
        await asyncio.sleep(0.02)
    if in_flight:
        await asyncio.wait(in_flight, timeout=15)
    if failure:
        raise failure[0]
    return stats
