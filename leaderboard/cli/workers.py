"""`leaderboard serve <service> --workers N`: N processes on one port.

One Python process tops out near one core, so a service scales on a machine
by running several processes that share the port through SO_REUSEPORT (the
kernel spreads connections between them).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import types

from leaderboard.runtime.config import Settings
from leaderboard.runtime.logs import configure_logging
from leaderboard.runtime.process import run


def serve_one(service: str, settings: Settings, worker_index: int) -> int:
    from leaderboard.runtime.server import serve

    configure_logging(service, settings.log_level, json_lines=settings.log_json)
    run(serve(service, settings, worker=worker_index), event_loop=settings.event_loop)
    return 0


def serve_workers(service: str, settings: Settings, *, workers: int, worker_index: int = 0) -> int:
    if workers <= 1:
        return serve_one(service, settings, worker_index)
    procs = [
        subprocess.Popen([sys.executable, "-m", "leaderboard.cli.main", "serve", service, "--worker-index", str(i)])
        for i in range(workers)
    ]

    def forward(signum: int, _frame: types.FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [proc.wait() for proc in procs]
    return max(codes, default=0)
