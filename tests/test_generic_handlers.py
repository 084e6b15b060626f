"""GenericRegistration: generated registration code reaches a real grpc.aio server as
generic handlers only, and every method stays reachable over a real channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from leaderboard.runtime.generic_handlers import GenericRegistration


@pytest.fixture
async def server() -> AsyncIterator[grpc.aio.Server]:
    server = grpc.aio.server()

    def refuse(*_: object) -> None:
        raise AssertionError("a method was registered: every call would wait on one more future")

    setattr(server, "add_registered_method_handlers", refuse)  # noqa: B010 (not in grpc's stubs)
    yield server
    await server.stop(None)


async def _start(server: grpc.aio.Server) -> grpc.aio.Channel:
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def test_generated_registration_is_served_by_generic_handlers_only(server: grpc.aio.Server) -> None:
    registration = GenericRegistration(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, cast(grpc.aio.Server, registration))
    await health.set("x.Y", health_pb2.HealthCheckResponse.SERVING)
    assert registration.serves("/grpc.health.v1.Health/Check")
    assert not registration.serves("/grpc.health.v1.Health/Nope")
    async with await _start(server) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="x.Y"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_methods_only_registered_become_generic_handlers(server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return request[::-1]

    registration = GenericRegistration(server)
    registration.add_registered_method_handlers("t.Echo", {"Reverse": grpc.unary_unary_rpc_method_handler(echo)})
    assert registration.serves("/t.Echo/Reverse")
    async with await _start(server) as channel:
        reverse = channel.unary_unary("/t.Echo/Reverse", request_serializer=None, response_deserializer=None)
        assert await reverse(b"abc", timeout=5) == b"cba"
        missing = channel.unary_unary("/t.Echo/Other", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await missing(b"abc", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
