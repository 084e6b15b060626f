"""Typed configuration from `LEADERBOARD_*` environment variables.

Every setting is declared once in `Settings` with its type, default and help;
`load_settings` parses and validates them and fails fast with one line naming
the variable. `docs/configuration.md` is generated from the same declarations.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaderboard.runtime.process import EVENT_LOOPS

PREFIX = "LEADERBOARD_"


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def _setting(default: Any, help: str, *, parse: Callable[[str], Any] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "parse": parse})


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("expected a number > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # NaN too
        raise ValueError("expected a number >= 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected an integer > 0")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw and not raw.startswith(tuple(s + "://" for s in schemes)):
            raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return raw

    return parse


@dataclass(frozen=True)
class Settings:
    """All settings. Environment variable = `LEADERBOARD_` + field name in upper case."""

    postgres_url: str = _setting(
        "",
        "PostgreSQL URL (postgresql://user:pass@host:port/db). Empty: `leaderboard up` starts an "
        "embedded PostgreSQL under the data dir.",
        parse=_url(("postgresql", "postgresql+psycopg", "postgres")),
    )
    redis_url: str = _setting(
        "",
        "Redis URL (redis://host:port/db, rediss:// with TLS, or unix:///path/to.sock?db=0). "
        "Empty: `leaderboard up` starts an embedded Valkey.",
        parse=_url(("redis", "rediss", "unix")),
    )
    redis_key_prefix: str = _setting(
        "lb:", "Prefix of every Redis key (lets several deployments or test runs share one Redis)."
    )
    data_dir: Path = _setting(Path(".leaderboard"), "Where embedded servers keep their data and logs.", parse=Path)
    host: str = _setting("127.0.0.1", "Address the services listen on.")
    auth_port: int = _setting(50051, "AuthService port.", parse=_port)
    scores_port: int = _setting(50052, "ScoreService port.", parse=_port)
    ranking_port: int = _setting(50053, "RankingService port.", parse=_port)
    reports_port: int = _setting(50054, "ReportService port.", parse=_port)
    auth_target: str = _setting("", "Address services use to reach AuthService (default host:auth_port).")
    scores_target: str = _setting("", "Address of ScoreService (default host:scores_port).")
    ranking_target: str = _setting("", "Address of RankingService (default host:ranking_port).")
    reports_target: str = _setting("", "Address of ReportService (default host:reports_port).")
    metrics_port_base: int = _setting(
        0,
        "First Prometheus metrics port; service i of (auth, scores, ranking, reports) and worker w "
        "listen on base + 10*i + w. 0 disables the metrics endpoints.",
        parse=_port,
    )
    log_level: str = _setting(
        "INFO",
        "Log level: DEBUG, INFO, WARNING, ERROR. At DEBUG, grpc's own per-call debug lines stay out (its "
        "logger is held at INFO).",
        parse=_log_level,
    )
    log_json: bool = _setting(True, "Log one JSON object per line (false: plain text).", parse=_bool)
    shutdown_grace_seconds: float = _setting(
        5.0, "How long in-flight RPCs get to finish on SIGTERM.", parse=_positive_float
    )
    rpc_timeout_seconds: float = _setting(
        10.0, "Default deadline of the project's client for unary calls.", parse=_positive_float
    )
    event_loop: str = _setting(
        "uvloop",
        "Event loop of every service process: uvloop (libuv, cheaper per call) or asyncio (the "
        "standard library's). The benchmark's echo baseline runs on the same loop.",
        parse=_choice(EVENT_LOOPS),
    )
    gc_gen0_threshold: int = _setting(
        5_000,
        "Allocations between young-generation garbage collections (CPython's default: 700). "
        "Services also freeze what exists at start-up out of the collector's sight. A young "
        "collection's pause grows faster than its size: grpc.aio leaves ~8 objects per call in "
        "reference cycles, and at 50000 ScoreService paused ~90 ms once per ~6,500 calls (its "
        "p99); at 5000 its pauses stay under ~5 ms. 0 leaves the collector as it is.",
        parse=_non_negative_int,
    )
    db_pool_size: int = _setting(10, "SQLAlchemy pool size per process.", parse=_positive_int)
    db_timeout_seconds: float = _setting(
        5.0,
        "How long connecting to PostgreSQL, or one of its statements, may take before the call "
        "fails UNAVAILABLE and the connection is dropped (a hung or unreachable database).",
        parse=_positive_float,
    )
    redis_max_connections: int = _setting(64, "Redis connection pool size per process.", parse=_positive_int)
    redis_timeout_seconds: float = _setting(
        5.0,
        "How long connecting to Redis, or one of its commands, may take before the call fails "
        "UNAVAILABLE and the connection is dropped (a hung or unreachable Redis).",
        parse=_positive_float,
    )
    jwt_issuer: str = _setting("leaderboard-auth", "`iss` claim of access tokens.")
    jwt_audience: str = _setting("leaderboard", "`aud` claim of access tokens.")
    access_token_ttl_seconds: int = _setting(900, "Access token lifetime.", parse=_positive_int)
    refresh_token_ttl_seconds: int = _setting(30 * 24 * 3600, "Refresh token lifetime.", parse=_positive_int)
    signing_key_secret: str = _setting(
        "",
        "Secret that encrypts the stored private signing keys. Empty: a random secret is created "
        "once in the data dir (fine for development; set it in production).",
    )
    internal_secret: str = _setting(
        "",
        "Shared secret with which the platform's own services obtain ROLE_SERVER tokens from "
        "AuthService (client id `internal:<service>`), e.g. ScoreService calling ApplyScores. "
        "Empty: `leaderboard up` creates one in the data dir; internal tokens are refused when unset.",
    )
    keys_cache_seconds: int = _setting(
        300, "How long other services cache AuthService's public keys.", parse=_positive_int
    )
    argon2_time_cost: int = _setting(2, "argon2id iterations (OWASP floor: 2).", parse=_positive_int)
    argon2_memory_kib: int = _setting(
        19456, "argon2id memory in KiB (OWASP floor: 19456 = 19 MiB).", parse=_positive_int
    )
    argon2_max_concurrent: int = _setting(
        4, "Password hashes computed at once per process (bounds memory).", parse=_positive_int
    )
    login_max_failures: int = _setting(
        5,
        "Failed logins per account from one client address before exponential back-off starts.",
        parse=_positive_int,
    )
    login_account_max_failures: int = _setting(
        20,
        "Failed logins per account from all addresses together before back-off starts "
        "(slows guessing spread over many addresses).",
        parse=_positive_int,
    )
    login_backoff_base_seconds: float = _setting(
        1.0, "First login back-off; it doubles with every further failure.", parse=_positive_float
    )
    login_backoff_max_seconds: float = _setting(
        300.0,
        "Longest login back-off: after it the right password always gets in again.",
        parse=_positive_float,
    )
    login_failure_reset_seconds: float = _setting(
        900.0, "Failed-login counts are forgotten after this long without an attempt.", parse=_positive_float
    )
    login_peer_max_failures: int = _setting(
        100,
        "Failed or refused logins per client address over all accounts within a minute (0: no limit). "
        "Behind a proxy every client shares its address: raise or disable.",
        parse=_non_negative_int,
    )
    register_peer_max_per_hour: int = _setting(
        0,
        "Registrations per client address per hour (0: no limit). Each costs a password hash in "
        "the pool logins use; behind a proxy every client shares its address, so set it only where "
        "AuthService sees the players' own addresses.",
        parse=_non_negative_int,
    )
    submit_rate_per_second: float = _setting(
        50.0, "Per-player score submissions per second (burst: 2x).", parse=_positive_float
    )
    request_id_retention_hours: int = _setting(
        168,
        "How long a submission's request_id is remembered (a retry gets the first answer); older "
        "idempotency keys and answers are deleted, and the id then makes a new submission. "
        "0: keep them forever. The score history itself is kept regardless.",
        parse=_non_negative_int,
    )
    batch_linger_ms: float = _setting(
        10.0,
        "Longest the score ingest waits to fill a micro-batch while other batches are in flight: "
        "it leaves as soon as they are done, and never waits when idle (a lone submission goes at "
        "once). Measured on 2 cores at 64 unary callers: 10 took 7-20% less CPU per submission "
        "than 5, and 20 no less than 10.",
        parse=_positive_float,
    )
    batch_min_interval_ms: float = _setting(
        12.0,
        "The least time between two micro-batches leaving while ScoreService is CPU-bound, scaled "
        "by how busy it was over the last 0.1 s: none of it at 70% of a core or less, all of it "
        "from 95% on, in proportion between. Batches grow and their fixed cost (a statement, an "
        "ApplyScores call) is shared by more calls; a full batch never waits, nor does a lightly "
        "loaded service. Measured on 2 cores at 64 unary callers: all of 12 ms at 80% or more, "
        "against none, gave batches of 26-36 against 14-19 and 0.59x echo against 0.54x (11 "
        "pairs, a saturated machine); on a faster one, where ScoreService sat near 80%, scaling "
        "it beat all of 12 ms in 9 of 10 alternating rounds (medians 3,331 against 3,235 req/s in "
        "fast minutes, 2,934 against 2,773 in slow ones). 0: off.",
        parse=_non_negative_float,
    )
    batch_max_size: int = _setting(
        1000,
        "Largest micro-batch of submissions (one SQL statement; ApplyScores calls of at most 1000 "
        "events). Measured on 2 cores, end to end: 1000 beat 500 and 2000 for BatchSubmitScores.",
        parse=_positive_int,
    )
    window_retention_periods: int = _setting(
        8, "Default number of past periods a window keeps readable.", parse=_non_negative_int
    )
    ranking_catalog_cache_seconds: float = _setting(
        5.0,
        "How long each ranking replica caches leaderboard definitions (a change made on one "
        "replica reaches the others within this time).",
        parse=_positive_float,
    )
    ranking_dedup_window_seconds: int = _setting(
        86400,
        "Score events are deduplicated by id if redelivered within this long after the hour they "
        "were achieved in (memory: one ~40-byte entry per event in the window).",
        parse=_positive_int,
    )
    ranking_page_token_ttl_seconds: int = _setting(
        600, "How long a ListTopEntries page token stays valid.", parse=_positive_int
    )
    stream_tick_ms: int = _setting(
        100, "How often rank updates are coalesced and pushed to subscribers.", parse=_positive_int
    )

    def target(self, service: str) -> str:
        explicit: str = getattr(self, f"{service}_target")
        if explicit:
            return explicit
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"{host}:{getattr(self, f'{service}_port')}"

    def port(self, service: str) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    @property
    def sqlalchemy_url(self) -> str:
        return to_sqlalchemy_url(self.postgres_url)


def to_sqlalchemy_url(url: str) -> str:
    """Normalise any PostgreSQL URL to SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def env_name(f: dataclasses.Field[Any]) -> str:
    return PREFIX + f.name.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Parse settings from the environment; raise ConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = env_name(f)
        if name not in env:
            continue
        raw = env[name]
        parse = f.metadata["parse"] or str
        try:
            values[f.name] = parse(raw)
        except ValueError as exc:
            detail = str(exc) if not str(exc).startswith("invalid literal") else "not a number"
            raise ConfigError(f"{name}={raw!r} is invalid: {detail}") from None
    known = {env_name(f) for f in dataclasses.fields(Settings)}
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known and not k.startswith(PREFIX + "TEST_"))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} (see docs/configuration.md)")
    values.update(overrides)
    return Settings(**values)


def settings_reference() -> str:
    """Markdown table of every setting (docs/configuration.md is generated from it)."""
    lines = [
        "| Variable | Default | Meaning |",
        "| --- | --- | --- |",
    ]
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = f"`{default}`" if default not in ("", None) else "(empty)"
        lines.append(f"| `{env_name(f)}` | {shown} | {f.metadata['help']} |")
    return "\n".join(lines) + "\n"
