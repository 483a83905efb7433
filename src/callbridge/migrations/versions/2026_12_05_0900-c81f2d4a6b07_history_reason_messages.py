"""history reasons as catalogue messages: history_row.reason_msg, history_link.backoff_reason_msg

The English reasons already stored are kept (the keyword filter searches them) and, where
they are one of the sentences the history worker wrote, the message they came from is
stored beside them, so old rows too are shown in the reader's language. Any other text
(Salesforce's own message) becomes the parameter of the message that shows it verbatim.

Revision ID: c81f2d4a6b07
Revises: a4d82c6f1e39
Create Date: 2026-12-05 09:00:00.000000
"""

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "c81f2d4a6b07"
down_revision: str | None = "a4d82c6f1e39"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sentences the history worker wrote before its reasons had message ids.
_FIXED = {
    "no record matched; nothing is created (on no match: skip)": "history_no_match.skip",
    "no record matched: linked to the fallback record": "history_no_match.fallback",
    "no record matched: a Task without a related record": "history_no_match.unlinked",
    "no record matched yet; searching again": "history_searching",
    "the record was not saved": "history_record_not_saved",
    "Case: not created": "history_case_not_created",
}
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"(?s)(?P<count>\d+) (?P<object>\S+) records matched: linked to the fallback record"
        ),
        "history_multiple.fallback",
    ),
    (
        re.compile(
            r"(?s)(?P<count>\d+) (?P<object>\S+) records matched: the most recently modified"
        ),
        "history_multiple.first",
    ),
    (
        re.compile(r"(?s)Salesforce answered (?P<count>\d+) results for (?P<records>\d+) records"),
        "history_result_count",
    ),
    (re.compile(r"(?s)search failed: (?P<salesforce>.*)"), "history_search_failed"),
    (re.compile(r"(?s)notes not updated: (?P<salesforce>.*)"), "history_notes_failed"),
    (re.compile(r"(?s)Case: (?P<salesforce>[^;]*)"), "history_case_error"),
]
_WRAPPERS: list[tuple[str, str]] = [
    ("waiting for the OAuth account: ", "history_backoff.auth"),
    ("Salesforce unavailable, retried later: ", "history_backoff.unavailable"),
    ("outcome unknown, checked before resending: ", "history_outcome_unknown"),
]


def _wrapped(text: str) -> dict[str, Any] | None:
    """A back-off sentence around another reason (a failure's own text, kept verbatim)."""
    for prefix, message_id in _WRAPPERS:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            inner = _wrapped(rest) or {"id": "text", "params": {"text": rest}}
            return {"id": message_id, "params": {"reason": inner}}
    return None


def message_of(text: str, *, row: bool) -> dict[str, Any]:
    """The message an old English reason was written from."""
    if text in _FIXED:
        return {"id": _FIXED[text], "params": {}}
    for pattern, message_id in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            params: dict[str, Any] = {
                name: int(value) if name in ("count", "records") else value
                for name, value in match.groupdict().items()
            }
            return {"id": message_id, "params": params}
    wrapped = _wrapped(text)
    if wrapped is not None:
        return wrapped
    if row:
        # A record's error as Salesforce gave it.
        return {"id": "history_salesforce_error", "params": {"salesforce": text}}
    return {"id": "text", "params": {"text": text}}


def _convert(table: str, text_column: str, message_column: str, *, row: bool) -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    target = sa.Table(
        table,
        meta,
        sa.Column("id", sa.BigInteger()),
        sa.Column(text_column, sa.Text()),
        sa.Column(message_column, sa.JSON()),
    )
    texts = [
        value
        for (value,) in bind.execute(
            sa.select(target.c[text_column]).where(target.c[text_column].is_not(None)).distinct()
        )
    ]
    for text in texts:
        bind.execute(
            target.update()
            .where(target.c[text_column] == text)
            .values({message_column: message_of(text, row=row)})
        )


def upgrade() -> None:
    with op.batch_alter_table("history_row") as batch:
        batch.add_column(sa.Column("reason_msg", sa.JSON(), nullable=True))
    with op.batch_alter_table("history_link") as batch:
        batch.add_column(sa.Column("backoff_reason_msg", sa.JSON(), nullable=True))
    _convert("history_row", "reason", "reason_msg", row=True)
    _convert("history_link", "backoff_reason", "backoff_reason_msg", row=False)


def downgrade() -> None:
    with op.batch_alter_table("history_link") as batch:
        batch.drop_column("backoff_reason_msg")
    with op.batch_alter_table("history_row") as batch:
        batch.drop_column("reason_msg")
