"""The call store: calls, their events (the durable work queue of the dispatcher),
the variables collected along the call, and every outbound request made for it.

Work is leased per call, not per event: the worker holding a call's lease runs its
events one after the other in occurrence order, so no two events of one call are ever
processed at once, whatever the number of workers and processes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base
from callbridge.kit.time import utcnow

# BigInteger ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

EVENT_TYPES = ("incoming", "queue", "answer", "disconnect", "outgoing")
# pending → processing → done; "failed" when processing was abandoned (see the dispatcher).
EVENT_STATUSES = ("pending", "processing", "done", "failed")
UNFINISHED_EVENT_STATUSES = ("pending", "processing")
# A call whose work is over and at least one of whose requests failed ("with errors"),
# as literal SQL: the partial index below is used only when a query repeats its WHERE.
HAS_ERRORS = "error_count > 0"
FAILED_CALL = f"due_at IS NULL AND {HAS_ERRORS}"


class Call(Base):
    __tablename__ = "call"
    __table_args__ = (
        Index("ix_call_due", "due_at", "lease_expires_at"),
        # Counting the calls with errors reads only those, from the index alone (the
        # dashboard, the calls page). due_at first: SQLite then prefers it to ix_call_due.
        Index(
            "ix_call_failed",
            "due_at",
            "started_at",
            "error_count",
            sqlite_where=text(HAS_ERRORS),
            postgresql_where=text(HAS_ERRORS),
        ),
    )

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
    last_event: Mapped[str | None] = mapped_column(String(20))
    # Bumped by every stored event: a worker releases a call only if no event arrived
    # since it last looked (compare-and-set), so no event is ever left behind.
    event_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    # When the earliest unfinished event is due; NULL when the call has no work.
    due_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallEvent(Base):
    """One delivery from the PBX. Stored before the PBX is answered; the dispatcher runs
    each call's events in (occurred_at, id) order."""

    __tablename__ = "call_event"
    __table_args__ = (
        Index("ix_call_event_call_order", "call_pk", "occurred_at", "id"),
        Index("ix_call_event_parked", "park_key", "parked_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"))
    # "id:<event_id>", or "at:<call_id>|<event>|<occurred_at>" when only occurred_at
    # identifies the event; NULL when nothing does (every delivery is a new event).
    dedupe_key: Mapped[str | None] = mapped_column(String(500), unique=True)
    event_id: Mapped[str | None] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Not before: events with an explicit occurred_at wait out the reorder window.
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    agent_id: Mapped[str | None] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    # The worker that last took it (for the timeline and for diagnosing crashes).
    worker: Mapped[str | None] = mapped_column(String(100))
    # Processed after an event of the same call that occurred later (arrived too late).
    late: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    # One entry per rule considered: {"rule_id", "label", "status", "reason"}.
    outcome: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # Parked (DESIGN.md §6 "CRM outages lose no work"): the CRM did not process one of
    # its requests. The event stays pending (attempts not spent) and waits for the
    # circuit ``park_key`` (see models.circuit) to close; ``parked_at`` is when it first
    # waited, ``resumed_at`` when it ran again. ``park_key`` is cleared when it finishes.
    park_key: Mapped[str | None] = mapped_column(String(300))
    parked_at: Mapped[datetime | None]
    resumed_at: Mapped[datetime | None]


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
    # What the rule was when it ran (its memo or URL), kept if the rule changes later.
    label: Mapped[str] = mapped_column(String(300), default="")
    event: Mapped[str | None] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(default=1)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # IVR only, on an invocation's last execution: the answer's outcome (matched,
    # no_match, request_error, input_invalid); NULL elsewhere (one answer, one row).
    outcome: Mapped[str | None] = mapped_column(String(30))
    duration_ms: Mapped[float | None]
    extracted: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Every exchange on the wire (retries, the repeat after a token refresh).
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Hints for the admin: a pattern that did not match, a greedy capture, binary data.
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # A re-run (one execution, a call's failed ones, a rule's in a time range) is an
    # execution of its own that names the execution it repeats.
    rerun_of: Mapped[int | None] = mapped_column(BigId, index=True)
