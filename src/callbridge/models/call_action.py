"""Call-action rules: what to send to the CRM when a call event of a given type arrives."""

from __future__ import annotations

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin
from callbridge.requests.columns import AuthColumns, ConditionColumns, TargetColumns


class CallAction(AuthColumns, TargetColumns, ConditionColumns, TimestampMixin, Base):
    __tablename__ = "call_action"
    __table_args__ = (
        Index("ix_call_action_event_order", "event", "execution_order", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(20))
    execution_order: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    timeout_seconds: Mapped[int] = mapped_column(default=10)
    # "NAME = $.json.path" lines: JSONPath extractions beside (or instead of) the pattern.
    json_extractions: Mapped[str] = mapped_column(Text, default="")
    # POST (and PATCH to a non-record URL) is retried only when the admin opts in.
    retry_non_idempotent: Mapped[bool] = mapped_column(default=False)
    stop_on_failure: Mapped[bool] = mapped_column(default=False)
    memo: Mapped[str] = mapped_column(Text, default="")
