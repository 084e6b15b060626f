"""Alembic environment of the `ranking` schema."""

from leaderboard.runtime.migrations import run_env
from services.ranking.models import metadata

run_env(metadata)
