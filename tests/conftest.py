"""Fixtures: real PostgreSQL, real Redis, and the four services on real ports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis

from leaderboard.client import Client
from leaderboard.runtime.config import Settings, load_settings
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.migrations import upgrade
from leaderboard.runtime.server import RunningService, start_service
from tests.stores import fresh_database, postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated database of this test session's own."""
    with postgres_server() as server, fresh_database(server) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def settings(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    ports = {f"{name}_port": free_port() for name in ("auth", "scores", "ranking", "reports")}
    settings = load_settings(
        {},
        postgres_url=postgres_url,
        redis_url=redis_url,
        redis_key_prefix=f"t{uuid.uuid4().hex[:8]}:",
        internal_secret=uuid.uuid4().hex,
        signing_key_secret=uuid.uuid4().hex,
        data_dir=tmp_path_factory.mktemp("data"),
        host="127.0.0.1",
        shutdown_grace_seconds=1.0,
        log_json=False,
        **ports,
    )
    yield settings
    # A shared Redis (LEADERBOARD_TEST_REDIS_URL) keeps nothing of this session.
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=settings.redis_key_prefix + "*", count=1000):
            client.delete(key)
    finally:
        client.close()


@dataclass
class Stack:
    """The four services running in this process on real ports."""

    settings: Settings
    services: dict[str, RunningService]
    client: Client


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    services: dict[str, RunningService] = {}
    try:
        for name in ("auth", "ranking", "scores", "reports"):
            services[name] = await start_service(name, settings)
        client = Client.from_settings(settings)
        yield Stack(settings, services, client)
        await client.close()
    finally:
        for running in reversed(list(services.values())):
            await running.stop(grace=0.5)
