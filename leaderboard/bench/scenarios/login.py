"""`login`: Login of pre-registered players. argon2id dominates: the parameters are printed
with a local hash time and the ceiling it implies."""

from __future__ import annotations

import asyncio
import os
import time
from typing import ClassVar

from argon2 import PasswordHasher

from leaderboard.bench.accounts import register_players
from leaderboard.bench.context import BenchContext
from leaderboard.bench.runner import WorkloadSpec
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.scenarios.submit import ServiceCall
from leaderboard.runtime.config import Settings
from leaderboard.v1 import auth_pb2

ACCOUNTS = 32


class LoginCall(ServiceCall):
    method = "AuthService.Login"

    def __init__(self, targets: dict[str, str], accounts: list[tuple[str, str]]) -> None:
        super().__init__(targets, "")
        self.requests = [auth_pb2.LoginRequest(username=u, password=p) for u, p in accounts]

    async def call(self) -> int:
        await self.client.auth.Login(self.rng.choice(self.requests))
        return 1


def argon2_note(settings: Settings, samples: int = 3) -> str:
    """The configured argon2id parameters, one hash's time here, and the ceiling that implies."""
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=1)
    started = time.perf_counter()
    for _ in range(samples):
        hasher.hash("benchmark-password")
    per_hash = (time.perf_counter() - started) / samples
    lanes = min(os.cpu_count() or 1, settings.argon2_max_concurrent)
    return (
        f"argon2id t={settings.argon2_time_cost}, m={settings.argon2_memory_kib} KiB, p=1: "
        f"{per_hash * 1000:.0f} ms per hash here → ceiling ≈ {lanes / per_hash:.0f} logins/s "
        f"({lanes} at once: min(cores, LEADERBOARD_ARGON2_MAX_CONCURRENT))"
    )


class LoginScenario(Scenario):
    name = "login"
    default_concurrency: ClassVar[tuple[int, ...]] = (16,)

    def __init__(self) -> None:
        self.accounts: list[tuple[str, str]] = []

    async def prepare(self, ctx: BenchContext, params: Params) -> list[str]:
        await ctx.require_services()
        if not self.accounts:
            players = await register_players(ctx.base, ACCOUNTS)
            self.accounts = [(p.username, p.password) for p in players]
        # A few hashes take a fraction of a second: off the event loop all the same.
        return [await asyncio.to_thread(argon2_note, ctx.settings)]

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        spec = WorkloadSpec(f"{__name__}:LoginCall", {"targets": ctx.targets, "accounts": self.accounts})
        recording = await ctx.load("login", spec, concurrency=params.concurrency, processes=params.processes)
        return [Measured("login", recording, unit="logins")]
