"""never reused ids: SQLite AUTOINCREMENT on the tables whose ids are referenced

Without AUTOINCREMENT, SQLite gives a new row the highest id + 1, so deleting the newest
OAuth account and creating another handed the deleted account's id to the new one, and a
rule still naming the deleted account ran with the new account's token. The tables are
rebuilt with their rows (batch mode, foreign keys are off while migrating: see env.py);
each table's sequence then starts above its highest id and above every id that still
refers to it (a rule's account, an execution's rule), so a dangling reference is never
adopted by a new row. PostgreSQL sequences never go back: nothing to do there.

Revision ID: 94fe0b7d47f0
Revises: 5b7d2e91c4a0
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "94fe0b7d47f0"
down_revision: str | None = "5b7d2e91c4a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("user", "api_token", "oauth_account", "call_action", "ivr", "ivr_response", "ivr_step")

# Ids that refer to a table without a foreign key: (table, SELECT of the referring ids).
REFERENCES = {
    "oauth_account": (
        "SELECT oauth_account_id FROM call_action",
        "SELECT oauth_account_id FROM ivr",
        "SELECT oauth_account_id FROM ivr_step",
    ),
    "call_action": ("SELECT rule_id FROM execution WHERE source = 'call_action'",),
    "ivr": ("SELECT rule_id FROM execution WHERE source = 'ivr'",),
}


def _rebuild(autoincrement: bool) -> None:
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _rebuild(True)
    for table in TABLES:
        # Table names and queries are the constants above.
        sources = (f'SELECT id AS ref FROM "{table}"', *REFERENCES.get(table, ()))  # noqa: S608
        union = " UNION ALL ".join(sources)
        highest = bind.execute(sa.text(f"SELECT max(ref) FROM ({union})")).scalar()  # noqa: S608
        if highest is None:
            continue
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :name"), {"name": table})
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
            {"name": table, "seq": highest},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild(False)
