"""The dispatcher: claims calls with due events and runs each call's events in order.

Leases are per call. A worker claims calls whose earliest unfinished event is due
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then runs that call's events one after the
other in (occurred_at, id) order and gives the call back with a compare-and-set on its
event counter. While it holds a call no other worker can take it; a heartbeat renews
the leases; a worker that dies (SIGKILL) stops renewing, its leases expire and any other
worker takes the calls over, resuming each interrupted event after the rules it had
already recorded. Different calls run concurrently, at most ``worker_concurrency`` per
process.

New work wakes the dispatcher at once: an in-process signal from the committing
session, and PostgreSQL LISTEN/NOTIFY across processes. Polling remains as the fallback
(lost notifications, expired leases, events held by the reorder window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from callbridge.calls.callstore import NOTIFY_CHANNEL, CallInfo, CallStore, NextEvent, PendingEvent
from callbridge.calls.store import call_store
from callbridge.circuits.store import Park
from callbridge.db.connections import server_settings
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.dispatcher")
# How long stopping waits for a lease renewal under way before cutting it off.
_RENEWAL_GRACE = 10.0

FINISHED = ("done", "failed")


async def _end_tasks(tasks: set[asyncio.Task[None]], grace: float) -> None:
    """Let ``tasks`` end by themselves within ``grace`` seconds; cancel what is left and
    wait for it."""
    if not tasks:
        return
    pending = set(tasks)
    if grace > 0:
        _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


class Pace:
    """At most ``rate`` passes a second, spaced evenly, in this process."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


@dataclass(frozen=True, slots=True)
class EventJob:
    """One event handed to the processor (the call-action engine), with what it reads:
    the call, its variables, and (when resuming) the rules already recorded."""

    runtime: Runtime
    call_pk: int
    call: CallInfo
    variables: dict[str, str]
    executed_rule_ids: set[int]
    event_pk: int
    event: str
    event_id: str | None
    occurred_at: datetime
    payload: dict[str, Any]
    attempt: int
    worker: str
    # When the event was first parked (it waits for a CRM that did not process it).
    parked_at: datetime | None = None


@dataclass
class EventOutcome:
    """What the processor reports for the event's timeline entry. ``park``: the event
    could not be done because the CRM did not process a request; it waits (parked)
    instead of finishing, and its call with it (DESIGN.md §6)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    park: Park | None = None


Processor = Callable[[EventJob], Awaitable[EventOutcome]]


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CallWorker:
    """Runs the events of calls this process holds the lease of.

    Used by the dispatcher and by ``?wait=true`` ingest; the lease (not this object) is
    what keeps two workers from running the same call.
    """

    def __init__(
        self,
        runtime: Runtime,
        processor: Processor,
        *,
        owner: str | None = None,
        on_future_due: Callable[[datetime], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.processor = processor
        self.owner = owner or new_worker_id()
        self.store: CallStore = call_store(runtime)
        self.lease = timedelta(seconds=runtime.settings.lease_seconds)
        self.max_attempts = runtime.settings.max_event_attempts
        self.on_future_due = on_future_due
        self.held: set[int] = set()
        self.stopping = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._stop_renewing = asyncio.Event()
        self.events_processed = 0
        # Parked events start at most this fast in this process, whatever their due times
        # (a worker that fell behind does not catch up in one burst against a CRM that
        # has just recovered).
        self._resume_pace = Pace(runtime.settings.resume_calls_per_second)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._heartbeat is None:
            self._stop_renewing.clear()
            self._heartbeat = asyncio.create_task(self._renew_leases(), name="lease-heartbeat")

    async def stop(self) -> None:
        self.stopping = True
        if self._heartbeat is not None:
            # Ends between renewals; cancelled only if a renewal hangs (its statement cut
            # off mid-way could leave its connection inside the transaction).
            self._stop_renewing.set()
            await _end_tasks({self._heartbeat}, _RENEWAL_GRACE)
            self._heartbeat = None

    async def release_everything(self) -> None:
        """Hand back every call still leased to this worker (shutdown, after a cancel)."""
        try:
            count = await self.store.drop(self.owner, None)
            if count:
                logger.info("released %d call(s) for other workers", count)
        except Exception:
            logger.exception("could not release leases; they expire in %s", self.lease)

    async def _renew_leases(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.5)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._stop_renewing.wait()
            if self._stop_renewing.is_set():
                return
            if not self.held:
                continue
            try:
                await self.store.renew(self.owner, list(self.held), self.lease)
            except Exception:
                logger.exception("lease renewal failed")

    # ---- one call ------------------------------------------------------------------

    async def run_call(self, call_pk: int, first: NextEvent | None = None) -> None:
        """Run the call's due events in order, then give the call back. ``first``: the
        call's first step when the claim already took it.

        Never raises: a database failure leaves the lease to expire, and the call to be
        taken again then.
        """
        self.held.add(call_pk)
        try:
            await self._run_call(call_pk, first)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "call %s: processing interrupted; retried when the lease expires", call_pk
            )
        finally:
            self.held.discard(call_pk)

    async def _run_call(self, call_pk: int, first: NextEvent | None) -> None:
        store = self.store
        step: NextEvent | None = first
        while True:
            # The next event, already marked as being processed when it is due and ours.
            if first is not None:
                first = None
            else:
                step = await store.take(
                    call_pk, self.owner, start=not self.stopping, max_attempts=self.max_attempts
                )
            if step is None or step.lease_owner != self.owner:
                return  # the call is gone, or the lease was lost to another worker
            event = step.event
            if self.stopping and event is not None and not step.started:
                await store.drop(self.owner, [call_pk])
                return
            if event is None or (not step.started and event.due_at > utcnow()):
                next_due = event.due_at if event is not None else None
                if not await store.release(call_pk, self.owner, step.event_count, next_due):
                    continue  # an event arrived meanwhile: look again
                if next_due is not None and self.on_future_due is not None:
                    self.on_future_due(next_due)
                return
            if event.attempts >= self.max_attempts:
                logger.error("event %s abandoned after %s attempts", event.id, event.attempts)
                await store.finish(
                    event.id,
                    "failed",
                    event.outcome,
                    f"abandoned after {event.attempts} interrupted attempts",
                )
                continue
            if not step.started:  # became due between the statement and now
                await store.start(event.id, self.owner)
            if event.parked_at is not None:
                await self._resume_pace.wait()
            resumed = event.attempts or event.parked_at is not None
            executed = await store.executed(event.id, "call_action") if resumed else set()
            status, items, error, park = await self._run_event(
                step.call, event, step.variables, executed
            )
            self.events_processed += 1
            if park is not None:
                if await store.park(
                    event.id,
                    items,
                    f"parked: {park.reason}",
                    key=park.key,
                    call_pk=call_pk,
                    owner=self.owner,
                    seen_event_count=step.event_count,
                    next_due=park.due_at,
                ):
                    if self.on_future_due is not None:
                        self.on_future_due(park.due_at)
                    return
                continue  # an event arrived meanwhile: the call stays ours, look again
            if step.unfinished == 1:
                # The call's only unfinished event: finish it and hand the call back in
                # one step, unless an event arrived meanwhile (then look again).
                if await store.finish_and_release(
                    event.id,
                    status,
                    items,
                    error,
                    call_pk=call_pk,
                    owner=self.owner,
                    seen_event_count=step.event_count,
                ):
                    return
            else:
                await store.finish(event.id, status, items, error)

    async def _run_event(
        self,
        call: CallInfo,
        event: PendingEvent,
        variables: dict[str, str],
        executed: set[int],
    ) -> tuple[str, list[dict[str, Any]] | None, str | None, Park | None]:
        job = EventJob(
            runtime=self.runtime,
            call_pk=call.id,
            call=call,
            variables=variables,
            executed_rule_ids=executed,
            event_pk=event.id,
            event=event.event,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            payload=dict(event.payload),
            attempt=event.attempts + 1,
            worker=self.owner,
            parked_at=event.parked_at,
        )
        try:
            outcome = await self.processor(job)
        except asyncio.CancelledError:
            raise  # shutdown: the event stays "processing" and is resumed elsewhere
        except Exception as exc:
            logger.exception("event %s failed", event.id)
            return "failed", [], f"{type(exc).__name__}: {exc}", None
        return "done", outcome.items, outcome.error, outcome.park

    # ---- ?wait=true ------------------------------------------------------------------

    async def process_now(self, call_pk: int, event_pk: int, wait_seconds: float) -> str | None:
        """Run the call here and now if nobody holds it, else wait for whoever does;
        the event's final status, or None if it is not finished within ``wait_seconds``."""
        if await self.store.claim_one(call_pk, self.owner, self.lease):
            await self.run_call(call_pk)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        delay = 0.005
        while True:
            status = await self.store.status(event_pk)
            if status in FINISHED or status is None:
                return status
            if loop.time() >= deadline:
                return None
            # Another worker (maybe another process) holds the call: check back shortly.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


class Dispatcher:
    """Claims due calls and runs them with a :class:`CallWorker`, concurrency-bounded."""

    def __init__(self, runtime: Runtime, processor: Processor, *, owner: str | None = None):
        settings = runtime.settings
        self.runtime = runtime
        self.concurrency = settings.worker_concurrency
        self.poll_seconds = settings.dispatch_poll_seconds
        self.worker = CallWorker(runtime, processor, owner=owner, on_future_due=self.wake)
        self._wake = asyncio.Event()
        self._next_due: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stop_claiming = False
        self._listener: asyncio.Task[None] | None = None
        self._saturated = False
        self.claims = 0
        # PostgreSQL: LISTEN is up, so NOTIFY (also sent by this process's own ingest)
        # wakes this dispatcher; no second, in-process wake is needed.
        self.listening = False

    @property
    def owner(self) -> str:
        return self.worker.owner

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def wake(self, due_at: datetime | None = None) -> None:
        """New work: claim now, or at ``due_at`` when that is in the future."""
        future = due_at is not None and due_at > utcnow()
        if future and (self._next_due is None or due_at < self._next_due):  # type: ignore[operator]
            self._next_due = due_at
        self._wake.set()

    async def start(self) -> None:
        self.worker.start()
        self._loop_task = asyncio.create_task(self._claim_loop(), name="dispatcher")
        if self.runtime.database_kind == "postgresql":
            self._listener = asyncio.create_task(self._listen(), name="dispatcher-listen")
        logger.info("dispatcher %s started (concurrency %d)", self.owner, self.concurrency)

    async def stop(self, grace: float = 20.0) -> None:
        """Stop claiming; let in-flight events finish (each call is handed back after its
        current event); after ``grace`` seconds cancel what is left and hand it back."""
        self.worker.stopping = True
        # The claim loop ends at its next turn: cancelled in the middle of a claim, its
        # connection could be left inside the transaction, holding the claimed rows.
        self._stop_claiming = True
        self._wake.set()
        if self._loop_task is not None:
            await _end_tasks({self._loop_task}, grace)
        if self._listener is not None:
            # At once: its own connection, closed by its ``finally``.
            await _end_tasks({self._listener}, 0)
        await _end_tasks(self._tasks, grace)
        await self.worker.stop()
        await self.worker.release_everything()
        logger.info("dispatcher %s stopped", self.owner)

    # ---- claiming --------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stop_claiming:
            self._wake.clear()
            claimed_full = False
            free = self.concurrency - len(self._tasks)
            if free > 0:
                want = min(free, 100)
                try:
                    claimed = await self._claim(want)
                except Exception:
                    logger.exception("claiming work failed; retrying in %ss", self.poll_seconds)
                    claimed = []
                for call_pk, first in claimed:
                    self._spawn(call_pk, first)
                claimed_full = len(claimed) == want
            self._saturated = claimed_full or free <= 0
            if claimed_full and len(self._tasks) < self.concurrency:
                continue  # there may be more
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation
            # that arrives just as the event is set, and stop() would then wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep_time()):
                    await self._wake.wait()

    async def _claim(self, limit: int) -> list[tuple[int, NextEvent | None]]:
        self.claims += 1
        worker = self.worker
        return await worker.store.claim_steps(
            self.owner, limit, worker.lease, max_attempts=worker.max_attempts
        )

    def _sleep_time(self) -> float:
        timeout = self.poll_seconds
        if self._next_due is not None:
            until = (self._next_due - utcnow()).total_seconds()
            if until <= 0:
                self._next_due = None
                return 0
            timeout = min(timeout, until)
        return timeout

    def _spawn(self, call_pk: int, first: NextEvent | None = None) -> None:
        task = asyncio.create_task(self.worker.run_call(call_pk, first), name=f"call-{call_pk}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._saturated:
            self._wake.set()

    # ---- PostgreSQL LISTEN -----------------------------------------------------------

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            due_at: datetime | None = datetime.fromisoformat(payload) if payload else None
        except ValueError:
            due_at = None
        self.wake(due_at)

    async def _listen(self) -> None:
        import asyncpg

        url = make_url(self.runtime.settings.resolved_database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(dsn, server_settings=server_settings())
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                self.listening = True
                self._wake.set()  # anything committed while we were not listening
                await lost.wait()
                self.listening = False
                logger.warning("LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "LISTEN unavailable (%s); polling every %ss",
                    type(exc).__name__,
                    self.poll_seconds,
                )
            finally:
                self.listening = False
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            await asyncio.sleep(self.poll_seconds)
