"""The dispatcher: per-call order with many workers, immediate pickup, reorder window,
late events, leases taken over, graceful shutdown, poison events."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from callbridge.calls import service
from callbridge.calls.dispatcher import Dispatcher, EventJob, EventOutcome
from callbridge.calls.schemas import CallEventIn
from callbridge.calls.store import call_store, close_call_store
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import SecretBox
from callbridge.kit.time import utcnow
from callbridge.models.call import Call, CallEvent
from callbridge.runtime import Runtime
from callbridge.settings import Settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.resolved_database_url)
    runtime = Runtime(settings, engine, create_sessionmaker(engine), SecretBox("k" * 32))
    yield runtime
    await close_call_store(runtime)
    await engine.dispose()


def tuned(runtime: Runtime, **changes: Any) -> Runtime:
    settings = runtime.settings.model_copy(update=changes)
    return Runtime(settings, runtime.engine, runtime.sessionmaker, runtime.secrets)


class Recorder:
    """A processor that remembers what ran, in which order, and never two of a call at once."""

    def __init__(self, pause: Callable[[], Awaitable[None]] | None = None) -> None:
        self.seen: list[tuple[int, int, str, int]] = []  # call_pk, event_pk, event, attempt
        self.busy: set[int] = set()
        self.overlaps = 0
        self.pause = pause
        self.done = asyncio.Event()
        self.expected = 0

    async def __call__(self, job: EventJob) -> EventOutcome:
        if job.call_pk in self.busy:
            self.overlaps += 1
        self.busy.add(job.call_pk)
        try:
            if self.pause is not None:
                await self.pause()
            self.seen.append((job.call_pk, job.event_pk, job.event, job.attempt))
        finally:
            self.busy.discard(job.call_pk)
        if self.expected and len(self.seen) >= self.expected:
            self.done.set()
        return EventOutcome(items=[{"status": "ok"}])


async def store(runtime: Runtime, dispatcher: Dispatcher | None = None, **fields: Any) -> int:
    stored = await service.store_event(
        call_store(runtime),
        CallEventIn.model_validate(fields),
        reorder_window_ms=runtime.settings.reorder_window_ms,
    )
    if dispatcher is not None:
        dispatcher.wake(stored.due_at)
    return stored.event_pk


async def statuses(runtime: Runtime) -> dict[int, tuple[str, int, bool]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(CallEvent.id, CallEvent.status, CallEvent.attempts, CallEvent.late)
        )
        return {pk: (status, attempts, late) for pk, status, attempts, late in rows}


async def wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def all_done(runtime: Runtime, count: int) -> bool:
    found = await statuses(runtime)
    return len(found) == count and all(s in ("done", "failed") for s, _a, _l in found.values())


async def test_each_call_in_order_with_several_workers(runtime: Runtime) -> None:
    rng = random.Random(7)

    async def jitter() -> None:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)

    recorder = Recorder(jitter)
    workers = [Dispatcher(tuned(runtime, worker_concurrency=8), recorder) for _ in range(3)]
    for worker in workers:
        await worker.start()
    try:
        sequence = ("incoming", "queue", "answer", "disconnect")
        expected: dict[int, list[int]] = {}
        for step in sequence:  # interleaved: every call's events arrive while others run
            for n in range(30):
                pk = await store(runtime, rng.choice(workers), event=step, call_id=f"c{n}")
                expected.setdefault(n, []).append(pk)
        recorder.expected = 120
        await asyncio.wait_for(recorder.done.wait(), 20)
    finally:
        for worker in workers:
            await worker.stop()
    assert recorder.overlaps == 0
    seen_pks = [pk for _c, pk, _e, _a in recorder.seen]
    assert sorted(seen_pks) == sorted(pk for pks in expected.values() for pk in pks)
    by_call: dict[int, list[int]] = {}
    for call_pk, event_pk, _event, _attempt in recorder.seen:
        by_call.setdefault(call_pk, []).append(event_pk)
    assert all(pks == sorted(pks) for pks in by_call.values())
    assert len(by_call) == 30
    assert sum(w.worker.events_processed for w in workers) == 120


async def test_new_work_is_picked_up_without_polling(runtime: Runtime) -> None:
    recorder = Recorder()
    recorder.expected = 1
    dispatcher = Dispatcher(tuned(runtime, dispatch_poll_seconds=60), recorder)
    await dispatcher.start()
    try:
        await asyncio.sleep(0)  # let it reach its wait
        await store(runtime, dispatcher, event="incoming", call_id="fast")
        await asyncio.wait_for(recorder.done.wait(), 5)  # far less than the 60 s poll
    finally:
        await dispatcher.stop()


async def test_out_of_order_delivery_runs_in_occurrence_order(runtime: Runtime) -> None:
    recorder = Recorder()
    recorder.expected = 2
    run = tuned(runtime, reorder_window_ms=300, dispatch_poll_seconds=60)
    dispatcher = Dispatcher(run, recorder)
    await dispatcher.start()
    try:
        now = utcnow()
        # The PBX sends the disconnect first, the queue event a moment later.
        later = await store(
            run,
            dispatcher,
            event="disconnect",
            call_id="ooo",
            occurred_at=(now + timedelta(milliseconds=50)).isoformat(),
        )
        earlier = await store(
            run, dispatcher, event="queue", call_id="ooo", occurred_at=now.isoformat()
        )
        await asyncio.wait_for(recorder.done.wait(), 5)
    finally:
        await dispatcher.stop()
    assert [pk for _c, pk, _e, _a in recorder.seen] == [earlier, later]


async def test_an_event_arriving_after_a_later_one_ran_is_flagged_late(runtime: Runtime) -> None:
    recorder = Recorder()
    run = tuned(runtime, reorder_window_ms=0)
    dispatcher = Dispatcher(run, recorder)
    await dispatcher.start()
    try:
        now = utcnow()
        await store(
            run, dispatcher, event="disconnect", call_id="late", occurred_at=now.isoformat()
        )
        await wait_for(lambda: all_done(run, 1))
        late = await store(
            run,
            dispatcher,
            event="queue",
            call_id="late",
            occurred_at=(now - timedelta(seconds=5)).isoformat(),
        )
        await wait_for(lambda: all_done(run, 2))
    finally:
        await dispatcher.stop()
    assert (await statuses(run))[late] == ("done", 1, True)


async def test_expired_lease_of_a_dead_worker_is_taken_at_once(runtime: Runtime) -> None:
    pk = await store(runtime, event="queue", call_id="orphan")
    async with runtime.sessionmaker() as session:
        # A worker took the call and the event, then died (SIGKILL): its lease ran out.
        await session.execute(
            update(Call).values(
                lease_owner="dead-worker", lease_expires_at=utcnow() - timedelta(seconds=1)
            )
        )
        await session.execute(update(CallEvent).values(status="processing", attempts=1))
        await session.commit()
    recorder = Recorder()
    recorder.expected = 1
    dispatcher = Dispatcher(runtime, recorder)
    await dispatcher.start()
    try:
        await asyncio.wait_for(recorder.done.wait(), 5)
    finally:
        await dispatcher.stop()
    assert recorder.seen[0][1:] == (pk, "queue", 2)  # resumed: the second attempt


async def test_a_live_lease_is_respected(runtime: Runtime) -> None:
    await store(runtime, event="queue", call_id="held")
    async with runtime.sessionmaker() as session:
        await session.execute(
            update(Call).values(
                lease_owner="busy-worker", lease_expires_at=utcnow() + timedelta(minutes=5)
            )
        )
        await session.commit()
    claimed = await call_store(runtime).claim_steps("me", 10, timedelta(seconds=30), max_attempts=5)
    assert claimed == []


async def test_graceful_shutdown_hands_calls_back(runtime: Runtime) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def block() -> None:
        started.set()
        await release.wait()

    first = Dispatcher(runtime, Recorder(block))
    await first.start()
    pk = await store(runtime, first, event="answer", call_id="shutdown")
    await asyncio.wait_for(started.wait(), 5)
    await first.stop(grace=0.05)  # the event does not finish in time: it is handed back
    async with runtime.sessionmaker() as session:
        call = await session.scalar(select(Call))
        assert call is not None and call.lease_owner is None and call.due_at is not None
    recorder = Recorder()
    recorder.expected = 1
    second = Dispatcher(runtime, recorder)
    await second.start()
    try:
        await asyncio.wait_for(recorder.done.wait(), 5)  # at once, no lease to wait out
    finally:
        await second.stop()
    assert recorder.seen[0][1:] == (pk, "answer", 2)


async def test_stopping_during_a_claim_lets_the_claim_finish_and_returns_its_connection(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled in the middle of its statement, a claim could leave its connection inside
    the transaction, holding the claimed rows (a later TRUNCATE or claim would wait)."""
    recorder = Recorder()
    dispatcher = Dispatcher(runtime, recorder)
    queue = dispatcher.worker.store
    claiming, release = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []
    claim_steps = queue.claim_steps

    async def held_claim(*args: Any, **kwargs: Any) -> Any:
        claiming.set()
        try:
            await release.wait()
            found = await claim_steps(*args, **kwargs)
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise
        outcomes.append("finished")
        return found

    monkeypatch.setattr(queue, "claim_steps", held_claim)
    await dispatcher.start()
    await asyncio.wait_for(claiming.wait(), 5)
    stopping = asyncio.ensure_future(dispatcher.stop(grace=10))
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert outcomes == ["finished"]
    assert runtime.engine.pool.checkedout() == 0


async def test_a_crashing_processor_fails_the_event_not_the_worker(runtime: Runtime) -> None:
    calls: list[str] = []

    async def explode(job: EventJob) -> EventOutcome:
        calls.append(job.event)
        if job.event == "queue":
            raise RuntimeError("boom")
        return EventOutcome()

    dispatcher = Dispatcher(runtime, explode)
    await dispatcher.start()
    try:
        bad = await store(runtime, dispatcher, event="queue", call_id="crash")
        good = await store(runtime, dispatcher, event="disconnect", call_id="crash")
        await wait_for(lambda: all_done(runtime, 2))
    finally:
        await dispatcher.stop()
    found = await statuses(runtime)
    assert found[bad][0] == "failed" and found[good][0] == "done"
    assert calls == ["queue", "disconnect"]


async def test_an_event_interrupted_too_often_is_abandoned(runtime: Runtime) -> None:
    run = tuned(runtime, max_event_attempts=3)
    pk = await store(run, event="queue", call_id="poison")
    async with run.sessionmaker() as session:
        await session.execute(update(CallEvent).values(status="processing", attempts=3))
        await session.commit()
    recorder = Recorder()
    dispatcher = Dispatcher(run, recorder)
    await dispatcher.start()
    try:
        await wait_for(lambda: all_done(run, 1))
    finally:
        await dispatcher.stop()
    assert recorder.seen == []
    async with run.sessionmaker() as session:
        event = await session.get(CallEvent, pk)
        assert event is not None and event.status == "failed"
        assert "3 interrupted attempts" in (event.error or "")
