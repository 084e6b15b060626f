"""A batch's outbox event ids and its stored first answers are kept uncompressed.

Both values are over TOAST's 2 KB threshold for every batch of more than ~120
submissions (16 bytes per event id, ~80 bytes per answer), so PostgreSQL
compressed them with pglz on every insert: 5% of the database's CPU under
BatchSubmitScores (perf), for values the relay deletes within moments or a
replay reads at most once. Stored out of line without compression, the 1,000-
row batch statement (with the previous batch's answers) took 28.1 and 24.4 ms
against 30.2 and 29.0 ms (medians of 20 interleaved runs, twice); the cost is
about 10 bytes more of WAL and disk per submission.

Revision ID: s0004
Revises: s0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0004"
down_revision: str | None = "s0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Storage settings change only how new values are written: no table rewrite.
    op.execute("ALTER TABLE scores.outbox ALTER COLUMN event_ids SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE scores.batch_answers ALTER COLUMN answers SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE scores.batch_answers ALTER COLUMN answers SET STORAGE EXTENDED")
    op.execute("ALTER TABLE scores.outbox ALTER COLUMN event_ids SET STORAGE EXTENDED")
