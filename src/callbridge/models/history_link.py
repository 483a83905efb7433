"""Call history link (DESIGN §11, seed 001): every finished call in scope becomes a
Salesforce Task on the customer's record.

``HistoryLink`` is one configuration (連携設定); ``HistoryRow`` is one call of one link
(連携通話履歴), created when the call's ``disconnect`` is processed and synced in batches
by the history worker with leases, like the dispatcher's calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin
from callbridge.kit.time import utcnow
from callbridge.models.call import BigId

LINK_STATUSES = ("enabled", "disabled", "paused")
ON_MULTIPLE = ("fallback", "first", "all")
ON_NO_MATCH = ("fallback", "unlinked", "skip")
ACTIVITIES = ("task", "case_and_task")
LANGUAGES = ("ja", "en")
ROW_STATES = ("held", "waiting", "searching", "synced", "no_match", "failed")
# States the worker takes (when due); the others are final or kept.
DUE_STATES = ("waiting", "searching")


class HistoryLink(TimestampMixin, Base):
    __tablename__ = "history_link"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # No foreign key (as call actions): a deleted account makes the sync say so.
    oauth_account_id: Mapped[int]
    fallback_record: Mapped[str] = mapped_column(String(18), default="")
    api_consent: Mapped[bool] = mapped_column(default=False)
    memo: Mapped[str] = mapped_column(Text, default="")
    on_multiple: Mapped[str] = mapped_column(String(20), default="fallback")
    on_no_match: Mapped[str] = mapped_column(String(20), default="fallback")
    activity: Mapped[str] = mapped_column(String(20), default="task")
    status: Mapped[str] = mapped_column(String(20), default="disabled")
    # [{"api_name", "tab_name", "key_prefix", "priority"}], kept sorted by priority.
    objects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    phone_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    search_retries: Mapped[int] = mapped_column(default=3)
    retry_minutes: Mapped[float] = mapped_column(default=5.0)
    language: Mapped[str] = mapped_column(String(5), default="ja")
    subject_template: Mapped[str] = mapped_column(Text, default="")
    # [{"field", "template", "default", "conditions": [{"variable", "equals", "value"}]}]
    field_mappings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    owner_from_agent: Mapped[bool] = mapped_column(default=False)
    # The whole link waits until then (limits, 5xx, network, re-authorisation).
    backoff_until: Mapped[datetime | None]
    backoff_count: Mapped[int] = mapped_column(default=0)
    # Why, in English, and as a catalogue message ({"id", "params"}) shown in the reader's
    # language (callbridge.history.reasons).
    backoff_reason: Mapped[str | None] = mapped_column(Text)
    backoff_reason_msg: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class HistoryRow(Base):
    """One call of one link: what is written to Salesforce and where it stands."""

    __tablename__ = "history_row"
    __table_args__ = (
        UniqueConstraint("link_id", "call_pk"),
        Index("ix_history_row_due", "link_id", "state", "due_at"),
        Index("ix_history_row_link_ended", "link_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("history_link.id", ondelete="CASCADE"))
    call_pk: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str] = mapped_column(String(200))
    unique_id: Mapped[str | None] = mapped_column(String(200))
    tel: Mapped[str | None] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(20), default="inbound")
    phone_from: Mapped[str | None] = mapped_column(String(100))
    phone_to: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_seconds: Mapped[int] = mapped_column(default=0)
    agent_id_from: Mapped[str | None] = mapped_column(String(100))
    agent_id_to: Mapped[str | None] = mapped_column(String(100))
    naisen_from: Mapped[str | None] = mapped_column(String(100))
    naisen_to: Mapped[str | None] = mapped_column(String(100))
    # The call's template variables at disconnect (subject and field mappings).
    values: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Task.Description: the agent's call notes (DESIGN §12.4, set_call_notes()).
    description: Mapped[str | None] = mapped_column(Text)
    notes_dirty: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default="waiting")
    # Why the row stands where it does: English text (searched by the keyword filter) and
    # the catalogue message ({"id", "params"}) the list shows in the reader's language.
    reason: Mapped[str | None] = mapped_column(Text)
    reason_msg: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    retry_count: Mapped[int] = mapped_column(default=0)
    next_retry_at: Mapped[datetime | None]
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    # The records the Tasks go to, once matched: [{"object", "id", "case_id"?}];
    # an empty list means one Task without WhoId/WhatId (on_no_match "unlinked").
    targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    task_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set (and committed) before Tasks are sent; cleared when the answer is stored. Set
    # when a row is taken: the outcome is unknown, ask Salesforce before creating.
    send_started_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
