"""The score history's user_id is a uuid (16 bytes) instead of varchar text (37).

Every player id is a UUID (accounts' ids; ingest refuses any other), and the
history's (user_id, created_at, id) index takes an entry per submission at a
random place. As uuid its entries are 48 bytes instead of 72 and compare with
one memcmp. Measured with `python -m benchmarks.history_growth` (600 batch
statements of 1,000 rows into the embedded PostgreSQL, as varchar and as uuid
alternating, seven pairs, two with an earlier form of the script): the index
46 MB against 68 MB, the partition 95 MB against 109 MB; PostgreSQL's CPU per
submission, the mean of a run's six figures, 16.9-20.1 µs as uuid against
17.2-25.1 as varchar (medians 18.3 and 18.6): within this machine's spread.

The type change rewrites score_events (every partition) and rebuilds its
indexes under an exclusive lock: on a large history, run it in a quiet hour. A
user_id that is not a UUID, which no service stores, stops it with its count.

Revision ID: s0007
Revises: s0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "s0007"
down_revision: str | None = "s0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_UUID = (
    "SELECT count(*) FROM scores.score_events"
    " WHERE user_id !~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'"
)


def upgrade() -> None:
    bad = op.get_bind().execute(text(_NOT_UUID)).scalar_one()
    if bad:
        raise RuntimeError(
            f"{bad} score history rows have a user_id that is not a UUID; fix or delete them, then migrate again"
        )
    op.execute("ALTER TABLE scores.score_events ALTER COLUMN user_id TYPE uuid USING CAST(user_id AS uuid)")


def downgrade() -> None:
    op.execute(
        'ALTER TABLE scores.score_events ALTER COLUMN user_id TYPE varchar(64) COLLATE "C" USING CAST(user_id AS text)'
    )
