"""`leaderboard up` as a newcomer runs it: embedded stores, four services, clean stop, data kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from leaderboard.runtime.config import load_settings
from leaderboard.runtime.embedded import free_port

pytestmark = pytest.mark.slow


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERBOARD_")}
    env["LEADERBOARD_DATA_DIR"] = str(data_dir)
    for name, port in ports.items():
        env[f"LEADERBOARD_{name.upper()}_PORT"] = str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "leaderboard.cli.main", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_up(proc: subprocess.Popen[str], data_dir: Path, ports: dict[str, int]) -> str:
    from leaderboard.cli.up import wait_all_serving

    settings = load_settings({}, data_dir=data_dir, **{f"{n}_port": p for n, p in ports.items()})
    deadline = time.monotonic() + 90
    while not (data_dir / "endpoints.env").exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "stack did not come up"
        time.sleep(0.2)
    asyncio.run(wait_all_serving(settings, within_seconds=60))
    env = dict(line.split("=", 1) for line in (data_dir / "endpoints.env").read_text().splitlines() if line)
    return env["LEADERBOARD_POSTGRES_URL"]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0


def _leftovers(data_dir: Path, ports: dict[str, int]) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if str(data_dir) in cmdline or ("leaderboard.cli.main serve" in cmdline and p.ppid() == os.getpid()):
            found.append(cmdline)
    return found


def test_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    ports = {name: free_port() for name in ("auth", "scores", "ranking", "reports")}
    proc = _start(data_dir, ports)
    try:
        url = _wait_up(proc, data_dir, ports)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept_marker (v int)")
            conn.execute("INSERT INTO kept_marker VALUES (42)")
    finally:
        _stop(proc)
    assert not (data_dir / "endpoints.env").exists()
    assert _leftovers(data_dir, ports) == []

    again = _start(data_dir, ports)
    try:
        url = _wait_up(again, data_dir, ports)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept_marker").fetchone() == (42,)
    finally:
        _stop(again)
    assert _leftovers(data_dir, ports) == []


def test_serve_workers_share_one_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERBOARD_")}
    env.update({"LEADERBOARD_REPORTS_PORT": str(port), "LEADERBOARD_DATA_DIR": str(tmp_path)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard.cli.main", "serve", "reports", "--workers", "2"],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        from leaderboard.cli.up import wait_serving

        asyncio.run(wait_serving(f"127.0.0.1:{port}", "leaderboard.v1.ReportService", time.monotonic() + 60))
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        assert all(w.is_running() for w in workers)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not any(w.is_running() for w in workers)
