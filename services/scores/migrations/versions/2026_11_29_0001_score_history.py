"""Score history (partitioned by month), idempotency keys, outbox.

Revision ID: s0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE scores.score_events (
            id uuid NOT NULL,
            created_at timestamptz NOT NULL,
            leaderboard_id varchar(64) NOT NULL,
            user_id varchar(64) NOT NULL,
            score bigint NOT NULL,
            request_id uuid NOT NULL,
            submitted_by varchar(64) NOT NULL,
            display_name text NOT NULL DEFAULT '',
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
            CONSTRAINT pk_score_events PRIMARY KEY (id, created_at)
        ) PARTITION BY RANGE (created_at)
        """
    )
    # Rows outside every monthly partition land here instead of failing; the
    # service creates months ahead, so this stays empty in practice.
    op.execute("CREATE TABLE scores.score_events_default PARTITION OF scores.score_events DEFAULT")
    op.execute("CREATE INDEX ix_score_events_user_created ON scores.score_events (user_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX ix_score_events_board_created ON scores.score_events (leaderboard_id, created_at, id)")
    op.execute(
        """
        CREATE TABLE scores.submission_requests (
            caller_id varchar(64) NOT NULL,
            request_id uuid NOT NULL,
            submission_id uuid NOT NULL,
            body_hash bytea NOT NULL,
            response bytea,
            created_at timestamptz NOT NULL,
            CONSTRAINT pk_submission_requests PRIMARY KEY (caller_id, request_id)
        )
        """
    )
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


def downgrade() -> None:
    op.execute("DROP TABLE scores.outbox")
    op.execute("DROP TABLE scores.submission_requests")
    op.execute("DROP TABLE scores.score_events")
