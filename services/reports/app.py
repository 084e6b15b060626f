"""Wiring of ReportService: what `leaderboard serve reports` runs."""

from __future__ import annotations

import grpc

from leaderboard.runtime.server import Runtime
from leaderboard.v1 import reports_pb2_grpc


class ReportServiceApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # The generated base answers every RPC with UNIMPLEMENTED until its issue lands.
        self.servicer = reports_pb2_grpc.ReportServiceServicer()  # type: ignore[abstract]

    def register(self, server: grpc.aio.Server) -> None:
        reports_pb2_grpc.add_ReportServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def create_service(runtime: Runtime) -> ReportServiceApp:
    return ReportServiceApp(runtime)
