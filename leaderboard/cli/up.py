"""`leaderboard up` (what `make up` runs): embedded stores unless URLs are
configured, migrations, the four services as four processes, a table of
endpoints, and a clean stop on Ctrl-C."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from leaderboard.cli.stack_state import SECRET_FILE, write_state
from leaderboard.client import SERVICE_NAMES
from leaderboard.runtime.config import Settings
from leaderboard.runtime.embedded import EmbeddedPostgres, EmbeddedValkey
from leaderboard.runtime.migrations import upgrade
from leaderboard.runtime.secret_file import persistent_secret

console = Console(stderr=True)


async def wait_serving(target: str, service: str, deadline: float) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} at {target} is not SERVING")
            await asyncio.sleep(0.1)


async def wait_all_serving(settings: Settings, within_seconds: float) -> None:
    deadline = time.monotonic() + within_seconds
    await asyncio.gather(*(wait_serving(settings.target(n), full, deadline) for n, full in SERVICE_NAMES.items()))


def service_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        env["LEADERBOARD_" + f.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def run_up(settings: Settings, *, workers: int = 1) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    state: Path | None = None
    try:
        if not settings.postgres_url:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            console.print(f"starting embedded PostgreSQL (data in {postgres.data_dir}) ...")
            settings = dataclasses.replace(settings, postgres_url=postgres.start())
        if not settings.redis_url:
            valkey = EmbeddedValkey(settings.data_dir / "valkey")
            console.print(f"starting embedded Valkey (data in {valkey.data_dir}) ...")
            settings = dataclasses.replace(settings, redis_url=valkey.start())
        if not settings.internal_secret:
            settings = dataclasses.replace(settings, internal_secret=persistent_secret(settings.data_dir / SECRET_FILE))
        console.print("applying migrations ...")
        upgrade(settings.postgres_url)
        state = write_state(settings)
        env = service_env(settings)
        for name in SERVICE_NAMES:
            cmd = [sys.executable, "-m", "leaderboard.cli.main", "serve", name, "--workers", str(workers)]
            # Own process group: Ctrl-C reaches us once, and we stop children in order.
            procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
        asyncio.run(wait_all_serving(settings, within_seconds=60.0))
        _print_table(settings, postgres, valkey)
        while not stopping:
            for proc in procs:
                if proc.poll() is not None:
                    console.print(f"[red]a service exited with code {proc.returncode}; stopping[/red]")
                    stopping = True
            time.sleep(0.2)
        return 0
    except Exception as exc:
        console.print(f"[red]leaderboard up failed: {exc}[/red]")
        return 1
    finally:
        console.print("stopping ...")
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(settings.shutdown_grace_seconds + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if valkey is not None:
            valkey.stop()
        if postgres is not None:
            postgres.stop()
        if state is not None:
            state.unlink(missing_ok=True)
        console.print("stopped")


def _print_table(settings: Settings, postgres: EmbeddedPostgres | None, valkey: EmbeddedValkey | None) -> None:
    table = Table(title="leaderboard is up")
    table.add_column("service")
    table.add_column("endpoint")
    table.add_column("try")
    for name, full in SERVICE_NAMES.items():
        target = settings.target(name)
        table.add_row(full, target, f"grpcurl -plaintext {target.replace('127.0.0.1', 'localhost')} list")
    table.add_row("PostgreSQL" + (" (embedded)" if postgres else ""), _redact(settings.postgres_url), "")
    table.add_row("Redis" + (" (embedded Valkey)" if valkey else ""), settings.redis_url, "")
    console.print(table)
    console.print("Ctrl-C stops everything.")


def _redact(url: str) -> str:
    if "@" not in url or ":" not in url.split("@", maxsplit=1)[0].rsplit("//", maxsplit=1)[-1]:
        return url
    scheme, rest = url.split("//", 1)
    creds, host = rest.split("@", 1)
    return f"{scheme}//{creds.split(':')[0]}:***@{host}"
