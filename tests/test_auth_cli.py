"""`leaderboard admin ...` as a subprocess against the test database, the
bootstrap functions behind it, and signing-key rotation end to end."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import cast

import grpc
import jwt
import pytest

from leaderboard.runtime.errors import AlreadyExists
from leaderboard.v1 import auth_pb2, common_pb2, ranking_pb2
from services.auth.app import AuthServiceApp
from services.auth.bootstrap import ensure_admin
from tests.accounts import new_password, new_player, unique_name
from tests.conftest import Stack

REPO = Path(__file__).resolve().parent.parent


async def cli(*args: str, env: dict[str, str], stdin: str = "", cwd: Path = REPO) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADERBOARD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leaderboard.cli.main",
        "admin",
        *args,
        env={**base, **env},
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def db_env(stack: Stack) -> dict[str, str]:
    return {
        "LEADERBOARD_POSTGRES_URL": stack.settings.postgres_url,
        "LEADERBOARD_SIGNING_KEY_SECRET": stack.settings.signing_key_secret,
    }


async def test_cli_create_admin_then_login_as_admin(stack: Stack) -> None:
    username, password = unique_name("cli-admin"), "admin pass " + uuid.uuid4().hex
    code, out, err = await cli(
        "create-admin", "--username", username, "--password-stdin", env=db_env(stack), stdin=password + "\n"
    )
    assert code == 0, err
    reply = await stack.client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    assert reply.user.role == common_pb2.ROLE_ADMIN
    assert f"created admin {username} (user id {reply.user.id})" in out

    # Idempotent: a second run keeps the admin (and its password).
    code, out, err = await cli(
        "create-admin", "--username", username, "--password-stdin", env=db_env(stack), stdin="other-password\n"
    )
    assert code == 0, err
    assert reply.user.id in out and "already exists" in out
    assert (await stack.client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))).user


async def test_cli_refuses_weak_admin_password_and_says_why(stack: Stack) -> None:
    code, _, err = await cli(
        "create-admin", "--username", unique_name("weak"), "--password-stdin", env=db_env(stack), stdin="password\n"
    )
    assert code == 1
    assert "common" in err
    assert len(err.strip().splitlines()) == 1


async def test_cli_finds_the_stack_from_endpoints_env(stack: Stack, tmp_path: Path) -> None:
    """Run from a directory where `make up` wrote .leaderboard/endpoints.env: no flags, no env."""
    state = tmp_path / ".leaderboard"
    state.mkdir()
    (state / "endpoints.env").write_text(
        f"LEADERBOARD_POSTGRES_URL={stack.settings.postgres_url}\nLEADERBOARD_REDIS_URL={stack.settings.redis_url}\n"
    )
    code, out, err = await cli("create-service-account", "--name", "CLI fleet", env={}, cwd=tmp_path)
    assert code == 0, err
    values = dict(line.split("=", 1) for line in out.strip().splitlines())
    assert values["client_id"].startswith("svc_")
    assert "not shown again" in err
    reply = await stack.client.auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(client_id=values["client_id"], client_secret=values["client_secret"])
    )
    caller = stack.client.with_token(reply.access_token)
    user = (await caller.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.metadata)).user
    assert (user.role, user.display_name) == (common_pb2.ROLE_SERVER, "CLI fleet")


async def test_cli_without_a_stack_says_how_to_start_one(tmp_path: Path) -> None:
    code, _, err = await cli("rotate-signing-key", env={}, cwd=tmp_path)
    assert code == 1
    assert "make up" in err and "LEADERBOARD_POSTGRES_URL" in err


async def test_ensure_admin_is_idempotent_and_never_takes_over_a_player(stack: Stack) -> None:
    username, password = unique_name("boot"), new_password()
    first = await ensure_admin(stack.settings, username, password, "Boot Admin")
    assert await ensure_admin(stack.settings, username, password) == first
    assert await ensure_admin(stack.settings, username.upper(), "ignored-" + password) == first
    player = await new_player(stack)
    with pytest.raises(AlreadyExists):
        await ensure_admin(stack.settings, player.username, password)


async def test_rotate_signing_key_keeps_old_tokens_valid(stack: Stack) -> None:
    app = cast(AuthServiceApp, stack.services["auth"].service)
    before = await new_player(stack)
    old_kid = jwt.get_unverified_header(before.token)["kid"]

    code, out, err = await cli("rotate-signing-key", env=db_env(stack))
    assert code == 0, err
    new_kid = out.split("new signing key: ", 1)[1].split()[0]
    assert new_kid != old_kid and f"retired {old_kid}" in out

    keys = {k.kid: k for k in (await stack.client.auth.GetSigningKeys(auth_pb2.GetSigningKeysRequest())).keys}
    assert not keys[new_kid].HasField("expire_time")
    # The old key stays published until its last token has expired.
    remaining = keys[old_kid].expire_time.ToSeconds() - time.time()
    assert stack.settings.access_token_ttl_seconds < remaining <= stack.settings.access_token_ttl_seconds + 120

    await app.keyring.reload()  # what every auth process does within RELOAD_SECONDS
    after = await new_player(stack)
    assert jwt.get_unverified_header(after.token)["kid"] == new_kid
    # Verifiers elsewhere learn the new key on first sight (after their 1 s refetch guard).
    await asyncio.sleep(1.05)
    for account in (before, after):
        caller = account.client
        assert (
            await caller.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.metadata)
        ).user.id == account.user_id
        try:
            await caller.ranking.ListTopEntries(
                ranking_pb2.ListTopEntriesRequest(leaderboard_id="global"), metadata=caller.metadata
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() != grpc.StatusCode.UNAUTHENTICATED


async def test_login_rehashes_when_parameters_change(stack: Stack) -> None:
    import dataclasses

    from sqlalchemy import text

    from leaderboard.client import Client
    from leaderboard.runtime.db import create_engine
    from leaderboard.runtime.server import start_service

    async def stored_hash(username: str) -> str:
        engine = create_engine(stack.settings.postgres_url, pool_size=1)
        async with engine.connect() as conn:
            value = (
                await conn.execute(text("SELECT password_hash FROM auth.users WHERE username = :u"), {"u": username})
            ).scalar_one()
        await engine.dispose()
        return str(value)

    username, password = unique_name("rehash"), new_password()
    await stack.client.auth.Register(auth_pb2.RegisterRequest(username=username, password=password))
    assert ",t=2," in await stored_hash(username)
    stronger = dataclasses.replace(stack.settings, argon2_time_cost=3, redis_key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    running = await start_service("auth", stronger, port=0)
    client = Client({"auth": f"127.0.0.1:{running.port}"})
    try:
        await client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
        assert ",t=3," in await stored_hash(username)
    finally:
        await client.close()
        await running.stop(grace=0.2)
    # Both hashes verify the same password: logging in where t=2 still works (and rehashes back).
    await stack.client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    assert ",t=2," in await stored_hash(username)
