"""Alembic environment of the `auth` schema."""

from leaderboard.runtime.migrations import run_env
from services.auth.models import metadata

run_env(metadata)
