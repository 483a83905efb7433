"""The ORM columns of a request, as mixins: a feature's table composes the ones it has.
The column definitions are the ones the tables were created with, so composing them
needs no migration."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column


class AuthColumns:
    """A request's own authentication; the secrets are stored encrypted."""

    auth_type: Mapped[str] = mapped_column(String(20), default="none")
    # No foreign key: an account deleted under a request makes it fail with a clear
    # error (an execution error, an IVR's request_error) instead of silently changing it.
    oauth_account_id: Mapped[int | None]
    basic_username: Mapped[str] = mapped_column(String(300), default="")
    basic_password_encrypted: Mapped[str | None] = mapped_column(Text)
    bearer_token_encrypted: Mapped[str | None] = mapped_column(Text)


class TargetColumns:
    """Where and what is sent."""

    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10), default="GET")
    headers: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # /pattern/ with named groups, or "NAME = $.path" lines.
    extract_pattern: Mapped[str] = mapped_column(Text, default="")


class ConditionColumns:
    """Run only when the expanded code matches the pattern (both empty: always)."""

    condition_code: Mapped[str] = mapped_column(Text, default="")
    condition_pattern: Mapped[str] = mapped_column(Text, default="")
