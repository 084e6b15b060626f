"""Request ids are remembered for a retention period, not forever.

BRIN indexes on the creation time of idempotency keys and of stored first
answers let the service delete the expired ones in chunks. Both tables are
written in time order, so a BRIN index stays a few pages and costs inserts next
to nothing, where a B-tree would add an index entry per submission.
batch_answers gets its own creation time (existing rows: the time of this
migration, so they expire one retention period from now).

Revision ID: s0003
Revises: s0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0003"
down_revision: str | None = "s0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_submission_requests_created_at ON scores.submission_requests USING brin (created_at)")
    op.execute("ALTER TABLE scores.batch_answers ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()")
    op.execute("CREATE INDEX ix_batch_answers_created_at ON scores.batch_answers USING brin (created_at)")


def downgrade() -> None:
    op.execute("DROP INDEX scores.ix_batch_answers_created_at")
    op.execute("ALTER TABLE scores.batch_answers DROP COLUMN created_at")
    op.execute("DROP INDEX scores.ix_submission_requests_created_at")
