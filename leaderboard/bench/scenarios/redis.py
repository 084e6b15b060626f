"""`redis`: raw ZADD + ZREVRANK through redis.asyncio, the ceiling of the store.

Two rows: one ZADD+ZREVRANK pair per round trip (the shape of one unbatched
submit), and 100 pairs per pipelined round trip (the shape of a micro-batch).
Keys carry the configured prefix and are deleted afterwards.
"""

from __future__ import annotations

import random
from typing import ClassVar

import redis.asyncio as aioredis

from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import Workload, WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.seed import Population

PIPELINE_DEPTH = 100
_SEED_CHUNK = 1000


class RedisPairs(Workload):
    method = "redis"

    def __init__(self, *, url: str, key: str, players: int, population_base: int, depth: int, pool: int) -> None:
        super().__init__()
        self.url = url
        self.key = key
        self.population = Population(players, population_base)
        self.depth = depth
        self.pool = pool
        self.rng = random.Random()

    async def open(self) -> None:
        # Blocking pool: more tasks than connections wait instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(self.url, max_connections=self.pool)
        self.redis = aioredis.Redis(connection_pool=pool)

    async def call(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for _ in range(self.depth):
            member = self.population.random_user_id(self.rng)
            pipe.zadd(self.key, {member: self.rng.randrange(1_000_000_000)})
            pipe.zrevrank(self.key, member)
        await pipe.execute()
        return self.depth

    async def close(self) -> None:
        await self.redis.aclose()


async def seed_zset(url: str, key: str, population: Population) -> int:
    """ZADD every player of `population` (1,000 members per command, pipelined); returns bytes used."""
    client = aioredis.Redis.from_url(url)
    try:
        before = int((await client.info("memory"))["used_memory"])
        rng = random.Random()
        for start in range(0, population.size, _SEED_CHUNK * 10):
            pipe = client.pipeline(transaction=False)
            for chunk in range(start, min(population.size, start + _SEED_CHUNK * 10), _SEED_CHUNK):
                end = min(population.size, chunk + _SEED_CHUNK)
                pipe.zadd(key, {population.user_id(i): rng.randrange(1_000_000_000) for i in range(chunk, end)})
            await pipe.execute()
        return int((await client.info("memory"))["used_memory"]) - before
    finally:
        await client.aclose()


def redis_spec(url: str, key: str, population: Population, depth: int, concurrency: int) -> WorkloadSpec:
    return WorkloadSpec(
        f"{__name__}:RedisPairs",
        {
            "url": url,
            "key": key,
            "players": population.size,
            "population_base": population.base,
            "depth": depth,
            "pool": concurrency,
        },
    )


class RedisScenario(Scenario):
    name = "redis"
    default_concurrency: ClassVar[tuple[int, ...]] = (64,)
    uses_players = True
    players_under_all = 1_000_000

    def __init__(self) -> None:
        self.zsets: dict[int, tuple[str, Population]] = {}

    async def zset(self, ctx: BenchContext, players: int) -> tuple[str, Population, list[str]]:
        if players in self.zsets:
            key, population = self.zsets[players]
            return key, population, []
        url = ctx.settings.redis_url
        if not url:
            raise RuntimeError("no Redis URL: set LEADERBOARD_REDIS_URL, run `make up`, or pass --embedded")
        key = f"{ctx.settings.redis_key_prefix}bench:{ctx.run_id}:zset:{players}"
        population = Population(players)

        async def delete() -> None:
            client = aioredis.Redis.from_url(url)
            try:
                await client.delete(key)
            finally:
                await client.aclose()

        ctx.on_close(delete)
        used = await seed_zset(url, key, population)
        self.zsets[players] = (key, population)
        return key, population, [f"zset of {players:,} members (36-byte UUIDs): {used / players:.0f} B per member"]

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        return (await self.zset(ctx, params.players))[2]

    async def measure_depth(self, ctx: BenchContext, params: Params, depth: int) -> Measured:
        key, population, _ = await self.zset(ctx, params.players)
        label = "redis ZADD+ZREVRANK" if depth == 1 else f"redis pipeline x{depth}"
        spec = redis_spec(ctx.settings.redis_url, key, population, depth, params.concurrency)
        recording = await ctx.load(label, spec, concurrency=params.concurrency, processes=params.processes)
        return Measured(label, recording, unit="pairs")

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        return [await self.measure_depth(ctx, params, 1), await self.measure_depth(ctx, params, PIPELINE_DEPTH)]
