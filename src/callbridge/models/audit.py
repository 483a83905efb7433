from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base
from callbridge.kit.time import utcnow


class AuditEntry(Base):
    """Who did what: sign-ins, configuration changes, playbacks, deletions."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # Where the change came from: the client's address ("" from the command line).
    source: Mapped[str] = mapped_column(String(100), default="", server_default="")
