"""One outbox row and one stored-answers row per micro-batch instead of per submission.

Per-submission outbox rows cost an insert, an index entry and a delete each, and
per-submission stored answers an UPDATE of the idempotency row; per batch, both
cost one row per thousand submissions. Pending per-event rows move over as
one-event batches; parked ones move to parked_events.

Revision ID: s0002
Revises: s0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0002"
down_revision: str | None = "s0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE scores.outbox RENAME TO outbox_events")
    op.execute("ALTER TABLE scores.outbox_events RENAME CONSTRAINT pk_outbox TO pk_outbox_events")
    op.execute("CREATE SEQUENCE scores.batch_ids")
    op.execute(
        """
        CREATE TABLE scores.outbox (
            id bigint NOT NULL,
            created_at timestamptz NOT NULL,
            event_ids uuid[] NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            CONSTRAINT pk_outbox PRIMARY KEY (id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE scores.parked_events (
            event_id uuid NOT NULL,
            created_at timestamptz NOT NULL,
            parked_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            CONSTRAINT pk_parked_events PRIMARY KEY (event_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE scores.batch_answers (
            batch_id bigint NOT NULL,
            answers bytea NOT NULL,
            CONSTRAINT pk_batch_answers PRIMARY KEY (batch_id)
        )
        """
    )
    op.execute("ALTER TABLE scores.submission_requests ADD COLUMN batch_id bigint, ADD COLUMN batch_position integer")
    op.execute(
        """
        INSERT INTO scores.outbox (id, created_at, event_ids, attempts, last_error)
        SELECT nextval('scores.batch_ids'), created_at, ARRAY[event_id], attempts, last_error
        FROM (SELECT * FROM scores.outbox_events WHERE parked_at IS NULL ORDER BY id) pending
        """
    )
    op.execute(
        """
        INSERT INTO scores.parked_events (event_id, created_at, parked_at, attempts, last_error)
        SELECT event_id, created_at, parked_at, attempts, last_error
        FROM scores.outbox_events WHERE parked_at IS NOT NULL
        ON CONFLICT DO NOTHING
        """
    )
    op.execute("DROP TABLE scores.outbox_events")


def downgrade() -> None:
    op.execute("ALTER TABLE scores.outbox RENAME TO outbox_batches")
    op.execute("ALTER TABLE scores.outbox_batches RENAME CONSTRAINT pk_outbox TO pk_outbox_batches")
    op.execute(
        """
        CREATE TABLE scores.outbox (
            id bigserial NOT NULL,
            event_id uuid NOT NULL,
            created_at timestamptz NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            parked_at timestamptz,
            CONSTRAINT pk_outbox PRIMARY KEY (id)
        )
        """
    )
    op.execute("CREATE INDEX ix_outbox_pending ON scores.outbox (id) WHERE parked_at IS NULL")
    # Events keep their order: batches in id order, then their position.
    op.execute(
        """
        INSERT INTO scores.outbox (event_id, created_at, attempts, last_error)
        SELECT e.id, e.created_at, b.attempts, b.last_error
        FROM (SELECT * FROM scores.outbox_batches ORDER BY id) b
        CROSS JOIN LATERAL unnest(b.event_ids) WITH ORDINALITY AS k(event_id, n)
        JOIN scores.score_events e ON e.id = k.event_id
        ORDER BY b.id, k.n
        """
    )
    op.execute(
        """
        INSERT INTO scores.outbox (event_id, created_at, attempts, last_error, parked_at)
        SELECT event_id, created_at, attempts, last_error, parked_at FROM scores.parked_events
        """
    )
    op.execute("DROP TABLE scores.outbox_batches")
    op.execute("DROP TABLE scores.parked_events")
    # Answers stored per batch are given up: replays of those requests answer applied=false.
    op.execute("DROP TABLE scores.batch_answers")
    op.execute("ALTER TABLE scores.submission_requests DROP COLUMN batch_id, DROP COLUMN batch_position")
    op.execute("DROP SEQUENCE scores.batch_ids")
