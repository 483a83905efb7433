"""Call-action rules: what to send to the CRM when a call event of a given type arrives."""

from __future__ import annotations

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin

AUTH_TYPES = ("none", "basic", "bearer", "oauth")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class CallAction(TimestampMixin, Base):
    __tablename__ = "call_action"
    __table_args__ = (
        Index("ix_call_action_event_order", "event", "execution_order", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(20))
    execution_order: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    condition_code: Mapped[str] = mapped_column(Text, default="")
    condition_pattern: Mapped[str] = mapped_column(Text, default="")
    auth_type: Mapped[str] = mapped_column(String(20), default="none")
    # No foreign key: an account deleted under a rule makes that rule fail with a clear
    # execution error instead of silently changing the rule.
    oauth_account_id: Mapped[int | None]
    basic_username: Mapped[str] = mapped_column(String(300), default="")
    basic_password_encrypted: Mapped[str | None] = mapped_column(Text)
    bearer_token_encrypted: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10), default="GET")
    headers: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    timeout_seconds: Mapped[int] = mapped_column(default=10)
    extract_pattern: Mapped[str] = mapped_column(Text, default="")
    # "NAME = $.json.path" lines: JSONPath extractions beside (or instead of) the pattern.
    json_extractions: Mapped[str] = mapped_column(Text, default="")
    # POST (and PATCH to a non-record URL) is retried only when the admin opts in.
    retry_non_idempotent: Mapped[bool] = mapped_column(default=False)
    stop_on_failure: Mapped[bool] = mapped_column(default=False)
    memo: Mapped[str] = mapped_column(Text, default="")
