"""SQLAlchemy tables of the `ranking` schema (owned by this service alone).

Only the catalog and the hidden-player list live here; live rankings are
derived state in Redis (see docs/ranking.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    Index,
    Integer,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leaderboard.runtime.db import schema_metadata

metadata = schema_metadata("ranking")


class Base(DeclarativeBase):
    metadata = metadata


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class LeaderboardRow(Base):
    """One catalog entry. Deleted boards keep their row (deleted_at set) so their id is never reused:
    their score history is kept, and a rebuild of a new board with the same id would replay it."""

    __tablename__ = "leaderboards"
    __table_args__ = (
        CheckConstraint("sort_order IN ('desc', 'asc')", name="sort_order_known"),
        CheckConstraint("update_policy IN ('best', 'latest', 'sum')", name="update_policy_known"),
        CheckConstraint("global_weight >= 0", name="global_weight_non_negative"),
        CheckConstraint("retention_periods >= 0", name="retention_non_negative"),
        Index(None, "game_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    game_id: Mapped[str] = mapped_column(String(64), nullable=False)
    display_name: Mapped[str] = mapped_column(String(128), nullable=False)
    sort_order: Mapped[str] = mapped_column(String(8), nullable=False)
    update_policy: Mapped[str] = mapped_column(String(8), nullable=False)
    min_score: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_score: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    authoritative: Mapped[bool] = mapped_column(Boolean, nullable=False)
    windows: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False)
    global_weight: Mapped[float] = mapped_column(Double, nullable=False)
    retention_periods: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HiddenUserRow(Base):
    """Players hidden from every ranking (banned). Redis keeps a copy per leaderboard."""

    __tablename__ = "hidden_users"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    hidden_at: Mapped[datetime] = _now()
