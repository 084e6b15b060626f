"""SQLAlchemy tables of the `reports` schema (owned by this service alone)."""

from __future__ import annotations

from leaderboard.runtime.db import schema_metadata

metadata = schema_metadata("reports")
