"""oauth account request limits

Revision ID: 5b7d2e91c4a0
Revises: db0f4178d018
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7d2e91c4a0"
down_revision: str | None = "db0f4178d018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_in_flight", sa.Integer(), nullable=False, server_default="1000")
        )
        batch_op.add_column(
            sa.Column("long_request_limit", sa.Integer(), nullable=False, server_default="25")
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_account", schema=None) as batch_op:
        batch_op.drop_column("long_request_limit")
        batch_op.drop_column("max_in_flight")
