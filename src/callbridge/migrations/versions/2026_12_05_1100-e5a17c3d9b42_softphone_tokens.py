"""softphone tokens: a session kind for the Open CTI softphone, and one-time pairing codes

Revision ID: e5a17c3d9b42
Revises: 3b7e2c91d4a6
Create Date: 2026-12-05 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callbridge.db.types

revision: str = "e5a17c3d9b42"
down_revision: str | None = "3b7e2c91d4a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_session") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=20), nullable=False, server_default="browser")
        )
    op.create_table(
        "softphone_pairing_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", callbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_softphone_pairing_code_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_softphone_pairing_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_softphone_pairing_code_code_hash")),
    )
    with op.batch_alter_table("softphone_pairing_code") as batch:
        batch.create_index(batch.f("ix_softphone_pairing_code_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("softphone_pairing_code") as batch:
        batch.drop_index(batch.f("ix_softphone_pairing_code_user_id"))
    op.drop_table("softphone_pairing_code")
    with op.batch_alter_table("user_session") as batch:
        batch.drop_column("kind")
