"""Prometheus metrics: RPC counts and latency by method and code."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RPC_TOTAL = Counter(
    "leaderboard_rpc_total", "RPCs handled, by service, method and status code", ["service", "method", "code"]
)
RPC_SECONDS = Histogram(
    "leaderboard_rpc_seconds",
    "RPC handling time in seconds, by service and method",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def start_metrics_endpoint(host: str, port: int) -> None:
    """Serve /metrics on host:port (a daemon thread; no work on the event loop)."""
    if port:
        start_http_server(port, addr=host)
