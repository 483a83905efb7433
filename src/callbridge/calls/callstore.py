"""The call store's one write path: the interface through which every write and claim of
calls, their events, variables and executions goes, with one driver per database.

- ``pg_store.PgCallStore`` (PostgreSQL): prepared asyncpg statements on small pools of
  its own, each committing on its own — one round trip per operation;
- ``sqlite_store.SqliteCallStore`` (SQLite): one ``sqlite3`` connection on a thread of
  its own, each operation one thread hop and one transaction.

Both are reached through ``calls.store.call_store(runtime)``. The ORM reads these
tables (pages, API, reports) and never writes them. The SQL both drivers run is here;
what only one of them runs is in its module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

NOTIFY_CHANNEL = "callbridge_call_events"
CALL_DETAILS = ("unique_id", "tel", "tel_name", "called", "called_name", "direction", "queue")
# The columns of an execution record (``calls.store.execution_values``), in order.
EXECUTION_COLUMNS = (
    "call_pk", "event_pk", "source", "rule_id", "label", "event", "attempt", "request",
    "response", "duration_ms", "extracted", "error", "attempts", "notes", "at", "outcome",
    "rerun_of",
)  # fmt: skip
EXECUTION_JSON = ("request", "response", "extracted", "error", "attempts", "notes")

# ---- statements of both drivers (``:name`` parameters; PostgreSQL's are numbered) -------

# A call that does not exist yet is created without events (an IVR invocation, notes).
ENSURE_CALL = """
INSERT INTO call (call_id, unique_id, tel, tel_name, called, called_name, direction, queue,
                  event_count, error_count, started_at, created_at, updated_at)
VALUES (:call_id, :unique_id, :tel, :tel_name, :called, :called_name, :direction, :queue,
        0, 0, :now, :now, :now)
ON CONFLICT (call_id) DO NOTHING
"""
CALL_PK = "SELECT id FROM call WHERE call_id = :call_id"
FIND_EVENT = "SELECT id, call_pk FROM call_event WHERE dedupe_key = :dedupe_key"
CLAIM_ONE = """
UPDATE call SET lease_owner = :owner, lease_expires_at = :expires
WHERE id = :call_pk AND (lease_expires_at IS NULL OR lease_expires_at < :now)
"""
# An event is "late" when a later event of its call has already been processed; the one
# expression every statement that starts an event uses.
LATE = """EXISTS (
        SELECT 1 FROM call_event o
        WHERE o.call_pk = call_event.call_pk AND o.status = 'done'
          AND (o.occurred_at > call_event.occurred_at
               OR (o.occurred_at = call_event.occurred_at AND o.id > call_event.id))
    )"""
_START_TEMPLATE = """
UPDATE call_event SET
    status = 'processing', attempts = attempts + 1, worker = :owner, started_at = :now,
    late = {late}
WHERE id = :event_pk
"""
START = _START_TEMPLATE.format(late=LATE)
# A parked event that finishes has resumed: it stops counting as parked.
FINISH = """
UPDATE call_event SET status = :status, outcome = :outcome, error = :error,
                      processed_at = :now, park_key = NULL,
                      resumed_at = CASE WHEN park_key IS NULL THEN resumed_at ELSE :now END
WHERE id = :event_pk
"""
# Compare-and-set: an event stored since the worker read ``seen`` bumped the counter.
RELEASE = """
UPDATE call SET due_at = :next_due, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :call_pk AND lease_owner = :owner AND event_count = :seen
"""
# Parked (DESIGN.md §6): the event waits for its circuit, its attempt given back; the
# call is handed back with ``RELEASE`` until ``:next_due``.
PARK = """
UPDATE call_event SET status = 'pending', attempts = attempts - 1, worker = NULL,
                      due_at = :next_due, park_key = :key,
                      parked_at = COALESCE(parked_at, :now), resumed_at = NULL,
                      outcome = :outcome, error = :error
WHERE id = :event_pk
"""
EXECUTED = (
    "SELECT rule_id FROM execution "
    "WHERE event_pk = :event_pk AND source = :source AND rule_id IS NOT NULL"
)
STATUS = "SELECT status FROM call_event WHERE id = :event_pk"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What templates read from a call."""

    id: int
    call_id: str
    unique_id: str | None
    tel: str | None
    tel_name: str | None
    called: str | None
    called_name: str | None
    direction: str | None
    queue: str | None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """The fields of an unfinished event the worker needs."""

    id: int
    event: str
    event_id: str | None
    occurred_at: datetime
    due_at: datetime
    attempts: int
    payload: dict[str, Any]
    outcome: list[dict[str, Any]] | None
    # When the event was parked first (DESIGN.md §6), None when it never was.
    parked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextEvent:
    """What the lease holder needs to decide its next step for one call."""

    event_count: int
    lease_owner: str | None
    event: PendingEvent | None
    call: CallInfo
    # The call's variables (read with the next event, when there is one).
    variables: dict[str, str] = field(default_factory=dict)
    # How many unfinished events the call has (``event`` is the earliest of them).
    unfinished: int = 0
    # ``event`` was marked as being processed by the same operation (see ``take``).
    started: bool = False


def _as_is(value: Any) -> Any:
    return value


def next_event_from_row(
    call_pk: int, row: Any, *, read_time: Callable[[Any], Any] = _as_is
) -> NextEvent:
    """A row of a driver's ``take`` (the event's columns, the call's, ``unfinished``,
    ``started`` and the call's ``variables`` as JSON); ``read_time`` turns the driver's
    timestamps into aware datetimes."""
    event = None
    if row["id"] is not None:
        event = PendingEvent(
            int(row["id"]),
            row["event"],
            row["event_id"],
            read_time(row["occurred_at"]),
            read_time(row["due_at"]),
            int(row["attempts"]),
            json.loads(row["payload"]) if row["payload"] else {},
            json.loads(row["outcome"]) if row["outcome"] is not None else None,
            read_time(row["parked_at"]),
        )
    call = CallInfo(
        call_pk,
        row["call_id"],
        row["unique_id"],
        row["tel"],
        row["tel_name"],
        row["called"],
        row["called_name"],
        row["direction"],
        row["queue"],
    )
    return NextEvent(
        int(row["event_count"]),
        row["lease_owner"],
        event,
        call,
        json.loads(row["variables"]) if row["variables"] else {},
        unfinished=int(row["unfinished"] or 0),
        started=bool(row["started"]),
    )


def db_time(value: datetime | None) -> str | None:
    """A timestamp as naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``): what ``UTCDateTime``
    stores on SQLite, and how the batch documents carry times on both databases."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def from_db_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class CallStore(Protocol):
    """Every write and claim of the call tables. Each operation commits on its own (the
    writes are durable when it returns); none joins the caller's ORM session."""

    # ---- ingest (``calls.service.store_event``) -------------------------------------
    async def store_event(self, values: Mapping[str, Any]) -> tuple[int, int, bool] | None:
        """Create or update the call and add the event: ``(call_pk, event_pk,
        duplicate)``, or None when a concurrent request stored the same event (by its
        dedupe key) first. PostgreSQL also notifies listening workers."""

    async def find_event(self, dedupe_key: str) -> tuple[int, int] | None:
        """``(event_pk, call_pk)`` of the event stored with ``dedupe_key``."""

    # ---- variables and executions (``calls.store``) ---------------------------------
    async def ensure_call(self, call_id: str, details: Mapping[str, str | None]) -> int:
        """The call's primary key, creating it without events when it is new."""

    async def record_step(
        self, execution: Mapping[str, Any], variables: Mapping[str, str], source: str
    ) -> int:
        """Insert the execution (``store.execution_values``), count an error on its call,
        upsert the variables it extracted; its id."""

    async def set_variables(self, call_pk: int, values: Mapping[str, str], source: str) -> None:
        """Store (or overwrite) variables on the call."""

    async def store_batch(self, calls: str, variables: str, executions: str) -> None:
        """Many calls' executions and variables at once (the IVR log writer: JSON
        documents in, see ``ivr.writer.batch_documents``)."""

    # ---- the dispatcher's queue (``calls.dispatcher``) ------------------------------
    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        """Lease up to ``limit`` calls with due work, never one another worker holds;
        with each, its first step when the same statement took it (else None: ``take``)."""

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        """Lease one given call if nobody holds it (``?wait=true``)."""

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        """The call's earliest unfinished event with the call's counter and variables,
        marked as being processed when ``start``, it is due, ours and not abandoned."""

    async def start(self, event_pk: int, owner: str) -> None: ...

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None: ...

    async def finish_and_release(
        self,
        event_pk: int,
        status: str,
        outcome: list[dict[str, Any]] | None,
        error: str | None,
        *,
        call_pk: int,
        owner: str,
        seen_event_count: int,
    ) -> bool:
        """Finish the call's last unfinished event and give the call back unless an
        event arrived since ``seen_event_count`` was read (then only finish)."""

    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool:
        """Give the call back (due again at ``next_due``) if no event arrived since
        ``seen_event_count`` was read."""

    async def park(
        self,
        event_pk: int,
        outcome: list[dict[str, Any]] | None,
        error: str,
        *,
        key: str,
        call_pk: int,
        owner: str,
        seen_event_count: int,
        next_due: datetime,
    ) -> bool:
        """Put the event back to wait for the circuit ``key`` (its attempt given back,
        when it was first parked kept) and release the call until ``next_due``, unless an
        event arrived since ``seen_event_count`` was read (then the call stays ours)."""

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        """Hand calls back without touching their work (shutdown)."""

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int: ...

    async def executed(self, event_pk: int, source: str) -> set[int]:
        """The rules already recorded for the event (resuming it)."""

    async def status(self, event_pk: int) -> str | None: ...

    async def close(self) -> None: ...
