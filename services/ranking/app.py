"""Wiring of RankingService: what `leaderboard serve ranking` runs."""

from __future__ import annotations

import grpc

from leaderboard.runtime.server import Runtime
from leaderboard.v1 import ranking_pb2_grpc


class RankingServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # The generated base answers every RPC with UNIMPLEMENTED until its issue lands.
        self.servicer = ranking_pb2_grpc.RankingServiceServicer()  # type: ignore[abstract]

    def register(self, server: grpc.aio.Server) -> None:
        ranking_pb2_grpc.add_RankingServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def create_service(runtime: Runtime) -> RankingServiceApp:
    return RankingServiceApp(runtime)
