"""Agent desktop (DESIGN §12): screen-pop profiles and the pops sent to agents' consoles.

``AgentPop`` rows are the SSE messages of one agent, in id order: the id is the SSE
``id:`` a reconnecting console sends back as ``Last-Event-ID`` to get what it missed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin
from callbridge.kit.time import utcnow
from callbridge.models.call import BigId
from callbridge.requests.columns import AuthColumns


class ScreenPopProfile(AuthColumns, TimestampMixin, Base):
    """A profile; a ``custom`` lookup's server accesses authenticate with its own columns
    (``AuthColumns``, the secrets encrypted), the rest of the lookup is ``lookup``."""

    __tablename__ = "screen_pop_profile"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    trigger: Mapped[str] = mapped_column(String(20), default="incoming")
    phone_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer_delay_seconds: Mapped[int] = mapped_column(default=0)
    skip_internal: Mapped[bool] = mapped_column(default=True)
    display_seconds: Mapped[int] = mapped_column(default=30)
    copy_number: Mapped[bool] = mapped_column(default=False)
    anonymous_label: Mapped[str] = mapped_column(String(100), default="")
    strip_prefixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    wrapup_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    lookup: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AgentPop(Base):
    __tablename__ = "agent_pop"
    __table_args__ = (Index("ix_agent_pop_user_id_id", "user_id", "id"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    call_pk: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(10))  # pop | update | end
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
