"""ops rollup: per-minute totals of executions and calls for the dashboard

Revision ID: 198af8fcade3
Revises: 3c1f0a7b9d2e
Create Date: 2026-12-04 19:38:09.877745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "198af8fcade3"
down_revision: str | None = "3c1f0a7b9d2e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_rollup",
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("h0", sa.Integer(), nullable=False),
        sa.Column("h1", sa.Integer(), nullable=False),
        sa.Column("h2", sa.Integer(), nullable=False),
        sa.Column("h3", sa.Integer(), nullable=False),
        sa.Column("h4", sa.Integer(), nullable=False),
        sa.Column("h5", sa.Integer(), nullable=False),
        sa.Column("h6", sa.Integer(), nullable=False),
        sa.Column("h7", sa.Integer(), nullable=False),
        sa.Column("h8", sa.Integer(), nullable=False),
        sa.Column("h9", sa.Integer(), nullable=False),
        sa.Column("h10", sa.Integer(), nullable=False),
        sa.Column("h11", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "kind", "key", name=op.f("pk_ops_rollup")),
    )
    op.create_table(
        "ops_rollup_hour",
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("h0", sa.Integer(), nullable=False),
        sa.Column("h1", sa.Integer(), nullable=False),
        sa.Column("h2", sa.Integer(), nullable=False),
        sa.Column("h3", sa.Integer(), nullable=False),
        sa.Column("h4", sa.Integer(), nullable=False),
        sa.Column("h5", sa.Integer(), nullable=False),
        sa.Column("h6", sa.Integer(), nullable=False),
        sa.Column("h7", sa.Integer(), nullable=False),
        sa.Column("h8", sa.Integer(), nullable=False),
        sa.Column("h9", sa.Integer(), nullable=False),
        sa.Column("h10", sa.Integer(), nullable=False),
        sa.Column("h11", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "kind", "key", name=op.f("pk_ops_rollup_hour")),
    )
    op.create_table(
        "ops_rollup_state",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("until_minute", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ops_rollup_state")),
    )


def downgrade() -> None:
    op.drop_table("ops_rollup_state")
    op.drop_table("ops_rollup_hour")
    op.drop_table("ops_rollup")
