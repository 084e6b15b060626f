"""AuthService over real gRPC with real PostgreSQL and Redis: accounts, logins,
refresh-token families, roles, service accounts, and what is stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import text

from leaderboard.client import Client, error_details
from leaderboard.runtime.db import create_engine
from leaderboard.v1 import auth_pb2, common_pb2, ranking_pb2
from services.auth.app import AuthServiceApp
from services.auth.bootstrap import set_locked
from tests.accounts import new_admin, new_game_server, new_password, new_player, unique_name
from tests.conftest import Stack


async def fails(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def register(stack: Stack, username: str, password: str, display_name: str = "") -> common_pb2.User:
    reply = await stack.client.auth.Register(
        auth_pb2.RegisterRequest(username=username, password=password, display_name=display_name)
    )
    return reply.user


async def login(client: Client, username: str, password: str) -> auth_pb2.LoginResponse:
    return await client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))


async def me(client: Client, token: str) -> common_pb2.User:
    caller = client.with_token(token)
    reply = await caller.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.metadata)
    return reply.user


async def refresh(client: Client, token: str) -> auth_pb2.RefreshTokenResponse:
    return await client.auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token))


# --- register / login / refresh / logout ---------------------------------------------------------


async def test_register_login_refresh_logout_round_trip(stack: Stack) -> None:
    username, password = unique_name("round"), new_password()
    user = await register(stack, username, password, "Round Trip")
    assert (user.username, user.display_name, user.role) == (username, "Round Trip", common_pb2.ROLE_PLAYER)
    assert user.create_time.seconds > 0

    session = await login(stack.client, username, password)
    assert session.user.id == user.id
    assert session.refresh_token and session.refresh_token != session.access_token
    ttl = session.access_token_expire_time.ToSeconds() - time.time()
    assert stack.settings.access_token_ttl_seconds - 60 < ttl <= stack.settings.access_token_ttl_seconds
    assert (await me(stack.client, session.access_token)).id == user.id

    rotated = await refresh(stack.client, session.refresh_token)
    assert rotated.refresh_token != session.refresh_token
    assert rotated.access_token != session.access_token
    assert (await me(stack.client, rotated.access_token)).username == username
    again = await refresh(stack.client, rotated.refresh_token)  # the new one rotates too

    await stack.client.auth.Logout(auth_pb2.LogoutRequest(refresh_token=again.refresh_token))
    err = await fails(refresh(stack.client, again.refresh_token))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err)[0] == "REFRESH_TOKEN_REVOKED"
    # Logout is idempotent, also for tokens it never saw.
    await stack.client.auth.Logout(auth_pb2.LogoutRequest(refresh_token=again.refresh_token))
    await stack.client.auth.Logout(auth_pb2.LogoutRequest(refresh_token="never-issued"))


async def test_refresh_reuse_revokes_the_whole_family_only(stack: Stack) -> None:
    username, password = unique_name("reuse"), new_password()
    await register(stack, username, password)
    first = await login(stack.client, username, password)
    other_session = await login(stack.client, username, password)
    second = await refresh(stack.client, first.refresh_token)

    err = await fails(refresh(stack.client, first.refresh_token))  # replayed: stolen or leaked
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err)[0] == "REFRESH_TOKEN_REUSED"
    # The legitimate holder's newer token is dead too: the whole family is revoked ...
    err = await fails(refresh(stack.client, second.refresh_token))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err)[0] == "REFRESH_TOKEN_REVOKED"
    # ... but not the user's other login.
    assert (await refresh(stack.client, other_session.refresh_token)).access_token


async def test_unknown_refresh_token_is_unauthenticated(stack: Stack) -> None:
    err = await fails(refresh(stack.client, "x" * 43))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err)[0] == "INVALID_REFRESH_TOKEN"
    err = await fails(refresh(stack.client, ""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_display_name_defaults_to_username_and_is_in_the_token(stack: Stack) -> None:
    player = await new_player(stack)
    assert player.display_name == player.username
    named = await new_player(stack, "  Zoë   the\u200b Great ")
    # Whitespace collapsed, invisible format characters dropped.
    assert named.display_name == "Zoë the Great"
    verified = await cast(AuthServiceApp, stack.services["auth"].service).runtime.verifier.verify(named.token)
    assert (verified.display_name, verified.username) == ("Zoë the Great", named.username)


# --- enumeration, locked accounts, timing ---------------------------------------------------------


async def timed(call: Awaitable[Any]) -> tuple[float, grpc.aio.AioRpcError]:
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return time.perf_counter() - started, err.value


async def test_unknown_user_wrong_password_and_locked_account_look_the_same(stack: Stack) -> None:
    users = [(unique_name("enum"), new_password()) for _ in range(2)]
    for username, password in users:
        await register(stack, username, password)
    locked_name, locked_password = unique_name("locked"), new_password()
    await register(stack, locked_name, locked_password)
    await set_locked(stack.settings, locked_name, True)

    unknown, wrong = [], []
    # Interleaved, so a busy machine slows both alike; four wrong guesses per
    # account (its back-off starts after the fifth failure).
    for i in range(8):
        username, password = users[i % 2]
        unknown.append(await timed(login(stack.client, unique_name("nobody"), password)))
        wrong.append(await timed(login(stack.client, username, "wrong-" + password)))
    locked = await timed(login(stack.client, locked_name, locked_password))

    answers = {(e.code(), e.details(), error_details(e)[0]) for _, e in [*unknown, *wrong, locked]}
    assert answers == {(grpc.StatusCode.UNAUTHENTICATED, "invalid username or password", "INVALID_CREDENTIALS")}
    # An unknown user pays a hash too: without it the answer would come ~10x
    # sooner. The fastest of each is what the work costs, whatever else runs.
    unknown_fastest, wrong_fastest = min(t for t, _ in unknown), min(t for t, _ in wrong)
    assert 1 / 3 < unknown_fastest / wrong_fastest < 3, (unknown_fastest, wrong_fastest)

    await set_locked(stack.settings, locked_name, False)
    assert (await login(stack.client, locked_name, locked_password)).user.username == locked_name


async def test_locking_ends_refresh(stack: Stack) -> None:
    username, password = unique_name("lockref"), new_password()
    await register(stack, username, password)
    session = await login(stack.client, username, password)
    await set_locked(stack.settings, username, True)
    err = await fails(refresh(stack.client, session.refresh_token))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


# --- registration rules ----------------------------------------------------------------------------


async def register_error(stack: Stack, username: str, password: str) -> tuple[grpc.StatusCode, str, str]:
    err = await fails(register(stack, username, password))
    reason, metadata = error_details(err)
    return err.code(), reason, metadata.get("field", "")


async def test_duplicate_username_is_already_exists_case_insensitively(stack: Stack) -> None:
    base, password = unique_name("dup"), new_password()
    user = await register(stack, base.upper(), password)
    assert user.username == base  # stored lower case
    err = await fails(register(stack, base, new_password()))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(err)[0] == "USERNAME_TAKEN"
    err = await fails(register(stack, base.title(), new_password()))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    # Login is case-insensitive in the username too.
    assert (await login(stack.client, base.title(), password)).user.id == user.id


@pytest.mark.parametrize(
    "username",
    ["ab", "x" * 33, "has space", "semi;colon", "émile", "svc_reserved", ""],
)
async def test_bad_usernames_are_invalid_argument(stack: Stack, username: str) -> None:
    code, reason, field = await register_error(stack, username, new_password())
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USERNAME", "username")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "PASSWORD_TOO_COMMON"),
        ("iloveyou", "PASSWORD_TOO_COMMON"),
        ("PassWord", "PASSWORD_TOO_COMMON"),  # the blocklist ignores case
        ("qwertyuiop", "PASSWORD_TOO_COMMON"),
        ("aaaaaaaaaaaa", "PASSWORD_TOO_COMMON"),
        ("seven77", "PASSWORD_TOO_SHORT"),
        ("x" * 129, "PASSWORD_TOO_LONG"),
    ],
)
async def test_bad_passwords_are_invalid_argument(stack: Stack, password: str, reason: str) -> None:
    code, got_reason, field = await register_error(stack, unique_name("pw"), password)
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "password")


async def test_password_equal_to_username_is_refused(stack: Stack) -> None:
    name = unique_name("same")
    assert await register_error(stack, name, name.upper()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PASSWORD_IS_USERNAME",
        "password",
    )


async def test_128_characters_accepted_and_never_truncated(stack: Stack) -> None:
    username = unique_name("long")
    password = (uuid.uuid4().hex * 4)[:128]
    await register(stack, username, password)
    assert (await login(stack.client, username, password)).user.username == username
    for prefix in (password[:127], password[:72], password[:64]):  # bcrypt-style truncation would pass these
        err = await fails(login(stack.client, username, prefix))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_passwords_are_nfkc_normalised_and_any_unicode_is_allowed(stack: Stack) -> None:
    # Full-width letters (an East Asian keyboard) are the same password as ASCII ones.
    username = unique_name("nfkc")
    await register(stack, username, "".join(chr(ord(c) + 0xFEE0) for c in "top-secret-phrase"))
    assert (await login(stack.client, username, "top-secret-phrase")).user.username == username
    # A decomposed é (e + combining acute) is the precomposed one.
    username = unique_name("nfkc")
    await register(stack, username, "cafe\u0301 au lait, s'il vous plaît")
    assert await login(stack.client, username, "caf\u00e9 au lait, s'il vous plaît")
    # Emoji and spaces are fine; 8 code points is long enough whatever their bytes.
    username = unique_name("emoji")
    await register(stack, username, "🐉🐉 🔥🔥 🗝️")
    assert await login(stack.client, username, "🐉🐉 🔥🔥 🗝️")


# --- roles, service accounts, internal tokens ------------------------------------------------------


async def test_player_and_server_cannot_call_admin_rpcs(stack: Stack) -> None:
    player, server = await new_player(stack), await new_game_server(stack)
    for caller in (player, server):
        err = await fails(
            caller.client.auth.CreateServiceAccount(
                auth_pb2.CreateServiceAccountRequest(name="sneaky fleet"), metadata=caller.client.metadata
            )
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_details(err)[0] == "ROLE_NOT_ALLOWED"
    err = await fails(
        player.client.ranking.CreateLeaderboard(ranking_pb2.CreateLeaderboardRequest(), metadata=player.client.metadata)
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_accounts_have_their_roles(stack: Stack) -> None:
    player, admin, server = await new_player(stack), await new_admin(stack), await new_game_server(stack)
    assert (await me(stack.client, player.token)).role == common_pb2.ROLE_PLAYER
    assert (await me(stack.client, admin.token)).role == common_pb2.ROLE_ADMIN
    server_user = await me(stack.client, server.token)
    assert (server_user.role, server_user.id, server_user.username) == (
        common_pb2.ROLE_SERVER,
        server.user_id,
        server.username,
    )
    assert server.username.startswith("svc_")


async def test_service_account_secret_is_checked(stack: Stack) -> None:
    admin = await new_admin(stack)
    created = await admin.client.auth.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name="EU fleet"), metadata=admin.client.metadata
    )
    assert created.user.role == common_pb2.ROLE_SERVER and created.user.display_name == "EU fleet"
    issue = stack.client.auth.IssueServiceToken
    good = await issue(
        auth_pb2.IssueServiceTokenRequest(client_id=created.client_id, client_secret=created.client_secret)
    )
    assert (await me(stack.client, good.access_token)).id == created.user.id
    for client_id, secret in [
        (created.client_id, created.client_secret + "x"),
        (created.client_id, created.client_secret[:-1]),
        ("svc_000000000000000000000000", created.client_secret),
    ]:
        err = await fails(issue(auth_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=secret)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (err.details(), error_details(err)[0]) == ("invalid client id or secret", "INVALID_CLIENT_CREDENTIALS")
    # Service accounts have no password: Login never lets them in.
    err = await fails(login(stack.client, created.client_id, created.client_secret))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_service_account_names_are_invalid_argument(stack: Stack) -> None:
    admin = await new_admin(stack)
    for name in ("", "ab", "x" * 65):
        err = await fails(
            admin.client.auth.CreateServiceAccount(
                auth_pb2.CreateServiceAccountRequest(name=name), metadata=admin.client.metadata
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(err)[1]["field"] == "name"


async def test_internal_service_token(stack: Stack) -> None:
    issue = stack.client.auth.IssueServiceToken
    reply = await issue(
        auth_pb2.IssueServiceTokenRequest(client_id="internal:scores", client_secret=stack.settings.internal_secret)
    )
    user = await me(stack.client, reply.access_token)
    assert (user.id, user.username, user.role) == ("internal:scores", "internal:scores", common_pb2.ROLE_SERVER)
    for client_id, secret in [
        ("internal:scores", stack.settings.internal_secret + "x"),
        ("internal:scores", ""),
        ("internal:", stack.settings.internal_secret),
        ("internal:Bad Name", stack.settings.internal_secret),
    ]:
        err = await fails(issue(auth_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=secret)))
        assert err.code() in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT}


# --- storage --------------------------------------------------------------------------------------


async def auth_rows(stack: Stack) -> list[str]:
    """Every row of every table in the auth schema, as text (bytea as hex)."""
    engine = create_engine(stack.settings.postgres_url, pool_size=1)
    rows: list[str] = []
    async with engine.connect() as conn:
        tables = (
            await conn.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth'"))
        ).scalars()
        for table in list(tables):
            result = await conn.execute(text(f'SELECT t::text FROM auth."{table}" t'))
            rows.extend(str(row) for row in result.scalars())
    await engine.dispose()
    return rows


async def test_no_plaintext_password_secret_or_refresh_token_in_any_table(stack: Stack) -> None:
    username, password = unique_name("plain"), "Plaintext-Canary-" + uuid.uuid4().hex
    await register(stack, username, password)
    session = await login(stack.client, username, password)
    rotated = await refresh(stack.client, session.refresh_token)
    admin = await new_admin(stack)
    created = await admin.client.auth.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(name="canary fleet"), metadata=admin.client.metadata
    )
    _, private_key = await cast(AuthServiceApp, stack.services["auth"].service).keyring.signer()
    from cryptography.hazmat.primitives import serialization

    raw_private = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )

    secrets = {
        "password": password,
        "refresh token": session.refresh_token,
        "rotated refresh token": rotated.refresh_token,
        "client secret": created.client_secret,
        "internal secret": stack.settings.internal_secret,
        "signing key secret": stack.settings.signing_key_secret,
    }
    rows = "\n".join(await auth_rows(stack))
    assert username in rows  # the scan does see the data
    for what, value in secrets.items():
        assert value not in rows, what
        assert value.encode().hex() not in rows, what
        assert value.lower() not in rows.lower(), what
    assert raw_private.hex() not in rows
    assert "PRIVATE KEY" not in rows


# --- hashing --------------------------------------------------------------------------------------


async def test_stored_hashes_are_argon2id_at_the_configured_cost(stack: Stack) -> None:
    player = await new_player(stack)
    engine = create_engine(stack.settings.postgres_url, pool_size=1)
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT password_hash FROM auth.users WHERE username = :u"), {"u": player.username})
        ).scalar_one()
    await engine.dispose()
    settings = stack.settings
    assert stored.startswith(f"$argon2id$v=19$m={settings.argon2_memory_kib},t={settings.argon2_time_cost},p=1$")
    assert settings.argon2_memory_kib >= 19456 and settings.argon2_time_cost >= 2


async def test_concurrent_logins_all_succeed(stack: Stack) -> None:
    username, password = unique_name("flood"), new_password()
    await register(stack, username, password)
    replies = await asyncio.gather(*(login(stack.client, username, password) for _ in range(12)))
    assert {r.user.username for r in replies} == {username}
    assert len({r.refresh_token for r in replies}) == 12
