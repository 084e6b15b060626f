"""Logged-in callers for any test: players, admins and game servers, each with
a client that sends its token. Every call makes a new account (unique name)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from leaderboard.client import Client
from leaderboard.v1 import auth_pb2
from services.auth.bootstrap import ensure_admin
from tests.conftest import Stack


@dataclass
class Account:
    user_id: str
    username: str
    display_name: str
    token: str
    client: Client  # stack.client.with_token(token): pass client.metadata on each call


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def new_password() -> str:
    return f"pw-{uuid.uuid4().hex}"


async def login(stack: Stack, username: str, password: str) -> Account:
    """Login over gRPC; the account with a client that carries its token."""
    reply = await stack.client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    return Account(
        reply.user.id,
        reply.user.username,
        reply.user.display_name,
        reply.access_token,
        stack.client.with_token(reply.access_token),
    )


async def new_player(stack: Stack, display_name: str | None = None) -> Account:
    """Register + Login over gRPC."""
    username, password = unique_name("player"), new_password()
    await stack.client.auth.Register(
        auth_pb2.RegisterRequest(username=username, password=password, display_name=display_name or "")
    )
    return await login(stack, username, password)


async def new_admin(stack: Stack) -> Account:
    """Created like `leaderboard admin create-admin` does, then Login over gRPC."""
    username, password = unique_name("admin"), new_password()
    await ensure_admin(stack.settings, username, password)
    return await login(stack, username, password)


async def new_game_server(stack: Stack) -> Account:
    """A service account made by an admin, exchanged for a ROLE_SERVER token."""
    admin = await new_admin(stack)
    created = await admin.client.auth.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name=unique_name("game-server")), metadata=admin.client.metadata
    )
    reply = await stack.client.auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(client_id=created.client_id, client_secret=created.client_secret)
    )
    return Account(
        created.user.id,
        created.user.username,
        created.user.display_name,
        reply.access_token,
        stack.client.with_token(reply.access_token),
    )
