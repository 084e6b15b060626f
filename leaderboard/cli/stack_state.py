"""What `leaderboard up` leaves in the data dir so the other CLI tools (admin,
bench, demo, watch) find the running stack with no flags: the store URLs in
`endpoints.env` (while it runs) and the internal secret (kept)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from leaderboard.runtime.config import Settings, load_settings

STATE_FILE = "endpoints.env"
SECRET_FILE = "internal_secret"


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def write_state(settings: Settings) -> Path:
    path = state_path(settings)
    path.write_text(f"LEADERBOARD_POSTGRES_URL={settings.postgres_url}\nLEADERBOARD_REDIS_URL={settings.redis_url}\n")
    return path


def with_running_stack(settings: Settings) -> Settings:
    """Settings with what the environment leaves empty filled from the running stack's files."""
    path = state_path(settings)
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().startswith("LEADERBOARD_"):
                found[key.strip()] = value.strip()
    # Parsed like the environment, so a bad value is reported the same way.
    from_file = load_settings(found)
    changes: dict[str, Any] = {}
    if not settings.postgres_url and from_file.postgres_url:
        changes["postgres_url"] = from_file.postgres_url
    if not settings.redis_url and from_file.redis_url:
        changes["redis_url"] = from_file.redis_url
    secret = settings.data_dir / SECRET_FILE
    if not settings.internal_secret and secret.exists():
        changes["internal_secret"] = secret.read_text().strip()
    return dataclasses.replace(settings, **changes) if changes else settings
