"""Async SQLAlchemy engine (psycopg 3) and session factory."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from leaderboard.runtime.config import to_sqlalchemy_url

# One naming convention so Alembic autogenerate and hand-written migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """MetaData of one service's schema (each service owns exactly one)."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


# Pooled connections are replaced after this long (also those a service keeps itself).
POOL_RECYCLE_SECONDS = 1800


def libpq_connect_timeout(seconds: float) -> int:
    """libpq's connect_timeout for a deadline: whole seconds, 2 at least. A server that
    accepts and never answers must not hold a caller for the OS's TCP timeout."""
    return max(2, round(seconds))


def create_engine(url: str, *, pool_size: int = 10, connect_timeout_seconds: float = 5.0) -> AsyncEngine:
    return create_async_engine(
        to_sqlalchemy_url(url),
        connect_args={"connect_timeout": libpq_connect_timeout(connect_timeout_seconds)},
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it would cost a round trip per checkout. A connection the
        # server dropped fails once, SQLAlchemy then invalidates the pool, and the
        # caller's retry (UNAVAILABLE is retried by the client) goes through.
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
