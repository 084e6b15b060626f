"""redis.asyncio client creation, and waiting for a server that is still starting."""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("leaderboard.redis")


def create_redis(url: str, *, max_connections: int = 64, timeout_seconds: float = 5.0) -> aioredis.Redis:
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=30,
        # TCP only: redis-py's Unix-socket connections refuse the keyword (unix:// URLs).
        **({} if url.startswith("unix:") else {"socket_keepalive": True}),
        # A Redis that accepts and never answers must fail the call, not hold it: on a
        # timeout redis-py drops the connection (the reply may still be on its way).
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )
    return client


async def wait_until_ready(redis: aioredis.Redis, within_seconds: float, *, poll_seconds: float = 0.25) -> None:
    """Return once the server answers PING: a restarted Redis answers LOADING
    while it reads its dataset back, and a service that starts meanwhile must
    wait for it rather than exit."""
    deadline = time.monotonic() + within_seconds
    logged = False
    while True:
        try:
            await redis.ping()
            return
        except (BusyLoadingError, RedisConnectionError, RedisTimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise
            if not logged:
                log.warning("Redis is not ready yet (%s); waiting up to %.0f s", exc, within_seconds)
                logged = True
            await asyncio.sleep(poll_seconds)
