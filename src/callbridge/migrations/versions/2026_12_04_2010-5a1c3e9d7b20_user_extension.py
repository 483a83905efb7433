"""user extension: the phone extension an agent answers on (agent desktop)

Revision ID: 5a1c3e9d7b20
Revises: 198af8fcade3
Create Date: 2026-12-04 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a1c3e9d7b20"
down_revision: str | None = "198af8fcade3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extension", sa.String(length=50), nullable=True))
        batch_op.create_index(batch_op.f("ix_user_extension"), ["extension"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_extension"))
        batch_op.drop_column("extension")
