"""Wiring of AuthService: what `leaderboard serve auth` runs."""

from __future__ import annotations

import grpc

from leaderboard.runtime.server import Runtime
from leaderboard.v1 import auth_pb2_grpc


class AuthServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # The generated base answers every RPC with UNIMPLEMENTED until its issue lands.
        self.servicer = auth_pb2_grpc.AuthServiceServicer()  # type: ignore[abstract]

    def register(self, server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def create_service(runtime: Runtime) -> AuthServiceApp:
    return AuthServiceApp(runtime)
