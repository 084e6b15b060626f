"""Alembic environment of the `reports` schema."""

from leaderboard.runtime.migrations import run_env
from services.reports.models import metadata

run_env(metadata)
