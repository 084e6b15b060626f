"""One server bootstrap for all four services.

`start_service` builds a grpc.aio server with the shared RPC guard, standard
health checking (the service and ""), server reflection and the service's
handlers, and starts it; `serve` runs one until SIGTERM/SIGINT, then flips
health to NOT_SERVING, stops with a grace period and closes pools.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leaderboard.client import SERVICE_NAMES, Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.db import create_engine, session_factory
from leaderboard.runtime.generic_handlers import GenericRegistration
from leaderboard.runtime.metrics import start_metrics_endpoint
from leaderboard.runtime.process import tune_gc
from leaderboard.runtime.redis_store import create_redis
from leaderboard.runtime.rpc_guard import GuardedServer, RpcGuard
from leaderboard.runtime.tokens import KeySource, PublicKeySet, TokenVerifier
from leaderboard.v1 import auth_pb2

log = logging.getLogger("leaderboard.server")

SERVICE_INDEX = {name: i for i, name in enumerate(SERVICE_NAMES)}


class Service(Protocol):
    """What each service's `create_service` returns."""

    def register(self, server: grpc.aio.Server) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """Shared resources of one service process, created on first use."""

    settings: Settings
    service: str
    _engine: AsyncEngine | None = None
    _sessions: async_sessionmaker[AsyncSession] | None = None
    _redis: Redis | None = None
    _client: Client | None = None
    key_source: KeySource | None = None
    _verifier: TokenVerifier | None = field(default=None, repr=False)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            if not self.settings.postgres_url:
                raise RuntimeError("LEADERBOARD_POSTGRES_URL is not set")
            self._engine = create_engine(
                self.settings.postgres_url,
                pool_size=self.settings.db_pool_size,
                connect_timeout_seconds=self.settings.db_timeout_seconds,
            )
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._sessions = session_factory(self.engine)
        return self._sessions

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            if not self.settings.redis_url:
                raise RuntimeError("LEADERBOARD_REDIS_URL is not set")
            self._redis = create_redis(
                self.settings.redis_url,
                max_connections=self.settings.redis_max_connections,
                timeout_seconds=self.settings.redis_timeout_seconds,
            )
        return self._redis

    @property
    def client(self) -> Client:
        """Client for calling the other services (as no one; add a token per call)."""
        if self._client is None:
            self._client = Client.from_settings(self.settings)
        return self._client

    async def _remote_keys(self) -> PublicKeySet:
        response = await self.client.auth.GetSigningKeys(auth_pb2.GetSigningKeysRequest())
        return PublicKeySet(
            keys={k.kid: k.public_key_pem for k in response.keys},
            issuer=response.issuer,
            audience=response.audience,
        )

    @property
    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            self._verifier = TokenVerifier(
                self.key_source or self._remote_keys,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
                keys_cache_seconds=self.settings.keys_cache_seconds,
            )
        return self._verifier

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()


ServiceFactory = Callable[[Runtime], Awaitable[Service]]


def load_factory(service: str) -> ServiceFactory:
    if service not in SERVICE_NAMES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"services.{service}.app")
    factory: ServiceFactory = module.create_service
    return factory


@dataclass
class RunningService:
    name: str
    port: int
    server: grpc.aio.Server
    service: Service
    runtime: Runtime
    health: HealthServicer

    async def stop(self, grace: float | None = None) -> None:
        for name in ("", SERVICE_NAMES[self.name]):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.runtime.settings.shutdown_grace_seconds if grace is None else grace)
        await self.service.stop()
        await self.runtime.close()


async def start_service(
    name: str,
    settings: Settings,
    *,
    port: int | None = None,
    factory: ServiceFactory | None = None,
    worker: int = 0,
) -> RunningService:
    """Build, bind and start one service; port 0 picks a free port (tests)."""
    runtime = Runtime(settings=settings, service=name)
    service = await (factory or load_factory(name))(runtime)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
        # A burst of new streams must not be refused with CANCELLED.
        maximum_concurrent_rpcs=None,
    )
    service.register(cast(grpc.aio.Server, GuardedServer(server, RpcGuard(name, runtime.verifier))))
    health_servicer = HealthServicer()
    generic = GenericRegistration(server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, cast(grpc.aio.Server, generic))
    full_name = SERVICE_NAMES[name]
    # What reflection.enable_server_reflection does for a grpc.aio server, on `generic`
    # (`aio` is in the module's __all__, which mypy does not see: it is set conditionally).
    servicer = reflection.aio.ReflectionServicer((full_name, health.SERVICE_NAME, reflection.SERVICE_NAME))  # type: ignore[attr-defined]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, cast(grpc.aio.Server, generic))
    bound = server.add_insecure_port(f"{settings.host}:{settings.port(name) if port is None else port}")
    if bound == 0:
        raise RuntimeError(f"cannot bind {settings.host}:{port}")
    await service.start()
    await server.start()
    for health_name in ("", full_name):
        await health_servicer.set(health_name, health_pb2.HealthCheckResponse.SERVING)
    if settings.metrics_port_base:
        start_metrics_endpoint(settings.host, settings.metrics_port_base + 10 * SERVICE_INDEX[name] + worker)
    log.info("serving", extra={"grpc_service": full_name, "port": bound, "worker": worker})
    return RunningService(name, bound, server, service, runtime, health_servicer)


async def serve(name: str, settings: Settings, *, worker: int = 0) -> None:
    """Run one service until SIGTERM/SIGINT, then shut down gracefully."""
    running = await start_service(name, settings, worker=worker)
    tune_gc(settings.gc_gen0_threshold)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await running.stop()
