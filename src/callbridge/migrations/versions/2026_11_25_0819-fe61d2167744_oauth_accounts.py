"""oauth accounts: OAuth accounts and pending browser authorisations

Revision ID: fe61d2167744
Revises: ed5336559679
Create Date: 2026-11-25 08:19:45.203218
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callbridge.db.types

revision: str = "fe61d2167744"
down_revision: str | None = "ed5336559679"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("grant_type", sa.String(length=30), nullable=False),
        sa.Column("login_url", sa.String(length=500), nullable=True),
        sa.Column("authorize_url", sa.String(length=1000), nullable=True),
        sa.Column("token_url", sa.String(length=1000), nullable=True),
        sa.Column("revoke_url", sa.String(length=1000), nullable=True),
        sa.Column("base_url", sa.String(length=1000), nullable=True),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("client_secret_enc", sa.Text(), nullable=True),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("username", sa.String(length=300), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("private_key_enc", sa.Text(), nullable=True),
        sa.Column("use_pkce", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=False),
        sa.Column("access_token_enc", sa.Text(), nullable=True),
        sa.Column("refresh_token_enc", sa.Text(), nullable=True),
        sa.Column("token_type", sa.String(length=40), nullable=False),
        sa.Column("instance_url", sa.String(length=1000), nullable=True),
        sa.Column("identity_url", sa.String(length=1000), nullable=True),
        sa.Column("issued_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connected_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("api_usage_used", sa.Integer(), nullable=True),
        sa.Column("api_usage_allowed", sa.Integer(), nullable=True),
        sa.Column("api_usage_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_account")),
        sa.UniqueConstraint("name", name=op.f("uq_oauth_account_name")),
    )
    op.create_table(
        "oauth_authorization",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("redirect_uri", sa.String(length=1000), nullable=False),
        sa.Column("code_verifier_enc", sa.Text(), nullable=True),
        sa.Column("created_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["oauth_account.id"],
            name=op.f("fk_oauth_authorization_account_id_oauth_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_oauth_authorization_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorization")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_authorization_state_hash")),
    )
    with op.batch_alter_table("oauth_authorization", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_authorization_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_authorization", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_account_id"))

    op.drop_table("oauth_authorization")
    op.drop_table("oauth_account")
