"""The platform's own ROLE_SERVER token, for service-to-service calls.

A service (say ScoreService calling RankingService.ApplyScores) exchanges
client id `internal:<service>` and the deployment's internal secret for a
token at AuthService.IssueServiceToken, caches it and renews it well before
it expires.
"""

from __future__ import annotations

import asyncio
import time

from leaderboard.client import Client
from leaderboard.v1 import auth_pb2

INTERNAL_CLIENT_PREFIX = "internal:"


class ServiceToken:
    def __init__(self, client: Client, service: str, secret: str, *, renew_fraction: float = 0.5) -> None:
        self._client = client
        self._client_id = INTERNAL_CLIENT_PREFIX + service
        self._secret = secret
        self._renew_fraction = renew_fraction
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._token is not None and time.time() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is None or time.time() >= self._renew_at:
                reply = await self._client.auth.IssueServiceToken(
                    auth_pb2.IssueServiceTokenRequest(client_id=self._client_id, client_secret=self._secret)
                )
                now = time.time()
                lifetime = max(1.0, reply.access_token_expire_time.ToSeconds() - now)
                self._token = reply.access_token
                self._renew_at = now + lifetime * self._renew_fraction
            return self._token

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {await self.get()}"),)

    def invalidate(self) -> None:
        """Drop the cached token (e.g. after UNAUTHENTICATED on a rotated key)."""
        self._renew_at = 0.0
