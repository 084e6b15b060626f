"""Alembic environment of the `scores` schema."""

from leaderboard.runtime.migrations import run_env
from services.scores.models import metadata

run_env(metadata)
