"""redis.asyncio client creation."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=30,
        socket_keepalive=True,
    )
    return client
