"""The idempotency keys' primary key leads with request_id: (request_id, caller_id).

A game server sends all its submissions under one caller id, so under
(caller_id, request_id) every comparison of an index insert first compared two
equal 36-character caller ids before reaching the random request id. Leading
with the UUID settles almost every comparison on 16 bytes. Measured on the
embedded PostgreSQL, 20,000-row inserts into a 500,000-row copy of the table
with one caller (alternating, 6 each): median 340 ms against 298 ms, ~2 µs per
submission. Lookups name both columns, so they use it either way. The key's
index is rebuilt (the table holds only the idempotency window's keys).

Revision ID: s0006
Revises: s0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0006"
down_revision: str | None = "s0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _primary_key(columns: str) -> None:
    op.execute(
        "ALTER TABLE scores.submission_requests DROP CONSTRAINT pk_submission_requests,"
        f" ADD CONSTRAINT pk_submission_requests PRIMARY KEY ({columns})"
    )


def upgrade() -> None:
    _primary_key("request_id, caller_id")


def downgrade() -> None:
    _primary_key("caller_id, request_id")
