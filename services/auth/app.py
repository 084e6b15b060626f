"""Wiring of AuthService: what `leaderboard serve auth` runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import grpc

from leaderboard.runtime.config import Settings
from leaderboard.runtime.server import Runtime
from leaderboard.v1 import auth_pb2_grpc
from services.auth import refresh_store
from services.auth.accounts import Accounts
from services.auth.passwords import PasswordHasher
from services.auth.servicer import AuthServicer
from services.auth.signing_keys import KeyRing, resolve_secret
from services.auth.throttle import LoginThrottle, RegistrationLimit, ThrottleConfig
from services.auth.token_issuer import AccessTokenIssuer

log = logging.getLogger("leaderboard.auth")

PRUNE_INTERVAL_SECONDS = 3600.0


def throttle_config(settings: Settings) -> ThrottleConfig:
    return ThrottleConfig(
        pair_threshold=settings.login_max_failures,
        account_threshold=settings.login_account_max_failures,
        base_seconds=settings.login_backoff_base_seconds,
        max_seconds=settings.login_backoff_max_seconds,
        reset_seconds=settings.login_failure_reset_seconds,
        peer_max_failures=settings.login_peer_max_failures,
    )


def password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        max_concurrent=settings.argon2_max_concurrent,
    )


class AuthServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.hasher = password_hasher(settings)
        self.keyring = KeyRing(
            runtime.sessions,
            resolve_secret(settings.signing_key_secret, settings.data_dir),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        self.throttle = LoginThrottle(runtime.redis, settings.redis_key_prefix, throttle_config(settings))
        self.accounts = Accounts(
            runtime.sessions,
            self.hasher,
            AccessTokenIssuer(
                self.keyring,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_seconds=settings.access_token_ttl_seconds,
            ),
            self.throttle,
            registrations=(
                RegistrationLimit(runtime.redis, settings.redis_key_prefix, settings.register_peer_max_per_hour)
                if settings.register_peer_max_per_hour
                else None
            ),
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            internal_secret=settings.internal_secret,
        )
        self.servicer = AuthServicer(self.accounts, self.keyring, settings)
        # Tokens are verified here against our own key store, not over gRPC to ourselves.
        runtime.key_source = self.keyring.public_key_set
        self._pruner: asyncio.Task[None] | None = None

    def register(self, server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.keyring.start()  # creates the first key on first start
        await self.hasher.dummy_hash()  # computed once, before the first login needs it
        self._pruner = asyncio.create_task(self._prune_forever(), name="auth-prune")

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)
            try:
                async with self.runtime.sessions.begin() as session:
                    pruned = await refresh_store.prune(session, datetime.now(UTC))
                log.info("pruned expired refresh tokens", extra={"count": pruned})
            except Exception:
                log.exception("pruning refresh tokens failed; will retry")

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        self.hasher.close()


async def create_service(runtime: Runtime) -> AuthServiceApp:
    return AuthServiceApp(runtime)
