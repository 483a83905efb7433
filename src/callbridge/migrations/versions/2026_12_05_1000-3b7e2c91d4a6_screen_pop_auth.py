"""screen-pop auth: a custom lookup's server accesses authenticate like any request

Revision ID: 3b7e2c91d4a6
Revises: c81f2d4a6b07
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b7e2c91d4a6"
down_revision: str | None = "c81f2d4a6b07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("screen_pop_profile") as batch:
        batch.add_column(
            sa.Column("auth_type", sa.String(length=20), nullable=False, server_default="none")
        )
        batch.add_column(sa.Column("oauth_account_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("basic_username", sa.String(length=300), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("basic_password_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("bearer_token_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("screen_pop_profile") as batch:
        batch.drop_column("bearer_token_encrypted")
        batch.drop_column("basic_password_encrypted")
        batch.drop_column("basic_username")
        batch.drop_column("oauth_account_id")
        batch.drop_column("auth_type")
