"""`leaderboard bench --embedded`: a whole deployment of its own, then gone.

Embedded PostgreSQL and Valkey on free ports in a temporary directory,
migrations, and the four services as `leaderboard serve` subprocesses on free
ports, just as `make up` runs them, so the figures describe what `make up`
runs. Everything is stopped and deleted at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from leaderboard.cli.up import service_env, wait_all_serving
from leaderboard.client import SERVICE_NAMES
from leaderboard.runtime.config import Settings
from leaderboard.runtime.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from leaderboard.runtime.migrations import upgrade


class EmbeddedStack:
    def __init__(self, settings: Settings, *, workers: int = 1) -> None:
        self.base = settings
        self.workers = workers
        self.root: Path | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> Settings:
        """Start everything (blocking: a CLI step before any event loop runs); returns its settings."""
        self.root = Path(tempfile.mkdtemp(prefix="lb-bench-"))
        self.postgres = EmbeddedPostgres(self.root / "postgres")
        postgres_url = self.postgres.start()
        self.valkey = EmbeddedValkey(self.root / "valkey")
        redis_url = self.valkey.start()
        data_dir = self.root / "data"
        data_dir.mkdir()
        ports: dict[str, Any] = {f"{name}_port": free_port() for name in SERVICE_NAMES}
        settings = dataclasses.replace(
            self.base,
            postgres_url=postgres_url,
            redis_url=redis_url,
            data_dir=data_dir,
            host="127.0.0.1",
            auth_target="",
            scores_target="",
            ranking_target="",
            reports_target="",
            internal_secret=secrets.token_urlsafe(32),
            signing_key_secret=secrets.token_urlsafe(32),
            metrics_port_base=0,  # never collide with a running `make up`
            **ports,
        )
        upgrade(postgres_url)
        env = service_env(settings)
        for name in SERVICE_NAMES:
            log = (self.root / f"{name}.log").open("ab")
            cmd = [sys.executable, "-m", "leaderboard.cli.main", "serve", name, "--workers", str(self.workers)]
            # Own session: Ctrl-C reaches the benchmark once, and it stops the services itself.
            self.procs.append(
                subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
            )
            log.close()
        asyncio.run(wait_all_serving(settings, within_seconds=60.0))
        return settings

    @property
    def logs(self) -> Path | None:
        return self.root

    def stop(self, *, keep_files: bool = False) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(self.base.shutdown_grace_seconds + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.valkey is not None:
            self.valkey.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.root is not None and not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)
        elif self.root is not None:
            print(f"logs kept in {self.root}", file=sys.stderr)
