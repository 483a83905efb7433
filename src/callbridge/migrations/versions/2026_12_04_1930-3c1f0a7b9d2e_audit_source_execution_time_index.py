"""audit source, execution time index

Revision ID: 3c1f0a7b9d2e
Revises: 253eb7f24366
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f0a7b9d2e"
down_revision: str | None = "253eb7f24366"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.create_index(batch_op.f("ix_audit_entry_actor"), ["actor"], unique=False)
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_execution_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_at"))
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_actor"))
        batch_op.drop_column("source")
