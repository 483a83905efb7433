"""The circuits and the parked work in the database (DESIGN.md §6, "CRM outages lose no
work"); every process reads and changes them here, so the database is what coordinates
them.

- A circuit is one ``crm_circuit`` row. Opening is an upsert; the probe is claimed by
  moving ``probe_at`` forward with one conditional UPDATE — on PostgreSQL the row lock
  makes concurrent claimers wait and re-check the condition, on SQLite the database's
  one writer does — so one process, not one per process, sends each probe.
- A parked event (the call store's ``park``, from the dispatcher) stays ``pending`` with
  ``park_key`` set, its attempt given back, and waits until its call is due again: soon
  (backing off) while its circuit is closed, else when parking ends
  (``CALLBRIDGE_PARK_HOURS``) unless a probe or the recovery makes it due earlier.
- Recovery closes the circuit and gives the parked calls due times one after the other,
  oldest parked first, ramping up to ``CALLBRIDGE_RESUME_CALLS_PER_SECOND``; the
  dispatcher then runs them in each call's order. Each touched call's event counter is
  bumped, so a worker holding one at that moment looks again instead of overwriting its
  due time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from callbridge.calls.callstore import NOTIFY_CHANNEL
from callbridge.calls.writes import read_connection, write_connection
from callbridge.db.types import UTCDateTime
from callbridge.kit.time import utcnow
from callbridge.outbound.circuits import OpenCircuit
from callbridge.runtime import Runtime

# One probe per circuit per this many seconds, across all processes (DESIGN.md §6).
PROBE_SECONDS = 1.0
# The next probe may be claimed this long after one was: a little under the interval, so
# that ticks of the probe loops (one a second per process) that come a few milliseconds
# early still take it.
PROBE_SPACING = timedelta(seconds=PROBE_SECONDS * 0.9)
# Before its circuit opens a parked call is tried again after half the time it has been
# parked, within these bounds.
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# Resumption starts at this share of the configured rate and reaches it after the ramp.
RAMP_START = 0.1
RAMP_SECONDS = 10.0
# A call parked with its circuit closed waits at most RETRY_MAX_SECONDS; one due later
# than this waits for a circuit that is no longer open (see ``resume_stranded``).
STRANDED_AFTER = timedelta(hours=1)


def _sql(statement: str, *times: str) -> Any:
    return text(statement).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in times))


_OPEN = _sql(
    """
INSERT INTO crm_circuit (key, state, opened_at, closed_at, last_error, failures, probe_at,
                         probe_event_pk, probes, updated_at)
VALUES (:key, 'open', :now, NULL, :error, 1, :probe_at, NULL, 0, :now)
ON CONFLICT (key) DO UPDATE SET
    opened_at = CASE WHEN crm_circuit.state = 'open' THEN crm_circuit.opened_at
                     ELSE excluded.opened_at END,
    probes = CASE WHEN crm_circuit.state = 'open' THEN crm_circuit.probes ELSE 0 END,
    failures = CASE WHEN crm_circuit.state = 'open' THEN crm_circuit.failures + 1
                    ELSE 1 END,
    probe_at = CASE WHEN crm_circuit.state = 'open' THEN crm_circuit.probe_at
                    ELSE excluded.probe_at END,
    state = 'open', closed_at = NULL, last_error = excluded.last_error,
    updated_at = excluded.updated_at
RETURNING opened_at
""",
    "now",
    "probe_at",
).columns(opened_at=UTCDateTime())
_OPEN_CIRCUITS = text(
    "SELECT key, opened_at, last_error FROM crm_circuit WHERE state = 'open'"
).columns(opened_at=UTCDateTime())
_IS_PROBE = text(
    "SELECT 1 FROM crm_circuit WHERE key = :key AND state = 'open' AND probe_event_pk = :event_pk"
)
_CLOSE = _sql(
    """
UPDATE crm_circuit SET state = 'closed', closed_at = :now, probe_event_pk = NULL,
                       probes = probes + 1, updated_at = :now
WHERE key = :key AND state = 'open'
""",
    "now",
)
_PROBE_FAILED = _sql(
    """
UPDATE crm_circuit SET last_error = :error, failures = failures + 1, probes = probes + 1,
                       probe_event_pk = CASE WHEN probe_event_pk = :event_pk THEN NULL
                                             ELSE probe_event_pk END,
                       updated_at = :now
WHERE key = :key AND state = 'open'
""",
    "now",
)
_CLAIM_PROBE = _sql(
    """
UPDATE crm_circuit SET probe_at = :next, probe_event_pk = NULL, updated_at = :now
WHERE key = :key AND state = 'open' AND probe_at <= :now
""",
    "now",
    "next",
)
_OLDEST_PARKED = text(
    "SELECT id, call_pk FROM call_event WHERE park_key = :key AND status = 'pending' "
    "ORDER BY parked_at, id LIMIT 1"
)
_PARKED = _sql(
    "SELECT id, call_pk FROM call_event WHERE park_key = :key AND status = 'pending' "
    "AND due_at > :later ORDER BY parked_at, id",
    "later",
)
_STATE = text("SELECT state FROM crm_circuit WHERE key = :key")
_CHOOSE_PROBE = text("UPDATE crm_circuit SET probe_event_pk = :event_pk WHERE key = :key")
_EVENT_DUE = _sql("UPDATE call_event SET due_at = :due WHERE id = :event_pk", "due")
# Earlier only: a call due sooner (an event that just arrived) stays so.
_CALL_DUE = _sql(
    """
UPDATE call SET due_at = CASE WHEN due_at IS NULL OR due_at > :due THEN :due ELSE due_at END,
                event_count = event_count + 1
WHERE id = :call_pk
""",
    "due",
)
_NOTIFY = text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', :due)")
PARKED_COUNTS = text(
    "SELECT park_key, count(*) FROM call_event "
    "WHERE park_key IS NOT NULL AND status = 'pending' GROUP BY park_key"
)


@dataclass(frozen=True, slots=True)
class Park:
    """Why and until when an event waits (the rule engine's verdict)."""

    key: str
    reason: str
    due_at: datetime


def retry_due(parked_at: datetime | None, now: datetime) -> datetime:
    """When a call parked while its circuit is closed is tried again: after half the
    time it has waited so far, at least a second, at most a minute."""
    waited = (now - parked_at).total_seconds() if parked_at is not None else 0.0
    return now + timedelta(seconds=min(RETRY_MAX_SECONDS, max(RETRY_MIN_SECONDS, waited / 2)))


def resume_offsets(count: int, rate: float) -> list[float]:
    """Seconds from now at which each of ``count`` parked calls resumes: the rate grows
    linearly from ``RAMP_START * rate`` to ``rate`` over ``RAMP_SECONDS``, then stays."""
    offsets: list[float] = []
    t = 0.0
    for _ in range(count):
        offsets.append(t)
        current = rate * min(1.0, RAMP_START + (1 - RAMP_START) * t / RAMP_SECONDS)
        t += 1.0 / current
    return offsets


class DatabaseCircuitStore:
    """``outbound.CircuitStore`` on the application's database."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def open_circuits(self) -> dict[str, OpenCircuit]:
        async with read_connection(self.runtime) as connection:
            rows = await connection.execute(_OPEN_CIRCUITS)
            return {key: OpenCircuit(key, at, error) for key, at, error in rows}

    async def open(self, key: str, error: str) -> OpenCircuit:
        now = utcnow()
        async with write_connection(self.runtime) as connection:
            opened_at = await connection.scalar(
                _OPEN,
                {
                    "key": key,
                    "now": now,
                    "error": error,
                    "probe_at": now + timedelta(seconds=PROBE_SECONDS),
                },
            )
        return OpenCircuit(key, opened_at or now, error)

    async def is_probe(self, key: str, event_pk: int) -> bool:
        async with read_connection(self.runtime) as connection:
            found = await connection.scalar(_IS_PROBE, {"key": key, "event_pk": event_pk})
        return found is not None

    async def probe_sent(self, key: str, event_pk: int, *, recovered: bool, error: str) -> None:
        now = utcnow()
        async with write_connection(self.runtime) as connection:
            if not recovered:
                await connection.execute(
                    _PROBE_FAILED, {"key": key, "event_pk": event_pk, "error": error, "now": now}
                )
                return
            closed = await connection.execute(_CLOSE, {"key": key, "now": now})
            if closed.rowcount:
                await self._resume(connection, key, now)

    # ---- the prober's side -------------------------------------------------------------

    async def claim_probe(self, key: str) -> bool:
        """Take the circuit's next probe if it is due and nobody took it: make the
        oldest parked call due now and mark its event as the probe. With nothing parked
        the circuit closes (the next request tells again). True when this process acted."""
        now = utcnow()
        async with write_connection(self.runtime) as connection:
            claimed = await connection.execute(
                _CLAIM_PROBE,
                {"key": key, "now": now, "next": now + PROBE_SPACING},
            )
            if not claimed.rowcount:
                return False
            row = (await connection.execute(_OLDEST_PARKED, {"key": key})).first()
            if row is None:
                await connection.execute(_CLOSE, {"key": key, "now": now})
                return True
            event_pk, call_pk = int(row[0]), int(row[1])
            await connection.execute(_CHOOSE_PROBE, {"key": key, "event_pk": event_pk})
            await self._make_due(connection, [(event_pk, call_pk, now)])
        return True

    async def resume_stranded(self, key: str) -> bool:
        """Resume the calls still waiting for ``key`` until parking ends although the
        circuit is not open (a process that had not seen the recovery yet parked them
        again): True when there were some."""
        now = utcnow()
        async with write_connection(self.runtime) as connection:
            if await connection.scalar(_STATE, {"key": key}) == "open":
                return False
            return await self._resume(connection, key, now, later=now + STRANDED_AFTER)

    async def _resume(
        self, connection: AsyncConnection, key: str, now: datetime, *, later: datetime | None = None
    ) -> bool:
        """Make the calls parked for ``key`` due one after the other, oldest first (only
        those due after ``later`` when given)."""
        since = later if later is not None else datetime.min.replace(tzinfo=UTC)
        rows = (await connection.execute(_PARKED, {"key": key, "later": since})).all()
        offsets = resume_offsets(len(rows), self.runtime.settings.resume_calls_per_second)
        await self._make_due(
            connection,
            [
                (int(event_pk), int(call_pk), now + timedelta(seconds=offset))
                for (event_pk, call_pk), offset in zip(rows, offsets, strict=True)
            ],
        )
        return bool(rows)

    async def _make_due(
        self, connection: AsyncConnection, due: Sequence[tuple[int, int, datetime]]
    ) -> None:
        if not due:
            return
        await connection.execute(
            _EVENT_DUE, [{"event_pk": event_pk, "due": at} for event_pk, _c, at in due]
        )
        await connection.execute(
            _CALL_DUE, [{"call_pk": call_pk, "due": at} for _e, call_pk, at in due]
        )
        if connection.dialect.name == "postgresql":
            await connection.execute(_NOTIFY, {"due": due[0][2].isoformat()})


async def parked_counts(runtime: Runtime) -> dict[str, int]:
    async with read_connection(runtime) as connection:
        return {str(key): int(n) for key, n in await connection.execute(PARKED_COUNTS)}
