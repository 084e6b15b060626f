"""The one guard around every RPC of ours: request id, authentication +
authorization, error mapping, metrics and access logs.

Domain errors become their gRPC status with ErrorInfo; any other exception is
logged with its stack and becomes INTERNAL with a generic message, so no
client ever sees UNKNOWN or a stack trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import grpc
from google.rpc import status_pb2

from leaderboard.runtime import metrics, policy
from leaderboard.runtime.context import Principal, principal_var, request_id_var
from leaderboard.runtime.errors import (
    STATUS_DETAILS_KEY,
    DomainError,
    PermissionDenied,
    Unauthenticated,
    Unimplemented,
    internal_error_status,
)
from leaderboard.runtime.generic_handlers import GenericHandler, GenericRegistration, Handler
from leaderboard.runtime.ids import random_hex
from leaderboard.runtime.tokens import TokenVerifier, bearer_token

log = logging.getLogger("leaderboard.rpc")

Metadata = Sequence[tuple[str, str | bytes]]


_CODES_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


class RpcGuard:
    """Wraps each of our RPC handlers once, at registration (see GuardedServer).

    Not a grpc.aio ServerInterceptor: that runs an extra coroutine and handler
    lookup on every RPC, which showed up at ~10% of a cheap read's CPU.
    """

    def __init__(self, service: str, verifier: TokenVerifier | None) -> None:
        self._service = service
        self._verifier = verifier
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        self._observers: dict[tuple[str, grpc.StatusCode], Callable[[float], None]] = {}

    def guard(self, method: str, handler: Handler) -> Handler:
        """The wrapped handler of `method` (cached: called at registration and by lookups)."""
        if not policy.is_ours(method):
            return handler  # health, reflection
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        key = (method, code)
        observer = self._observers.get(key)
        if observer is None:
            short = method.rsplit("/", 1)[-1]
            counter = metrics.RPC_TOTAL.labels(self._service, short, code.name)
            histogram = metrics.RPC_SECONDS.labels(self._service, short)

            def observer(value: float, counter: Any = counter, histogram: Any = histogram) -> None:
                counter.inc()
                histogram.observe(value)

            self._observers[key] = observer
        observer(seconds)

    async def _authenticate(self, method: str, metadata: Metadata | None) -> Principal | None:
        allowed = policy.POLICY.get(method)
        if allowed is None:
            raise PermissionDenied("method not allowed", reason="METHOD_NOT_DECLARED")
        if not allowed:
            return None  # public
        token = bearer_token(metadata)
        if token is None:
            raise Unauthenticated("missing bearer token", reason="MISSING_CREDENTIALS")
        if self._verifier is None:
            raise Unauthenticated("token verification unavailable", reason="INVALID_TOKEN")
        principal = await self._verifier.verify(token)
        if principal.role not in allowed:
            raise PermissionDenied("caller's role may not call this method", reason="ROLE_NOT_ALLOWED")
        return principal

    @staticmethod
    def _request_id(metadata: Metadata | None) -> str:
        for key, value in metadata or ():
            if key == "x-request-id":
                text = value.decode() if isinstance(value, bytes) else value
                if 0 < len(text) <= 128:
                    return text
        return random_hex()

    def _status_for(self, method: str, exc: Exception) -> status_pb2.Status:
        if isinstance(exc, NotImplementedError):
            # The generated servicer base raises this for RPCs not implemented yet.
            exc = Unimplemented(f"{method} is not implemented yet", reason="NOT_IMPLEMENTED")
        if isinstance(exc, DomainError):
            if exc.code == grpc.StatusCode.INTERNAL:
                log.error("rpc failed", extra={"method": method, "reason": exc.reason})
            return exc.to_rpc_status()
        log.error("unhandled error", extra={"method": method}, exc_info=exc)
        return internal_error_status(request_id_var.get())

    @staticmethod
    async def abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
        await context.abort(
            _CODES_BY_NUMBER[status.code],
            status.message,
            trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
        )

    async def _begin(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = cast(Metadata, context.invocation_metadata())
        request_id_var.set(self._request_id(metadata))
        principal_var.set(await self._authenticate(method, metadata))

    def classify(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException
    ) -> tuple[grpc.StatusCode, status_pb2.Status | None]:
        """The failure's code, and the status to abort with (None: already final, re-raise)."""
        if isinstance(exc, grpc.aio.AbortError):
            return context.code() or grpc.StatusCode.UNKNOWN, None
        if not isinstance(exc, Exception):  # cancelled: the client went away
            return grpc.StatusCode.CANCELLED, None
        status = self._status_for(method, exc)
        if status.code != grpc.StatusCode.INTERNAL.value[0]:
            log.info("rpc error", extra={"method": method, "code": _CODES_BY_NUMBER[status.code].name})
        return _CODES_BY_NUMBER[status.code], status

    def _wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            behavior: Callable[..., Awaitable[Any]] = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with _Scope(self, method, context):
                    await self._begin(method, context)
                    return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream_behavior: Callable[..., AsyncIterator[Any]] = handler.unary_stream  # type: ignore[assignment]

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                async with _Scope(self, method, context):
                    await self._begin(method, context)
                    async for item in stream_behavior(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in our API


class _Scope:
    """One RPC as the guard sees it, unary or streaming alike: on the way out, a failure
    becomes its status (the call is aborted with it), and the call is counted and timed."""

    __slots__ = ("_context", "_guard", "_method", "_started")

    def __init__(self, guard: RpcGuard, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._guard = guard
        self._method = method
        self._context = context
        self._started = time.perf_counter()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # Returns None, never True: an exception is re-raised, or replaced by the abort's.
        code = grpc.StatusCode.OK
        try:
            if exc is not None:
                code, status = self._guard.classify(self._method, self._context, exc)
                if status is not None:
                    await self._guard.abort(self._context, status)
        finally:
            self._guard.observe(self._method, code, time.perf_counter() - self._started)


class _GuardedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, inner: GenericHandler, guard: RpcGuard) -> None:
        self._inner = inner
        self._guard = guard

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return self._guard.guard(handler_call_details.method, handler)


class GuardedServer(GenericRegistration):
    """What a service registers its servicer on: every handler it adds, by either
    of gRPC's two registration paths, goes through the guard (as a generic handler,
    see generic_handlers), so no RPC of ours can be reached unauthenticated."""

    def __init__(self, server: grpc.aio.Server, guard: RpcGuard) -> None:
        super().__init__(server)
        self._guard = guard

    def wrap(self, handler: GenericHandler) -> GenericHandler:
        return _GuardedGenericHandler(handler, self._guard)
