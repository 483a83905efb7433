"""execution outcome: an IVR answer's outcome on the invocation's last execution

Revision ID: a4d82c6f1e39
Revises: 7c3e9a41b5d2
Create Date: 2026-12-04 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4d82c6f1e39"
down_revision: str | None = "7c3e9a41b5d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=30), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.drop_column("outcome")
