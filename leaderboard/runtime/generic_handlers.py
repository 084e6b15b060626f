"""Registration of gRPC handlers as generic handlers only.

gRPC's generated `add_*Servicer_to_server` functions (and health's and
reflection's) register each service twice: as a generic handler, and method
by method as "registered methods". grpc.aio's server (grpcio 1.85) waits for
its next call with `asyncio.wait` over one pending request per registered
method plus one for all generic calls, so every call it accepts costs a set,
an add_done_callback and a remove_done_callback per registered method, and a
new task. ScoreService with health and reflection registered 8 methods,
RankingService 17; a bare echo server spent 3-4% more CPU per call with 9
registered methods, 6-9% more with 18 (`python -m benchmarks.grpc_server_variants`).
Served as generic handlers only, the server waits on one request, as the
benchmarks' echo server does; a call then finds its handler with a dictionary
lookup per generic handler tried, in registration order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
GenericHandler: TypeAlias = "grpc.GenericRpcHandler[Any, Any]"


class _Lookup(grpc.HandlerCallDetails):
    """The details a generic handler is asked with, to probe whether it serves a method."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class GenericRegistration:
    """What services register on instead of the grpc.aio server: every handler reaches
    the server as a generic handler. Subclasses may wrap each generic handler first."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self._added: list[GenericHandler] = []

    def wrap(self, handler: GenericHandler) -> GenericHandler:
        return handler

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericHandler]) -> None:
        wrapped = tuple(self.wrap(h) for h in handlers)
        self._added.extend(wrapped)
        self._server.add_generic_rpc_handlers(wrapped)

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Handler]) -> None:
        # Generated code has added the same handlers as a generic handler just before;
        # only a method no generic handler serves yet is added (as a generic one).
        missing = {
            name: handler for name, handler in method_handlers.items() if not self.serves(f"/{service_name}/{name}")
        }
        if missing:
            self.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, missing),))

    def serves(self, method: str) -> bool:
        lookup = _Lookup(method)
        return any(h.service(lookup) is not None for h in self._added)
