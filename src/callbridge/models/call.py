"""The call store: calls, their events (the durable work queue of the dispatcher),
the variables collected along the call, and every outbound request made for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base
from callbridge.kit.time import utcnow

# BigInteger ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

EVENT_TYPES = ("incoming", "queue", "answer", "disconnect", "outgoing")
EVENT_STATUSES = ("pending", "processing", "done", "failed")


class Call(Base):
    __tablename__ = "call"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200), unique=True)
    unique_id: Mapped[str | None] = mapped_column(String(200), index=True)
    tel: Mapped[str | None] = mapped_column(String(100), index=True)
    tel_name: Mapped[str | None] = mapped_column(String(300))
    called: Mapped[str | None] = mapped_column(String(100))
    called_name: Mapped[str | None] = mapped_column(String(300))
    direction: Mapped[str | None] = mapped_column(String(20))
    queue: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallEvent(Base):
    """One delivery from the PBX. Stored before the PBX is answered; the dispatcher
    claims pending rows with a lease and processes each call's events in order."""

    __tablename__ = "call_event"
    __table_args__ = (
        Index("ix_call_event_due", "status", "lease_expires_at"),
        Index("ix_call_event_call_order", "call_pk", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"))
    # event_id, or call_id|event|occurred_at when only occurred_at identifies the event.
    dedupe_key: Mapped[str | None] = mapped_column(String(500), unique=True)
    event_id: Mapped[str | None] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    agent_id: Mapped[str | None] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class CallVariable(Base):
    """A value collected during the call (``RESPONSE_<NAME>`` from rules and IVRs)."""

    __tablename__ = "call_variable"
    __table_args__ = (UniqueConstraint("call_pk", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Execution(Base):
    """One outbound request made for a call (a call-action rule or an IVR step): what
    was sent (secrets redacted), what came back (capped), what was extracted."""

    __tablename__ = "execution"
    __table_args__ = (Index("ix_execution_call", "call_pk", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"))
    event_pk: Mapped[int | None] = mapped_column(ForeignKey("call_event.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))  # "call_action" | "ivr"
    rule_id: Mapped[int | None]
    event: Mapped[str | None] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(default=1)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duration_ms: Mapped[float | None]
    extracted: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)
