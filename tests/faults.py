"""A TCP proxy on loopback that a test can cut or stall: the network faults between
a service and a real dependency (PostgreSQL, Redis), with the dependency itself left
running (it may be shared by other tests, or not ours to stop)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

from leaderboard.client import Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.server import start_service


@contextlib.asynccontextmanager
async def service_behind(
    settings: Settings, service: str, store_url: str, token: str | None, **overrides: Any
) -> AsyncIterator[tuple[FaultyLink, Client]]:
    """A `service` of the test's own whose connections to one store (`store_url` names
    the setting: postgres_url or redis_url) pass a FaultyLink, and a single-attempt
    client of it. `overrides` are further settings (its timeouts, say)."""
    url = getattr(settings, store_url)
    link = FaultyLink(url)
    await link.start()
    try:
        changes: dict[str, Any] = {store_url: via(url, link), f"{service}_port": free_port(), **overrides}
        own = dataclasses.replace(settings, **changes)
        running = await start_service(service, own)
        client = single_attempt_client(own, service, token)
        try:
            yield link, client
        finally:
            await client.close()
            await running.stop(grace=0.1)
    finally:
        await link.stop()


def single_attempt_client(settings: Settings, service: str, token: str | None) -> Client:
    """A client whose calls to `service` are tried once: what the service answers is what
    the test sees (the usual client retries UNAVAILABLE, which would hide it)."""
    channel = grpc.aio.insecure_channel(settings.target(service), options=[("grpc.enable_retries", 0)])
    return Client(Client.from_settings(settings).targets, settings.rpc_timeout_seconds, token, {service: channel})


def via(url: str, link: FaultyLink) -> str:
    """`url` with its host and port replaced by the link's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{link.port}"))


class FaultyLink:
    """Forwards 127.0.0.1:<port> to the server of a URL until told otherwise.

    - cut(): drops every open connection and refuses new ones (a crashed server).
    - stall(): connections stay open but carry nothing, new ones included (a hung
      server or a partition: the peer never answers).
    - heal(): back to forwarding; connections opened before stay dead.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None or "host=" in parts.query:
            pytest.skip(f"the fault proxy needs a host:port URL, not {url!r}")  # a Unix socket, say
        self._target = (parts.hostname, parts.port)
        self.port = free_port()
        self._mode = "pass"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self._mode = "refuse"
        self._drop_all()

    def stall(self) -> None:
        self._mode = "stall"
        self._flowing.clear()

    def heal(self) -> None:
        self._drop_all()  # what stalled stays broken, as after a real partition
        self._mode = "pass"
        self._flowing.set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "refuse":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self._mode == "stall":
            return  # held open, never answered
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                await self._flowing.wait()  # while stalled, hold the bytes: the peer hears nothing
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
