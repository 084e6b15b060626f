"""Tables of the `scores` schema (owned by ScoreService alone).

score_events is range-partitioned by month on created_at (DDL in the
migrations; SQLAlchemy only needs the columns). submission_requests makes
request_id idempotent per caller and points at its batch's stored first
answers (batch_answers); outbox holds, one row per micro-batch, the committed
events that ranking has not confirmed yet; parked_events those it refused for
good.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, LargeBinary, PrimaryKeyConstraint, String, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from leaderboard.runtime.db import schema_metadata

metadata = schema_metadata("scores")

score_events = Table(
    "score_events",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("created_at", DateTime(timezone=True), primary_key=True),
    # Opaque ids: compared bytewise whatever the database's collation (migration s0005).
    Column("leaderboard_id", String(64, collation="C"), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),  # every player id is a UUID (s0007)
    Column("score", BigInteger, nullable=False),
    Column("request_id", UUID(as_uuid=False), nullable=False),
    Column("submitted_by", String(64), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("metadata", JSONB, nullable=False),
)

submission_requests = Table(
    "submission_requests",
    metadata,
    Column("caller_id", String(64, collation="C"), nullable=False),
    Column("request_id", UUID(as_uuid=False), nullable=False),
    Column("submission_id", UUID(as_uuid=False), nullable=False),
    Column("body_hash", LargeBinary, nullable=False),
    Column("response", LargeBinary),  # rows stored before batch_answers existed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", BigInteger),
    Column("batch_position", Integer),
    # The random request id first: one game server sends all under one caller id (s0006).
    PrimaryKeyConstraint("request_id", "caller_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),  # the batch id (sequence scores.batch_ids)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event_ids", ARRAY(UUID(as_uuid=False)), nullable=False),  # still to deliver, in order
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
)

parked_events = Table(
    "parked_events",
    metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
)

batch_answers = Table(
    "batch_answers",
    metadata,
    Column("batch_id", BigInteger, primary_key=True),
    Column("answers", LargeBinary, nullable=False),  # services/scores/stored_answers.py
)
