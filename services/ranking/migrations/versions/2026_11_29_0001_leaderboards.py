"""Leaderboards catalog (with the built-in `global` board) and hidden players.

Revision ID: 2026_11_29_0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_29_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ranking"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.text("now()"),
    )


def upgrade() -> None:
    op.create_table(
        "leaderboards",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("game_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("sort_order", sa.String(8), nullable=False),
        sa.Column("update_policy", sa.String(8), nullable=False),
        sa.Column("min_score", sa.BigInteger(), nullable=True),
        sa.Column("max_score", sa.BigInteger(), nullable=True),
        sa.Column("authoritative", sa.Boolean(), nullable=False),
        sa.Column("windows", sa.ARRAY(sa.String(16)), nullable=False),
        sa.Column("global_weight", sa.Double(), nullable=False),
        sa.Column("retention_periods", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("deleted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_leaderboards"),
        sa.CheckConstraint("sort_order IN ('desc', 'asc')", name="ck_leaderboards_sort_order_known"),
        sa.CheckConstraint("update_policy IN ('best', 'latest', 'sum')", name="ck_leaderboards_update_policy_known"),
        sa.CheckConstraint("global_weight >= 0", name="ck_leaderboards_global_weight_non_negative"),
        sa.CheckConstraint("retention_periods >= 0", name="ck_leaderboards_retention_non_negative"),
        schema=SCHEMA,
    )
    op.create_index("ix_leaderboards_game_id_id", "leaderboards", ["game_id", "id"], schema=SCHEMA)
    op.create_table(
        "hidden_users",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _timestamp("hidden_at"),
        sa.PrimaryKeyConstraint("user_id", name="pk_hidden_users"),
        schema=SCHEMA,
    )
    # The built-in global leaderboard: derived (weighted sum of standings), always present.
    op.execute(
        f"INSERT INTO {SCHEMA}.leaderboards (id, game_id, display_name, sort_order, update_policy, "
        "authoritative, windows, global_weight, retention_periods) "
        "VALUES ('global', '', 'Global', 'desc', 'sum', true, '{}', 0, 0)"
    )


def downgrade() -> None:
    op.drop_table("hidden_users", schema=SCHEMA)
    op.drop_index("ix_leaderboards_game_id_id", table_name="leaderboards", schema=SCHEMA)
    op.drop_table("leaderboards", schema=SCHEMA)
