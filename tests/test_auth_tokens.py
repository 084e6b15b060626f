"""Access tokens: the JWT attack matrix against every kind of verifier (auth
itself and another service), the public keys, and signing-key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leaderboard.client import Client, error_details
from leaderboard.runtime.config import Settings
from leaderboard.v1 import auth_pb2, ranking_pb2, scores_pb2
from services.auth.app import AuthServiceApp
from services.auth.signing_keys import SigningKeyError, key_id, public_pem, resolve_secret, seal, unseal
from tests.accounts import Account, new_player
from tests.conftest import Stack


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def app(stack: Stack) -> AuthServiceApp:
    return cast(AuthServiceApp, stack.services["auth"].service)


def claims_for(settings: Settings, player: Account, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": player.user_id,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "role": "player",
        "username": player.username,
        "name": player.display_name,
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


async def forged_tokens(stack: Stack, player: Account) -> dict[str, str]:
    settings = stack.settings
    kid, key = await app(stack).keyring.signer()

    def signed(**changes: Any) -> str:
        return jwt.encode(claims_for(settings, player, **changes), key, algorithm="EdDSA", headers={"kid": kid})

    valid = signed()
    header, payload, signature = valid.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered_claims["role"] = "admin"
    public_key_pem = public_pem(key).encode()
    login = await stack.client.auth.Login(
        auth_pb2.LoginRequest(username=player.username, password=PASSWORDS[player.username])
    )
    other_key = Ed25519PrivateKey.generate()
    now = int(time.time())
    return {
        "alg none": compact({"alg": "none", "kid": kid, "typ": "JWT"}, claims_for(settings, player), lambda _: b""),
        "HS256 signed with the public key": compact(
            {"alg": "HS256", "kid": kid, "typ": "JWT"},
            claims_for(settings, player),
            lambda data: hmac.new(public_key_pem, data, hashlib.sha256).digest(),
        ),
        "wrong aud": signed(aud="someone-else"),
        "wrong iss": signed(iss="https://evil.example"),
        "expired": signed(iat=now - 3600, exp=now - 120),
        "tampered payload": f"{header}.{b64(json.dumps(tampered_claims).encode())}.{signature}",
        "refresh token as access token": login.refresh_token,
        "unknown kid": jwt.encode(
            claims_for(settings, player), other_key, algorithm="EdDSA", headers={"kid": key_id(other_key)}
        ),
        "known kid, other key": jwt.encode(
            claims_for(settings, player), other_key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "no kid": jwt.encode(claims_for(settings, player), key, algorithm="EdDSA"),
        "typ refresh": signed(typ="refresh"),
        "no typ": signed(typ=None),
        "no exp": signed(exp=None),
        "no jti": signed(jti=None),
        "unknown role": signed(role="superuser"),
        "not yet valid (iat in the future)": signed(iat=now + 3600, exp=now + 7200),
    }


PASSWORDS: dict[str, str] = {}


async def player_with_password(stack: Stack) -> Account:
    from tests.accounts import login, new_password, unique_name

    username, password = unique_name("jwt"), new_password()
    await stack.client.auth.Register(auth_pb2.RegisterRequest(username=username, password=password))
    PASSWORDS[username] = password
    return await login(stack, username, password)


Call = Callable[[Client], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "AuthService.GetCurrentUser": lambda c: c.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=c.metadata
    ),
    "RankingService.ListTopEntries": lambda c: c.ranking.ListTopEntries(
        ranking_pb2.ListTopEntriesRequest(leaderboard_id="global"), metadata=c.metadata
    ),
    "ScoreService.ListScoreHistory": lambda c: c.scores.ListScoreHistory(
        scores_pb2.ListScoreHistoryRequest(), metadata=c.metadata
    ),
}


async def test_jwt_matrix_every_forgery_is_unauthenticated_everywhere(stack: Stack) -> None:
    player = await player_with_password(stack)
    forged = await forged_tokens(stack, player)
    # The crafting itself is right: the same recipe with nothing wrong passes.
    kid, key = await app(stack).keyring.signer()
    control = jwt.encode(claims_for(stack.settings, player), key, algorithm="EdDSA", headers={"kid": kid})
    for name, call in CALLS.items():
        try:
            await call(stack.client.with_token(control))
        except grpc.aio.AioRpcError as err:
            assert err.code() != grpc.StatusCode.UNAUTHENTICATED, name
    failures = []
    for case, token in forged.items():
        for name, call in CALLS.items():
            try:
                await call(stack.client.with_token(token))
                failures.append(f"{case} accepted by {name}")
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                    failures.append(f"{case} at {name}: {err.code().name}")
                elif error_details(err)[0] not in {"INVALID_TOKEN", "TOKEN_EXPIRED"}:
                    failures.append(f"{case} at {name}: reason {error_details(err)}")
    assert not failures, failures


async def test_signing_keys_are_public_and_name_issuer_and_audience(stack: Stack) -> None:
    reply = await stack.client.auth.GetSigningKeys(auth_pb2.GetSigningKeysRequest())
    assert (reply.issuer, reply.audience) == (stack.settings.jwt_issuer, stack.settings.jwt_audience)
    current_kid, current_key = await app(stack).keyring.signer()
    by_kid = {k.kid: k for k in reply.keys}
    assert by_kid[current_kid].algorithm == "EdDSA"
    assert by_kid[current_kid].public_key_pem == public_pem(current_key)
    assert not by_kid[current_kid].HasField("expire_time")
    player = await new_player(stack)
    assert jwt.get_unverified_header(player.token)["kid"] == current_kid


async def test_key_is_sealed_with_the_secret_and_bound_to_its_kid(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    kid = key_id(key)
    blob = seal(key, "s3cret", kid)
    assert unseal(blob, "s3cret", kid).public_key() == key.public_key()
    with pytest.raises(SigningKeyError, match="SIGNING_KEY_SECRET"):
        unseal(blob, "other secret", kid)
    with pytest.raises(SigningKeyError):
        unseal(blob, "s3cret", "another-kid")  # moved to another row


def test_empty_secret_setting_creates_one_secret_file_readable_only_by_us(tmp_path: Path) -> None:
    first = resolve_secret("", tmp_path)
    assert len(first) >= 32
    assert (tmp_path / "signing_key_secret").stat().st_mode & 0o777 == 0o600
    assert resolve_secret("", tmp_path) == first  # created once, then reused
    assert resolve_secret("configured", tmp_path) == "configured"
    assert [p.name for p in tmp_path.iterdir()] == ["signing_key_secret"]
