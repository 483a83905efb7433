"""Store what an invocation did — the call's new variables and one execution per request —
after the PBX has its answer.

The answer never waits on these writes (DESIGN.md §3.3): once the answer has gone the
invoke route hands the invocation to a bounded in-process queue, reduced at once to a
few strings (``PendingInvocation``: its executions as JSON text), so that the hundreds of
objects of its run are freed straight away instead of being carried through the garbage
collector's generations while they wait. One task drains the queue in batches; a batch
is one statement on PostgreSQL and one transaction on SQLite, the database decoding the
JSON (the call store's ``store_batch``). After the first record of a batch the task
lingers (``linger``, 0.2 s) for more, unless a full batch is already waiting or a flush
asks: a transaction per invocation would cost more than the invocation. Nothing is
dropped: when the queue is full the record waits in a small overflow task for room (and
a warning is logged), a failed batch is retried record by record, and shutdown drains
everything queued before the database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callbridge.calls import store
from callbridge.calls.callstore import db_time
from callbridge.ivr.compiler import CompiledIvr
from callbridge.ivr.engine import InvokeInputs, IvrRun, StepRun, outcome_message
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define, stored
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.ivr")

SOURCE = "ivr"
_RETRY_DELAYS = (0.05, 0.5, 2.0, 5.0)


@dataclass(frozen=True)
class InvocationLog:
    """One invocation as the call store keeps it."""

    call_id: str
    tel: str | None
    called: str | None
    tel_name: str | None
    ivr_id: int
    ivr_key: str
    ivr_name: str
    run: IvrRun
    at: datetime

    @classmethod
    def of(cls, inputs: InvokeInputs, ivr: CompiledIvr, run: IvrRun) -> InvocationLog:
        return cls(
            inputs.call_id, inputs.tel, inputs.called, inputs.tel_name,
            ivr.id, ivr.key, ivr.name, run, utcnow(),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PendingInvocation:
    """What the writer keeps of an invocation until it is written: strings only.
    ``executions``: one JSON object per execution record (``call_id`` included, times as
    ``callstore.db_time`` writes them: naive UTC)."""

    call_id: str
    tel: str | None
    called: str | None
    tel_name: str | None
    source: str  # of the variables: "ivr:<key>"
    variables: dict[str, str]
    errors: int
    executions: tuple[str, ...]


# Stores a whole batch in one go (see ``batch_store``).
BatchStore = Callable[[Sequence[PendingInvocation]], Awaitable[None]]


def _label(log: InvocationLog, step: StepRun | None) -> str:
    answer = log.run.answer
    outcome = str(answer.get("outcome"))
    if outcome == "matched":
        outcome = f"matched priority {answer.get('matched_priority')}"
    transfer = answer.get("transfer") or {}
    routed = " ".join(str(v) for v in (transfer.get("kind"), transfer.get("target")) if v)
    name = f" ({log.ivr_name})" if log.ivr_name else ""
    which = f": {step.name}" if step is not None else ""
    return f"IVR {log.ivr_key}{name}{which} — {outcome}, {routed}"[:300]


define(
    {
        "note.guidance": "guidance: {guidance}",
        "note.outcome": "{outcome}: {reason}",
        "note.matched": "priority {priority} matched: {reason}",
        "note.not_matched": "priority {priority} did not match: {reason}",
        "note.skipped": "step {name} skipped: {reason}",
    }
)


def _answer_notes(log: InvocationLog) -> list[dict[str, Any]]:
    """The answer and the reasons behind it, shown with the invocation on the timeline
    (each note as ``callbridge.messages.stored()`` keeps it)."""
    run = log.run
    answer = run.answer
    notes: list[Message] = []
    guidance = answer.get("guidance")
    if guidance:
        shown = str(guidance.get("text") or guidance.get("file"))
        notes.append(Message("note.guidance", guidance=shown))
    if run.error is not None and answer.get("outcome") != "matched":
        error = run.error
        reason = Message.from_json(error["msg"]) if "msg" in error else str(error.get("message"))
        outcome = outcome_message(str(answer.get("outcome")))
        notes.append(Message("note.outcome", outcome=outcome, reason=reason))
    for check in run.checks:
        if check.matched is not None:
            which = "note.matched" if check.matched else "note.not_matched"
            notes.append(Message(which, priority=check.priority, reason=check.said))
    for step in run.steps:
        if step.skipped:
            notes.append(Message("note.skipped", name=step.name, reason=step.skipped))
    return [stored(note) for note in notes]


def execution_records(log: InvocationLog) -> list[dict[str, Any]]:
    """``record_execution`` arguments of one invocation: one per request sent or refused;
    the last one carries the answer and its reasons as notes."""
    records: list[dict[str, Any]] = []
    for step in log.run.steps:
        request = step.request_record()
        if request is None:
            continue
        result = step.result
        records.append(
            {
                "source": SOURCE,
                "rule_id": log.ivr_id,
                "label": _label(log, step),
                "request": request,
                "response": result.response_record() if result is not None else None,
                "duration_ms": step.duration_ms(),
                "extracted": dict(step.extracted),
                "error": step.error,
                "attempt": len(result.attempts) if result is not None and result.attempts else 1,
                "attempts": [a.as_dict() for a in result.attempts] if result is not None else [],
                "at": step.at,
            }
        )
    if not records:
        # Nothing was sent (invalid digits, a timeout before the first request): the
        # timeline still shows the invocation and why.
        records.append(
            {
                "source": SOURCE,
                "rule_id": log.ivr_id,
                "label": _label(log, None),
                "request": {"method": None, "url": None, "headers": {}, "body": None},
                "response": None,
                "duration_ms": log.run.duration_ms,
                "extracted": {},
                "error": log.run.error,
                "at": log.at,
            }
        )
    records[-1]["notes"] = _answer_notes(log)
    records[-1]["outcome"] = str(log.run.answer.get("outcome"))[:30]
    return records


def pending_invocation(log: InvocationLog) -> PendingInvocation:
    """``log`` reduced to what is written (tens of µs, after the answer has gone)."""
    executions = []
    errors = 0
    for record in execution_records(log):
        if record["error"] is not None:
            errors += 1
        record["call_id"] = log.call_id
        record["response"] = store.cap_response(record["response"])
        record["label"] = record["label"][:300]
        record["at"] = db_time(record["at"])
        record.setdefault("attempt", 1)
        record.setdefault("attempts", [])
        record.setdefault("notes", [])
        executions.append(_json_text(record))
    return PendingInvocation(
        call_id=log.call_id,
        tel=log.tel,
        called=log.called,
        tel_name=log.tel_name,
        source=f"ivr:{log.ivr_key}"[:100],
        variables=dict(log.run.stored),
        errors=errors,
        executions=tuple(executions),
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def batch_documents(items: Sequence[PendingInvocation]) -> tuple[str, str, str]:
    """The ``calls``, ``variables`` and ``executions`` JSON documents of the call store's
    batch statements: one entry per call (its errors added up), the last value given to
    each of its variables, every execution in order."""
    calls: dict[str, dict[str, Any]] = {}
    variables: dict[tuple[str, str], dict[str, str]] = {}
    for item in items:
        call = calls.get(item.call_id)
        if call is None:
            call = calls[item.call_id] = {
                "call_id": item.call_id,
                "tel": item.tel,
                "called": item.called,
                "tel_name": item.tel_name,
                "errors": 0,
            }
        call["errors"] += item.errors
        for name, value in item.variables.items():
            variables[(item.call_id, name)] = {
                "call_id": item.call_id,
                "name": name,
                "value": value,
                "source": item.source,
            }
    executions = ",".join(text for item in items for text in item.executions)
    return (
        # Rows are locked in call_id order, whoever else writes several calls at once.
        _json_text(sorted(calls.values(), key=lambda call: str(call["call_id"]))),
        _json_text(list(variables.values())),
        f"[{executions}]",
    )


def batch_store(runtime: Runtime) -> BatchStore:
    """Where the writer sends whole batches: the call store's driver (one round trip or
    one thread hop per batch)."""
    driver = store.call_store(runtime)

    async def store_batch(items: Sequence[PendingInvocation]) -> None:
        await driver.store_batch(*batch_documents(items))

    return store_batch


class InvocationWriter:
    """The queue and the task that drains it (one per process, started by the lifespan)."""

    def __init__(
        self,
        bulk: BatchStore,
        *,
        max_queued: int = 10_000,
        batch_size: int = 100,
        linger: float = 0.2,
    ) -> None:
        self.bulk = bulk
        # None is the stop sentinel.
        self._queue: asyncio.Queue[PendingInvocation | None] = asyncio.Queue(max_queued)
        self._batch_size = batch_size
        self._linger = linger
        # Set when lingering should end: a full batch waits, or a flush or stop asks.
        self._hurry = asyncio.Event()
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        self._overflow: set[asyncio.Task[None]] = set()
        self.written = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._overflow)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain_forever(), name="ivr-log-writer")

    def submit(self, log: InvocationLog) -> None:
        """Queue ``log`` for writing; never waits."""
        item = pending_invocation(log)
        try:
            self._queue.put_nowait(item)
            if self._queue.qsize() >= self._batch_size:
                self._hurry.set()
        except asyncio.QueueFull:
            logger.warning(
                "IVR log queue full (%d waiting): the database is slower than the invocations",
                self._queue.qsize(),
            )
            task = asyncio.create_task(self._queue.put(item))
            self._overflow.add(task)
            task.add_done_callback(self._overflow.discard)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        # One turn of the loop: invocations answered before this call and queued by
        # ``call_soon`` (the invoke route) are submitted first.
        await asyncio.sleep(0)
        while self._overflow:
            await asyncio.gather(*self._overflow, return_exceptions=True)
        if self._task is None or self._task.done():
            batch = self._take_all()
            await self._write_batch(batch)
            for _ in batch:
                self._queue.task_done()
            return
        self._flushing += 1
        self._hurry.set()
        try:
            await self._queue.join()
        finally:
            self._flushing -= 1

    async def stop(self) -> None:
        """Write everything queued, then end the task."""
        await asyncio.sleep(0)  # as in ``flush``
        while self._overflow:
            await asyncio.gather(*self._overflow, return_exceptions=True)
        task, self._task = self._task, None
        if task is not None and not task.done():
            await self._queue.put(None)
            self._hurry.set()
            await task
        await self.flush()

    def _take_all(self) -> list[PendingInvocation]:
        items: list[PendingInvocation] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return items
            if item is not None:
                items.append(item)
            else:
                self._queue.task_done()

    async def _drain_forever(self) -> None:
        stopping = False
        while not stopping:
            batch: list[PendingInvocation] = []
            item = await self._queue.get()
            await self._wait_for_more()
            taken = 1
            while item is not None:
                batch.append(item)
                if len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                taken += 1
            stopping = item is None
            try:
                await self._write_batch(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _wait_for_more(self) -> None:
        if self._linger > 0 and not self._hurry.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._linger):
                    await self._hurry.wait()
        if not self._flushing:
            self._hurry.clear()

    async def _write_batch(self, batch: list[PendingInvocation]) -> None:
        if not batch:
            return
        try:
            await self.bulk(batch)
            self.written += len(batch)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("writing %d IVR logs failed; retrying one by one", len(batch))
        for item in batch:
            await self._write_one_with_retries(item)

    async def _write_one_with_retries(self, item: PendingInvocation) -> None:
        for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
            try:
                await self.bulk([item])
                self.written += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if delay is None:
                    self.failed += 1
                    logger.exception(
                        "could not store IVR invocation of call %s (%s) after %d attempts",
                        item.call_id,
                        item.source,
                        attempt + 1,
                    )
                    return
                await asyncio.sleep(delay)
