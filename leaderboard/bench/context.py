"""What the scenarios of one `leaderboard bench` invocation share.

Callers (admin, game server), boards created for the run (deleted at the
end), seeded boards (seeded once, reused by `rank` and `top`), the echo
server process, and the progress display every measurement reports to.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.progress import Progress

from leaderboard.bench.accounts import (
    Caller,
    create_service_account,
    issue_server_token,
    login_admin,
)
from leaderboard.bench.availability import NotImplementedYet, require
from leaderboard.bench.echo_server import EchoServerProcess
from leaderboard.bench.runner import Bounds, Recording, Workload, WorkloadSpec, run_load
from leaderboard.bench.seed import Population, SeedResult, seed_board
from leaderboard.client import SERVICE_NAMES, Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.service_token import INTERNAL_CLIENT_PREFIX
from leaderboard.v1 import common_pb2, ranking_pb2


@dataclass(frozen=True)
class Options:
    """Bounds and sizes every measurement of the run shares."""

    duration_s: float = 10.0
    warmup_s: float = 1.0
    max_requests: int = 2_000_000
    seed_seconds: float = 180.0
    subscribers: int = 100

    def bounds(self) -> Bounds:
        return Bounds(self.duration_s, self.max_requests, self.warmup_s)


@dataclass
class SeededBoard:
    board_id: str
    population: Population  # players 0..size-1 have an entry
    result: SeedResult
    redis_bytes: int | None  # growth of Redis used_memory while seeding

    def notes(self) -> list[str]:
        """What seeding did, for the report."""
        result = self.result
        notes = [
            f"seeded {result.done:,} players via ApplyScores in {result.seconds:.1f} s ({result.per_second:,.0f}/s)"
            + ("" if result.complete else f" — stopped at the time limit, {result.wanted:,} wanted")
        ]
        if self.redis_bytes is not None and result.done:
            notes.append(
                f"Redis used_memory grew {self.redis_bytes / result.done:.0f} B per player "
                "(all-time window only, every key of the board)"
            )
        return notes


class NoDeployment(RuntimeError):
    """The services do not answer (no `make up` running and no --embedded)."""


@dataclass
class BenchContext:
    settings: Settings
    options: Options
    progress: Progress
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _base: Client | None = None
    _admin: Caller | None = None
    _server: Caller | None = None
    _server_account: tuple[str, str] | None = None
    _seeding_internal: bool | None = None
    _internal: Caller | None = None
    _echo: EchoServerProcess | None = None
    _boards: list[str] = field(default_factory=list)
    _seeded: dict[tuple[str, int], SeededBoard] = field(default_factory=dict)
    _services_checked: bool = False
    _cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    # --- clients -------------------------------------------------------------------------

    @property
    def targets(self) -> dict[str, str]:
        return {name: self.settings.target(name) for name in SERVICE_NAMES}

    @property
    def base(self) -> Client:
        if self._base is None:
            self._base = Client.from_settings(self.settings)
        return self._base

    async def require_services(self) -> None:
        """Fail with one clear line when no deployment answers."""
        if self._services_checked:
            return
        for name, full in SERVICE_NAMES.items():
            stub = health_pb2_grpc.HealthStub(self.base.channel(name))
            try:
                await stub.Check(health_pb2.HealthCheckRequest(service=full), timeout=3.0)
            except grpc.aio.AioRpcError as exc:
                raise NoDeployment(
                    f"{full} at {self.settings.target(name)} does not answer ({exc.code().name}); "
                    "run `make up` first or pass --embedded"
                ) from None
        self._services_checked = True

    async def admin(self) -> Client:
        if self._admin is None or not self._admin.fresh():
            await self.require_services()
            self._admin = await login_admin(self.base, self.settings)
        return self._admin.client

    async def server(self) -> Client:
        """A game server's ROLE_SERVER client (a service account made for this run)."""
        if self._server is None or not self._server.fresh():
            if self._server_account is None:
                account = await create_service_account(await self.admin(), f"bench-{self.run_id}")
                self._server_account = (account.client_id, account.client_secret)
            self._server = await issue_server_token(self.base, *self._server_account)
        return self._server.client

    async def seeding_client(self) -> Client:
        """Who may call ApplyScores: a game server, or else the platform's internal identity.

        If ranking keeps ApplyScores to the platform's own services, seeding
        uses the deployment's internal secret (the benchmark runs on its host).
        Called per batch: a token is renewed before it expires, however long seeding takes.
        """
        if self._seeding_internal is None:
            server = await self.server()
            self._seeding_internal = False
            try:
                await server.ranking.ApplyScores(ranking_pb2.ApplyScoresRequest(), metadata=server.metadata)
            except grpc.aio.AioRpcError as exc:
                # Any other answer shows up, with its RPC named, when seeding starts.
                self._seeding_internal = exc.code() == grpc.StatusCode.PERMISSION_DENIED and bool(
                    self.internal_secret()
                )
        if not self._seeding_internal:
            return await self.server()
        if self._internal is None or not self._internal.fresh():
            client_id = INTERNAL_CLIENT_PREFIX + "scores"
            self._internal = await issue_server_token(self.base, client_id, self.internal_secret())
        return self._internal.client

    def internal_secret(self) -> str:
        if self.settings.internal_secret:
            return self.settings.internal_secret
        path = self.settings.data_dir / "internal_secret"
        return path.read_text().strip() if path.exists() else ""

    # --- boards ----------------------------------------------------------------------------

    async def create_board(self, purpose: str, **fields: object) -> str:
        """A fresh leaderboard for this run (deleted when the run ends)."""
        admin = await self.admin()
        board_id = f"bench-{purpose}-{self.run_id}-{len(self._boards)}"
        board = ranking_pb2.CreateLeaderboardRequest(
            leaderboard=common_pb2.Leaderboard(
                id=board_id,
                game_id="bench",
                display_name=f"Benchmark {purpose}",
                sort_order=common_pb2.SORT_ORDER_DESCENDING,
                update_policy=common_pb2.UPDATE_POLICY_BEST,
                global_weight=0.0,  # keep benchmark scores out of `global`
                **fields,  # type: ignore[arg-type]
            )
        )
        await require(
            "RankingService.CreateLeaderboard", admin.ranking.CreateLeaderboard(board, metadata=admin.metadata)
        )
        self._boards.append(board_id)
        return board_id

    async def seeded_board(self, players: int, purpose: str = "seeded") -> SeededBoard:
        """A board with `players` entries, seeded once per purpose and size: the read
        scenarios share theirs; a scenario that writes keeps its own (`purpose`)."""
        cached = self._seeded.get((purpose, players))
        if cached is not None:
            return cached
        board_id = await self.create_board(purpose)
        population = Population(players)
        before = await self.redis_used_memory()
        task = self.progress.add_task(f"seeding {players:,} players", total=players, requests=0)
        try:
            result = await seed_board(
                self.seeding_client,
                board_id,
                population,
                time_limit_s=self.options.seed_seconds,
                progress=lambda done, _total: self.progress.update(task, completed=done, requests=done),
            )
        finally:
            self.progress.remove_task(task)
        after = await self.redis_used_memory()
        growth = after - before if before is not None and after is not None else None
        seeded = SeededBoard(board_id, Population(result.done, population.base), result, growth)
        self._seeded[(purpose, players)] = seeded
        return seeded

    async def seed_notes(self, players: int, purpose: str = "seeded") -> list[str]:
        """Seed the board of (purpose, players) unless done already; notes for the report."""
        shared = (purpose, players) in self._seeded
        board = await self.seeded_board(players, purpose)
        if shared:
            return [f"the board seeded for an earlier scenario or point ({board.population.size:,} players)"]
        return board.notes()

    async def redis_used_memory(self) -> int | None:
        if not self.settings.redis_url:
            return None
        client = aioredis.Redis.from_url(self.settings.redis_url)
        try:
            info = await client.info("memory")
            return int(info["used_memory"])
        except Exception:
            return None
        finally:
            await client.aclose()

    # --- load ------------------------------------------------------------------------------

    async def echo_target(self) -> str:
        if self._echo is None:
            self._echo = EchoServerProcess(free_port())
            await self._echo.start()
        return self._echo.target

    async def load(
        self, label: str, workload: Workload | WorkloadSpec, *, concurrency: int, processes: int
    ) -> Recording:
        """Run one measurement with a progress bar; UNIMPLEMENTED raises NotImplementedYet."""
        bounds = self.options.bounds()
        task = self.progress.add_task(f"{label} x{concurrency}", total=1.0, requests=0)

        def report(done: int, fraction: float) -> None:
            self.progress.update(task, completed=fraction, requests=done)

        try:
            recording = await run_load(
                workload, concurrency=concurrency, bounds=bounds, processes=processes, progress=report
            )
        finally:
            self.progress.remove_task(task)
        if recording.unimplemented:
            raise NotImplementedYet(recording.unimplemented)
        return recording

    def on_close(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        self._cleanups.append(cleanup)

    async def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                await cleanup()
        if self._admin is not None:
            admin = self._admin.client
            for board_id in self._boards:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await admin.ranking.DeleteLeaderboard(
                        ranking_pb2.DeleteLeaderboardRequest(leaderboard_id=board_id),
                        metadata=admin.metadata,
                        timeout=30,
                    )
        if self._echo is not None:
            await self._echo.stop()
        if self._base is not None:
            await self._base.close()
