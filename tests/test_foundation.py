"""Foundation: every service runs with health, reflection and the shared error mapping."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.exceptions import ConnectionError as RedisConnectionError

from leaderboard.client import SERVICE_NAMES, error_details, open_channel
from leaderboard.runtime import policy
from leaderboard.runtime.embedded import EmbeddedValkey, free_port
from leaderboard.runtime.redis_store import create_redis, wait_until_ready
from leaderboard.v1 import auth_pb2, ranking_pb2, ranking_pb2_grpc, reports_pb2, reports_pb2_grpc, scores_pb2
from tests.conftest import Stack


@pytest.mark.parametrize("name", list(SERVICE_NAMES))
async def test_health_serving_for_service_and_overall(stack: Stack, name: str) -> None:
    channel = stack.client.channel(name)
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAMES[name]):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("name", list(SERVICE_NAMES))
async def test_reflection_lists_service_health_and_reflection(stack: Stack, name: str) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(stack.client.channel(name))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    services: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
        services |= {s.name for s in reply.list_services_response.service}
    assert {
        SERVICE_NAMES[name],
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services

    # grpcurl describes messages from the file descriptors alone.
    by_symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAMES[name])
    async for reply in stub.ServerReflectionInfo(iter([by_symbol]), timeout=5):
        assert reply.file_descriptor_response.file_descriptor_proto


def test_every_rpc_has_an_authorization_rule() -> None:
    from leaderboard.v1 import auth_pb2 as a
    from leaderboard.v1 import ranking_pb2 as r
    from leaderboard.v1 import reports_pb2 as p
    from leaderboard.v1 import scores_pb2 as s

    declared = set(policy.POLICY)
    for module in (a, r, p, s):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"/{service.full_name}/{method.name}" in declared


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("scores", lambda c: c.scores.SubmitScore(scores_pb2.SubmitScoreRequest())),
        ("ranking", lambda c: c.ranking.ListTopEntries(ranking_pb2.ListTopEntriesRequest())),
        ("reports", lambda c: c.reports.ListReports(reports_pb2.ListReportsRequest())),
        ("auth", lambda c: c.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())),
    ],
)
async def test_missing_token_is_unauthenticated_with_reason(stack: Stack, service: str, call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack.client)  # type: ignore[operator]
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err.value)[0] == "MISSING_CREDENTIALS"


async def test_garbage_token_is_unauthenticated(stack: Stack) -> None:
    client = stack.client.with_token("not-a-jwt")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.ranking.ListTopEntries(ranking_pb2.ListTopEntriesRequest(), metadata=client.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(err.value)[0] == "INVALID_TOKEN"


async def test_unknown_method_is_unimplemented(stack: Stack) -> None:
    channel = open_channel(stack.settings.target("ranking"))
    call = channel.unary_unary("/leaderboard.v1.RankingService/NoSuchMethod", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    await channel.close(None)


def test_bad_config_value_stops_service_with_one_clear_line() -> None:
    env = {**os.environ, "LEADERBOARD_RANKING_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "leaderboard.cli.main", "serve", "ranking"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LEADERBOARD_RANKING_PORT" in lines[0]


async def test_stub_ranking_channel_works_over_real_port(stack: Stack) -> None:
    # The generated stub over a plain channel (what game servers in other languages do).
    channel = grpc.aio.insecure_channel(stack.settings.target("ranking"))
    stub = ranking_pb2_grpc.RankingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetLeaderboard(ranking_pb2.GetLeaderboardRequest(leaderboard_id="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await channel.close(None)


async def test_prometheus_metrics_count_rpcs_by_method_and_code(stack: Stack) -> None:
    import dataclasses
    import urllib.request

    from leaderboard.runtime.embedded import free_port
    from leaderboard.runtime.server import start_service

    base = free_port()
    settings = dataclasses.replace(stack.settings, metrics_port_base=base, reports_port=free_port())
    running = await start_service("reports", settings)
    try:
        channel = open_channel(settings.target("reports"))
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListReports(reports_pb2.ListReportsRequest(), timeout=5)
        await channel.close(None)
        url = f"http://127.0.0.1:{base + 30}/metrics"  # reports is service index 3, worker 0
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        assert 'leaderboard_rpc_total{code="UNAUTHENTICATED",method="ListReports",service="reports"}' in body
        assert "leaderboard_rpc_seconds_bucket" in body
    finally:
        await running.stop(grace=0.1)


async def test_services_wait_for_a_redis_that_is_still_starting(tmp_path: Path) -> None:
    # A service started before its Redis (or while a restarted Redis reads its
    # dataset back) waits for it instead of exiting.
    server = EmbeddedValkey(tmp_path, persist=False)
    client = create_redis(server.url)
    waiting = asyncio.create_task(wait_until_ready(client, within_seconds=30, poll_seconds=0.05))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await asyncio.to_thread(server.start)
    try:
        await asyncio.wait_for(waiting, 10)
        assert await client.ping()
    finally:
        await client.aclose()
        server.stop()


async def test_redis_over_a_unix_socket(tmp_path: Path) -> None:
    # LEADERBOARD_REDIS_URL may name a Unix socket (a Redis on the same host).
    socket_path = tmp_path / "valkey.sock"
    server = EmbeddedValkey(tmp_path / "valkey", persist=False, unix_socket=socket_path)
    await asyncio.to_thread(server.start)
    client = create_redis(f"unix://{socket_path}?db=0")
    try:
        assert await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
        server.stop()


async def test_waiting_for_redis_gives_up_after_its_deadline(tmp_path: Path) -> None:
    client = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await wait_until_ready(client, within_seconds=0.3, poll_seconds=0.05)
    finally:
        await client.aclose()
