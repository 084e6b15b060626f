"""The callers a benchmark needs: an admin, a game server, players.

The admin is created directly in PostgreSQL by AuthService's bootstrap
(`services.auth.bootstrap.ensure_admin`; the CLI may import service modules),
then logs in like anyone else. The admin makes a service account whose
ROLE_SERVER token submits scores for any player.
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from leaderboard.bench.availability import NotImplementedYet, require
from leaderboard.client import Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.secret_file import persistent_secret
from leaderboard.v1 import auth_pb2

ADMIN_USERNAME = "bench-admin"
_BOOTSTRAP = "services.auth.bootstrap"
_PASSWORD_FILE = "bench_admin_password"
# Renew a token this long before it expires: a measurement never sees one expire.
_RENEW_MARGIN_S = 120.0

EnsureAdmin = Callable[..., Awaitable[str]]


def admin_password(settings: Settings) -> str:
    """The bench admin's password: random, created once per data dir, readable only by us."""
    return persistent_secret(settings.data_dir / _PASSWORD_FILE, nbytes=24)


def _ensure_admin_function() -> EnsureAdmin:
    try:
        module = importlib.import_module(_BOOTSTRAP)
    except ModuleNotFoundError as exc:
        if exc.name != _BOOTSTRAP:
            raise
        raise NotImplementedYet("AuthService", "services/auth/bootstrap.py (ensure_admin) does not exist yet") from None
    return cast(EnsureAdmin, module.ensure_admin)


@dataclass
class Caller:
    """A logged-in client whose token is renewed before it expires."""

    client: Client
    expires_at: float

    def fresh(self) -> bool:
        return time.time() < self.expires_at - _RENEW_MARGIN_S


async def login_admin(base: Client, settings: Settings, username: str = ADMIN_USERNAME) -> Caller:
    ensure_admin = _ensure_admin_function()
    password = admin_password(settings)
    await ensure_admin(settings, username, password, display_name="Benchmark admin")
    reply = await require(
        "AuthService.Login", base.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    )
    return Caller(base.with_token(reply.access_token), reply.access_token_expire_time.ToSeconds())


@dataclass(frozen=True)
class ServiceAccount:
    client_id: str
    client_secret: str


async def create_service_account(admin: Client, name: str) -> ServiceAccount:
    reply = await require(
        "AuthService.CreateServiceAccount",
        admin.auth.CreateServiceAccount(auth_pb2.CreateServiceAccountRequest(name=name), metadata=admin.metadata),
    )
    return ServiceAccount(reply.client_id, reply.client_secret)


async def issue_server_token(base: Client, client_id: str, client_secret: str) -> Caller:
    reply = await require(
        "AuthService.IssueServiceToken",
        base.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=client_secret)
        ),
    )
    return Caller(base.with_token(reply.access_token), reply.access_token_expire_time.ToSeconds())


@dataclass(frozen=True)
class Player:
    username: str
    password: str


async def register_players(base: Client, count: int, *, in_flight: int = 4) -> list[Player]:
    """Register `count` fresh players (argon2 per account: a few at a time)."""
    run = uuid.uuid4().hex[:8]
    players = [Player(f"bench-{run}-{i}", secrets.token_urlsafe(18)) for i in range(count)]
    gate = asyncio.Semaphore(in_flight)

    async def register(player: Player) -> None:
        async with gate:
            await require(
                "AuthService.Register",
                base.auth.Register(auth_pb2.RegisterRequest(username=player.username, password=player.password)),
            )

    await asyncio.gather(*(register(p) for p in players))
    return players
