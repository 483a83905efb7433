"""Store what an invocation did — the call's new variables and one execution per request —
after the PBX has its answer.

The answer never waits on these writes (DESIGN.md §3.3): the invoke route hands a record
to a bounded in-process queue and returns; one task drains the queue in batches, one
transaction per batch. After the first record of a batch the task lingers (``linger``,
0.2 s) for more, unless a full batch is already waiting or a flush asks: a transaction
per invocation would cost more than the invocation, and writing just as the next
invocation arrives would delay it. Nothing is dropped: when the queue is full the record
waits in a small overflow task for room (and a warning is logged), a failed batch is
retried record by record, and shutdown drains everything queued before the database is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callbridge.calls import store
from callbridge.ivr import repository
from callbridge.ivr.engine import IvrRun, StepRun

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


def _answer_notes(log: InvocationLog) -> list[str]:
    """The answer and the reasons behind it, shown with the invocation on the timeline."""
    run = log.run
    answer = run.answer
    notes = []
    guidance = answer.get("guidance")
    if guidance:
        notes.append(f"guidance: {guidance.get('text') or guidance.get('file')}")
    if run.error is not None and answer.get("outcome") != "matched":
        notes.append(f"{answer.get('outcome')}: {run.error.get('message')}")
    for check in run.checks:
        if check.matched is not None:
            verdict = "matched" if check.matched else "did not match"
            notes.append(f"priority {check.priority} {verdict}: {check.reason}")
    for step in run.steps:
        if step.skipped:
            notes.append(f"step {step.name} skipped: {step.skipped}")
    return notes


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
    return records


async def store_invocation(session: AsyncSession, log: InvocationLog) -> None:
    """One invocation through the call store's own API: the reference the bulk path in
    ``store_invocations`` agrees with, and the path of a record whose batch failed."""
    call_pk = await store.ensure_call(
        session, log.call_id, tel=log.tel, called=log.called, tel_name=log.tel_name
    )
    if log.run.stored:
        await store.set_variables(session, call_pk, log.run.stored, source=f"ivr:{log.ivr_key}")
    for record in execution_records(log):
        await store.record_execution(session, call_pk, **record)


async def store_invocations(session: AsyncSession, logs: Sequence[InvocationLog]) -> None:
    """Many invocations in a handful of statements: one statement per table for the whole
    batch instead of several statements per call."""
    calls = {
        log.call_id: {"tel": log.tel, "called": log.called, "tel_name": log.tel_name}
        for log in reversed(logs)
    }
    call_pks = await repository.ensure_calls(session, calls)
    variables: dict[tuple[int, str], tuple[str, str]] = {}
    executions: list[dict[str, Any]] = []
    for log in logs:
        call_pk = call_pks[log.call_id]
        for name, value in log.run.stored.items():
            variables[(call_pk, name)] = (value, f"ivr:{log.ivr_key}"[:100])
        for record in execution_records(log):
            executions.append(
                {
                    "call_pk": call_pk,
                    "event_pk": None,
                    "event": None,
                    "attempt": record.pop("attempt", 1),
                    "attempts": record.pop("attempts", []),
                    "notes": record.pop("notes", []),
                    **record,
                    "response": store.cap_response(record["response"]),
                }
            )
    await repository.upsert_call_variables(session, variables)
    await repository.add_executions(session, executions)


class InvocationWriter:
    """The queue and the task that drains it (one per process, started by the lifespan)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_queued: int = 10_000,
        batch_size: int = 100,
        linger: float = 0.2,
    ) -> None:
        self._sessionmaker = sessionmaker
        # None is the stop sentinel.
        self._queue: asyncio.Queue[InvocationLog | None] = asyncio.Queue(max_queued)
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
        try:
            self._queue.put_nowait(log)
            if self._queue.qsize() >= self._batch_size:
                self._hurry.set()
        except asyncio.QueueFull:
            logger.warning(
                "IVR log queue full (%d waiting): the database is slower than the invocations",
                self._queue.qsize(),
            )
            task = asyncio.create_task(self._queue.put(log))
            self._overflow.add(task)
            task.add_done_callback(self._overflow.discard)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
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
        while self._overflow:
            await asyncio.gather(*self._overflow, return_exceptions=True)
        task, self._task = self._task, None
        if task is not None and not task.done():
            await self._queue.put(None)
            self._hurry.set()
            await task
        await self.flush()

    def _take_all(self) -> list[InvocationLog]:
        items: list[InvocationLog] = []
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
            batch: list[InvocationLog] = []
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

    async def _write_batch(self, batch: list[InvocationLog]) -> None:
        if not batch:
            return
        try:
            await self._write(batch)
            self.written += len(batch)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("writing %d IVR logs failed; retrying one by one", len(batch))
        for log in batch:
            await self._write_one_with_retries(log)

    async def _write_one_with_retries(self, log: InvocationLog) -> None:
        for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
            try:
                async with self._sessionmaker() as session:
                    await store_invocation(session, log)
                    await session.commit()
                self.written += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if delay is None:
                    self.failed += 1
                    logger.exception(
                        "could not store IVR invocation of call %s (IVR %s) after %d attempts",
                        log.call_id,
                        log.ivr_key,
                        attempt + 1,
                    )
                    return
                await asyncio.sleep(delay)

    async def _write(self, logs: Sequence[InvocationLog]) -> None:
        async with self._sessionmaker() as session:
            await store_invocations(session, logs)
            await session.commit()
