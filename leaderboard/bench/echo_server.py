"""A bare grpc.aio unary echo service: the ceiling of Python gRPC on this machine.

It runs in its own process (`python -m leaderboard.bench.echo_server --port N`),
like each of our services, so the comparison is one server process against
one server process. Bytes in, the same bytes out: no protobuf, no
interceptor, no store, nothing but grpc.aio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import signal
import sys
import time
from types import TracebackType

import grpc

from leaderboard.runtime.config import load_settings
from leaderboard.runtime.process import run, tune_gc

SERVICE = "leaderboard.bench.EchoService"
ECHO_METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", 0)],
        # Same as our services: no cap on in-flight RPCs.
        maximum_concurrent_rpcs=None,
    )
    handler = grpc.method_handlers_generic_handler(SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"echo server: cannot bind {host}:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(0.5)


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a killed benchmark leaves no echo server behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    # The services' own event loop and collector settings: the ratio then
    # measures what our code adds, not a difference of runtime.
    settings = load_settings()
    tune_gc(settings.gc_gen0_threshold)
    run(serve(args.host, args.port), event_loop=settings.event_loop)
    return 0


class EchoServerProcess:
    """The echo server as a child process (an async context manager)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, within_s: float = 20.0) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leaderboard.bench.echo_server", "--host", self.host, "--port", str(self.port),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)
            while True:
                try:
                    await echo(b"ping", timeout=1.0)
                    return self.target
                except grpc.aio.AioRpcError:
                    if self.proc.returncode is not None:
                        raise RuntimeError(f"echo server exited with {self.proc.returncode}") from None
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"echo server at {self.target} did not answer") from None
                    await asyncio.sleep(0.1)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> EchoServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
