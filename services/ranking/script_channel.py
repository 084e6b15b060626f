"""One pipelined Redis connection for script calls (the ranking hot path).

redis-py runs one command per connection at a time: per call it checks a
connection out of the pool, probes it, writes, and waits for the reply before
anyone else may use it. At a few thousand calls a second that is a large share
of a request's CPU. Here every call is written as soon as it is made (writes of
one event-loop turn go out together) on a single connection, and a hiredis
reader hands replies back in order. Each script is still atomic in Redis; only
the client's bookkeeping changes.

Connection settings come from the redis-py client (same URL, password, db,
socket timeouts). A lost connection fails the calls in flight and is reopened by
the next call; so is one whose oldest call has waited longer than the socket
timeout (a hung server), its calls failing with TimeoutError.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


def _pack(args: Sequence[Any]) -> bytes:
    """A command in RESP (hiredis packs in C: an ApplyScores call sends ~7,000 arguments)."""
    packed: bytes = hiredis.pack_command(args if type(args) is tuple else tuple(args))
    return packed


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float | None) -> None:
        self.reader = hiredis.Reader(replyError=_reply_error)
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.sent_at: collections.deque[float] = collections.deque()  # of each pending call
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer: list[bytes] = []
        self._timeout = timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have write().
        self.transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes, future: asyncio.Future[Any]) -> None:
        # Calls made in one loop turn leave in one write (one syscall).
        if not self._buffer:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buffer.append(packed)
        self.pending.append(future)
        if self._timeout is not None:
            loop = asyncio.get_running_loop()
            self.sent_at.append(loop.time())
            if self._watchdog is None:
                self._watchdog = loop.call_later(self._timeout, self._check)

    def _check(self) -> None:
        """Replies come in order: if the oldest pending call waited too long, the server
        is not answering, and the connection is dropped with everything on it."""
        self._watchdog = None
        if not self.sent_at or self.closed or self._timeout is None:
            return
        loop = asyncio.get_running_loop()
        due = self.sent_at[0] + self._timeout
        if loop.time() < due:
            self._watchdog = loop.call_at(due, self._check)
            return
        self._timed_out = True
        if self.transport is not None:
            self.transport.abort()  # connection_lost fails the pending calls

    def _flush(self) -> None:
        data, self._buffer = b"".join(self._buffer), []
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            future = self.pending.popleft()
            if self.sent_at:
                self.sent_at.popleft()
            if future.done():
                continue  # its caller went away (deadline, cancellation)
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.sent_at.clear()
        while self.pending:
            future = self.pending.popleft()
            if future.done():
                continue
            if self._timed_out:
                future.set_exception(RedisTimeoutError(f"Redis did not answer within {self._timeout:g} s"))
            else:
                future.set_exception(RedisConnectionError(f"Redis connection lost: {exc or 'closed'}"))


class ScriptChannel:
    """Pipelined calls on one connection; `supported` is False for TLS (then use redis-py)."""

    def __init__(self, redis: Redis) -> None:
        pool = redis.connection_pool
        self._kwargs = dict(pool.connection_kwargs)
        self._unix = issubclass(pool.connection_class, UnixDomainSocketConnection)
        self.supported = self._unix or pool.connection_class.__name__ == "Connection"
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._timeout: float | None = self._kwargs.get("socket_timeout")
        self._connect_timeout: float | None = self._kwargs.get("socket_connect_timeout") or self._timeout

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()

        def make() -> _Protocol:
            return _Protocol(self._timeout)

        async with asyncio.timeout(self._connect_timeout):
            if self._unix:
                _, protocol = await loop.create_unix_connection(make, self._kwargs["path"])
            else:
                _, protocol = await loop.create_connection(
                    make, self._kwargs.get("host", "localhost"), int(self._kwargs.get("port", 6379))
                )
        setup: list[list[Any]] = []
        if self._kwargs.get("password"):
            user = self._kwargs.get("username")
            setup.append(["AUTH", user, self._kwargs["password"]] if user else ["AUTH", self._kwargs["password"]])
        if int(self._kwargs.get("db") or 0):
            setup.append(["SELECT", int(self._kwargs["db"])])
        waits = []
        for command in setup:
            future: asyncio.Future[Any] = loop.create_future()
            protocol.send(_pack(command), future)
            waits.append(future)
        try:
            for future in waits:
                await future
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        return protocol

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is None or self._protocol.closed:
                try:
                    self._protocol = await self._connect()
                except (OSError, TimeoutError) as exc:
                    raise RedisConnectionError(f"cannot connect to Redis: {exc or 'no answer'}") from None
            return self._protocol

    def _send(self, protocol: _Protocol, args: Sequence[Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(_pack(args), future)
        return future

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._ready()
        return await self._send(protocol, args)

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands back to back (one write) and return each reply or its exception."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._ready()
        futures = [self._send(protocol, c) for c in commands]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
