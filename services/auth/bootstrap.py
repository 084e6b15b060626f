"""Operator tasks straight on the database, for the CLI (`leaderboard admin ...`),
the benchmark tool and tests: no running AuthService is needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leaderboard.runtime.config import Settings
from leaderboard.runtime.db import create_engine, session_factory
from services.auth import accounts
from services.auth.account_store import Account
from services.auth.app import password_hasher
from services.auth.signing_keys import Rotation, resolve_secret
from services.auth.signing_keys import rotate_signing_key as rotate


@asynccontextmanager
async def _sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if not settings.postgres_url:
        raise RuntimeError("LEADERBOARD_POSTGRES_URL is not set")
    engine = create_engine(settings.postgres_url, pool_size=1)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def create_admin(
    settings: Settings, username: str, password: str, display_name: str | None = None
) -> tuple[str, bool]:
    """The admin's user id, and whether it was created now (False: it existed and keeps its password)."""
    hasher = password_hasher(settings)
    try:
        async with _sessions(settings) as sessions:
            account, created = await accounts.ensure_admin_account(
                sessions, hasher, username=username, password=password, display_name=display_name
            )
    finally:
        hasher.close()
    return account.id, created


async def ensure_admin(settings: Settings, username: str, password: str, display_name: str | None = None) -> str:
    """Create the admin `username` if missing and return its user id (idempotent:
    an existing admin keeps its password; a non-admin of that name is an error)."""
    user_id, _ = await create_admin(settings, username, password, display_name)
    return user_id


async def create_service_account(settings: Settings, name: str) -> accounts.NewServiceAccount:
    async with _sessions(settings) as sessions:
        return await accounts.create_service_account(sessions, name)


async def rotate_signing_key(settings: Settings) -> Rotation:
    secret = resolve_secret(settings.signing_key_secret, settings.data_dir)
    async with _sessions(settings) as sessions:
        return await rotate(sessions, secret, access_token_ttl_seconds=settings.access_token_ttl_seconds)


async def set_locked(settings: Settings, username: str, locked: bool) -> Account:
    async with _sessions(settings) as sessions:
        return await accounts.set_locked(sessions, username, locked)
