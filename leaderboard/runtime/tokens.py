"""Local verification of access tokens (JWT, EdDSA) with cached public keys.

Every service verifies tokens itself: public keys come from a `KeySource`
(AuthService.GetSigningKeys for the other services, the key store for auth
itself), are cached, and are refetched when a token names an unknown `kid`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from leaderboard.runtime.context import Principal
from leaderboard.runtime.errors import Unauthenticated
from leaderboard.v1 import common_pb2

ALGORITHM = "EdDSA"
MAX_LEEWAY_SECONDS = 60
TOKEN_TYPE_ACCESS = "access"

ROLE_NAMES: dict[int, str] = {
    common_pb2.ROLE_PLAYER: "player",
    common_pb2.ROLE_SERVER: "server",
    common_pb2.ROLE_ADMIN: "admin",
}
ROLES_BY_NAME = {name: role for role, name in ROLE_NAMES.items()}


@dataclass(frozen=True)
class PublicKeySet:
    keys: dict[str, str]  # kid -> PEM
    issuer: str
    audience: str


KeySource = Callable[[], Awaitable[PublicKeySet]]


def _bad_token(detail: str = "invalid access token") -> Unauthenticated:
    return Unauthenticated(detail, reason="INVALID_TOKEN")


class TokenVerifier:
    """Verifies access tokens; caches keys and recently verified tokens."""

    def __init__(
        self,
        source: KeySource,
        *,
        issuer: str,
        audience: str,
        keys_cache_seconds: float = 300.0,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        max_cached_tokens: int = 50_000,
    ) -> None:
        self._source = source
        self._issuer = issuer
        self._audience = audience
        self._keys_ttl = keys_cache_seconds
        self._leeway = min(leeway_seconds, MAX_LEEWAY_SECONDS)
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._keys_fetched_at = float("-inf")
        self._last_forced_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()
        self._verified: dict[str, Principal] = {}
        self._max_cached = max_cached_tokens

    async def _refresh_keys(self, *, force: bool) -> None:
        async with self._refresh_lock:
            now = time.monotonic()
            if not force and now - self._keys_fetched_at < self._keys_ttl:
                return
            if force and now - self._last_forced_refresh < 1.0:
                return  # an unknown kid must not turn into a fetch per request
            if force:
                self._last_forced_refresh = now
            keyset = await self._source()
            keys: dict[str, Ed25519PublicKey] = {}
            for kid, pem in keyset.keys.items():
                key = load_pem_public_key(pem.encode())
                if isinstance(key, Ed25519PublicKey):
                    keys[kid] = key
            self._keys = keys
            self._keys_fetched_at = now
            # Cached verdicts may name keys that were just retired.
            self._verified.clear()

    async def _key_for(self, kid: str) -> Ed25519PublicKey:
        if time.monotonic() - self._keys_fetched_at >= self._keys_ttl:
            await self._refresh_keys(force=False)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh_keys(force=True)
            key = self._keys.get(kid)
        if key is None:
            raise _bad_token("access token signed by an unknown key")
        return key

    async def verify(self, token: str) -> Principal:
        now = self._clock()
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway > now:
                return cached
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _bad_token() from None
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise _bad_token()
        key = await self._key_for(header["kid"])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise _bad_token() from None
        role = ROLES_BY_NAME.get(str(claims.get("role", "")))
        if claims.get("typ") != TOKEN_TYPE_ACCESS or role is None:
            raise _bad_token()
        principal = Principal(
            user_id=str(claims["sub"]),
            role=role,
            username=str(claims.get("username", "")),
            display_name=str(claims.get("name", "")),
            expires_at=float(claims["exp"]),
        )
        if len(self._verified) >= self._max_cached:
            self._verified.clear()
        self._verified[token] = principal
        return principal


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` header, if any."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization must be 'Bearer <token>'", reason="INVALID_TOKEN")
            return token.strip()
    return None
