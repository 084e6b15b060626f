"""Accounts, service accounts, refresh-token families and signing keys.

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

SCHEMA = "auth"


def _timestamp(name: str, *, nullable: bool = False, default_now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text("now()") if default_now else None,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        _timestamp("created_at", default_now=True),
        _timestamp("updated_at", default_now=True),
        _timestamp("locked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint("username = lower(username)", name="ck_users_username_lower"),
        sa.CheckConstraint("role IN ('player', 'server', 'admin')", name="ck_users_role_known"),
        schema=SCHEMA,
    )
    op.create_table(
        "service_accounts",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(), nullable=False),
        _timestamp("created_at", default_now=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_service_accounts"),
        sa.UniqueConstraint("user_id", name="uq_service_accounts_user_id"),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{SCHEMA}.users.id"], name="fk_service_accounts_user_id_users", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _timestamp("created_at", default_now=True),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoke_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_families"),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{SCHEMA}.users.id"], name="fk_refresh_families_user_id_users", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"], schema=SCHEMA)
    op.create_table(
        "refresh_tokens",
        sa.Column("token_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        _timestamp("created_at", default_now=True),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["family_id"],
            [f"{SCHEMA}.refresh_families.id"],
            name="fk_refresh_tokens_family_id_refresh_families",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"], schema=SCHEMA)
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"], schema=SCHEMA)
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=True),
        _timestamp("created_at", default_now=True),
        _timestamp("retired_at", nullable=True),
        _timestamp("expire_at", nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("signing_keys", schema=SCHEMA)
    op.drop_index("ix_refresh_tokens_expires_at", "refresh_tokens", schema=SCHEMA)
    op.drop_index("ix_refresh_tokens_family_id", "refresh_tokens", schema=SCHEMA)
    op.drop_table("refresh_tokens", schema=SCHEMA)
    op.drop_index("ix_refresh_families_user_id", "refresh_families", schema=SCHEMA)
    op.drop_table("refresh_families", schema=SCHEMA)
    op.drop_table("service_accounts", schema=SCHEMA)
    op.drop_table("users", schema=SCHEMA)
