"""Wiring of ScoreService: what `leaderboard serve scores` runs."""

from __future__ import annotations

import grpc

from leaderboard.runtime.server import Runtime
from leaderboard.v1 import scores_pb2_grpc


class ScoreServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # The generated base answers every RPC with UNIMPLEMENTED until its issue lands.
        self.servicer = scores_pb2_grpc.ScoreServiceServicer()  # type: ignore[abstract]

    def register(self, server: grpc.aio.Server) -> None:
        scores_pb2_grpc.add_ScoreServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def create_service(runtime: Runtime) -> ScoreServiceApp:
    return ScoreServiceApp(runtime)
