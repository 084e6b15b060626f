"""The one server interceptor: request id, authentication + authorization,
error mapping, metrics and access logs.

Domain errors become their gRPC status with ErrorInfo; any other exception is
logged with its stack and becomes INTERNAL with a generic message, so no
client ever sees UNKNOWN or a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias, cast

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
from leaderboard.runtime.tokens import TokenVerifier, bearer_token

log = logging.getLogger("leaderboard.rpc")

Metadata = Sequence[tuple[str, str | bytes]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


_CODES_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, service: str, verifier: TokenVerifier | None) -> None:
        self._service = service
        self._verifier = verifier
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        self._observers: dict[tuple[str, grpc.StatusCode], Callable[[float], None]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not policy.is_ours(method):
            return handler  # health, reflection, or unknown method (gRPC answers UNIMPLEMENTED)
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
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
        return uuid.uuid4().hex

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
    async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
        await context.abort(
            _CODES_BY_NUMBER[status.code],
            status.message,
            trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
        )

    def _wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            behavior: Callable[..., Awaitable[Any]] = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                metadata = cast(Metadata, context.invocation_metadata())
                request_id_var.set(self._request_id(metadata))
                code = grpc.StatusCode.OK
                try:
                    principal_var.set(await self._authenticate(method, metadata))
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception as exc:
                    status = self._status_for(method, exc)
                    code = _CODES_BY_NUMBER[status.code]
                    await self._abort(context, status)
                finally:
                    self._observe(method, code, time.perf_counter() - started)
                    if code is not grpc.StatusCode.OK:
                        log.info("rpc error", extra={"method": method, "code": code.name})

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream_behavior: Callable[..., AsyncIterator[Any]] = handler.unary_stream  # type: ignore[assignment]

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                started = time.perf_counter()
                metadata = cast(Metadata, context.invocation_metadata())
                request_id_var.set(self._request_id(metadata))
                code = grpc.StatusCode.OK
                try:
                    principal_var.set(await self._authenticate(method, metadata))
                    async for item in stream_behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception as exc:
                    status = self._status_for(method, exc)
                    code = _CODES_BY_NUMBER[status.code]
                    await self._abort(context, status)
                finally:
                    self._observe(method, code, time.perf_counter() - started)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in our API
