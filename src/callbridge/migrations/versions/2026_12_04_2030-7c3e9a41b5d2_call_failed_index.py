"""call failed index: a partial index of the calls with errors (due_at, started_at)

Revision ID: 7c3e9a41b5d2
Revises: 7c2d4f1a9e31
Create Date: 2026-12-04 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c3e9a41b5d2"
down_revision: str | None = "7c2d4f1a9e31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_ERRORS = "error_count > 0"


def upgrade() -> None:
    op.create_index(
        "ix_call_failed",
        "call",
        ["due_at", "started_at", "error_count"],
        unique=False,
        sqlite_where=sa.text(HAS_ERRORS),
        postgresql_where=sa.text(HAS_ERRORS),
    )


def downgrade() -> None:
    op.drop_index("ix_call_failed", table_name="call")
