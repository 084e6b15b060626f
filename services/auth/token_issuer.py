"""Access tokens: short-lived EdDSA JWTs that every service verifies locally.

Claims: iss, aud, sub (user id, or `internal:<service>`), iat, exp, jti,
role (player/server/admin), typ="access" (so no other JWT we might ever sign
passes as one), username and name (display name, shown by other services).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from leaderboard.runtime.tokens import ALGORITHM, TOKEN_TYPE_ACCESS
from services.auth.signing_keys import KeyRing


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class AccessTokenIssuer:
    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock

    async def issue(self, *, subject: str, role: str, username: str, display_name: str) -> IssuedToken:
        kid, key = await self._keyring.signer()
        now = int(self._clock())
        expires = now + self._ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            "typ": TOKEN_TYPE_ACCESS,
            "role": role,
            "username": username,
            "name": display_name,
        }
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})
        return IssuedToken(token, datetime.fromtimestamp(expires, UTC))
