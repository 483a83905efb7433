from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin

ROLES = ("admin", "supervisor", "agent")


class User(TimestampMixin, Base):
    __tablename__ = "user"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # Links the user to the PBX's agent_id (playback permissions).
    agent_id: Mapped[str | None] = mapped_column(String(100), index=True)
    # The Salesforce user id (005…) of this agent: Task owner of the history link.
    salesforce_user_id: Mapped[str | None] = mapped_column(String(18))
    # The phone extension the agent answers on: screen pops of calls ringing there.
    extension: Mapped[str | None] = mapped_column(String(50), index=True)
    language: Mapped[str | None] = mapped_column(String(10))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
