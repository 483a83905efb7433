"""screen-pop profiles and agent pops (agent desktop)

Revision ID: 7c2d4f1a9e31
Revises: 5a1c3e9d7b20
Create Date: 2026-12-04 20:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callbridge.db.types

revision: str = "7c2d4f1a9e31"
down_revision: str | None = "5a1c3e9d7b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "screen_pop_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("phone_numbers", sa.JSON(), nullable=False),
        sa.Column("answer_delay_seconds", sa.Integer(), nullable=False),
        sa.Column("skip_internal", sa.Boolean(), nullable=False),
        sa.Column("display_seconds", sa.Integer(), nullable=False),
        sa.Column("copy_number", sa.Boolean(), nullable=False),
        sa.Column("anonymous_label", sa.String(length=100), nullable=False),
        sa.Column("strip_prefixes", sa.JSON(), nullable=False),
        sa.Column("wrapup_reasons", sa.JSON(), nullable=False),
        sa.Column("lookup", sa.JSON(), nullable=True),
        sa.Column("created_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screen_pop_profile")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "agent_pop",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("call_pk", BigId, nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_agent_pop_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_pop")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("agent_pop", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_pop_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_agent_pop_user_id_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_pop", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_pop_user_id_id")
        batch_op.drop_index(batch_op.f("ix_agent_pop_created_at"))
    op.drop_table("agent_pop")
    op.drop_table("screen_pop_profile")
