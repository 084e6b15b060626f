"""The indexed id columns compare bytewise (COLLATE "C"), whatever the database's collation.

Player, board and caller ids are opaque: only equality matters, and their
indexes' order is never shown. On a database whose default collation is not C
(the postgres container image's is en_US.utf8; managed services often use one
too), every index insert compared them with the locale's rules. With an ICU
en-US default, the 1,000-row batch statement took 49.0, 50.1 and 55.8 ms
against 43.3, 45.4 and 53.0 ms with these columns in C (medians of 15,
alternating), ~5 µs per submission. Equality, and so every lookup, is the same
under both. Changing a varchar's collation rewrites no table; the indexes on
these columns are rebuilt.

Revision ID: s0005
Revises: s0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0005"
down_revision: str | None = "s0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): the varchar columns that lead an index.
_IDS = (
    ("score_events", "leaderboard_id"),
    ("score_events", "user_id"),
    ("submission_requests", "caller_id"),
)


def upgrade() -> None:
    for table, column in _IDS:
        op.execute(f'ALTER TABLE scores.{table} ALTER COLUMN {column} TYPE varchar(64) COLLATE "C"')


def downgrade() -> None:
    for table, column in reversed(_IDS):
        op.execute(f'ALTER TABLE scores.{table} ALTER COLUMN {column} TYPE varchar(64) COLLATE "default"')
