"""The dispatcher's queue operations on both databases: taking an event marks it as being
processed only when it is due and ours; finishing the call's last event hands the call
back only if no event arrived meanwhile; the claim's first step on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from callbridge.calls.pg_ingest import close_pg_ingest
from callbridge.calls.queue import call_queue
from callbridge.calls.sqlite_hot import close_sqlite_hot_path
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import SecretBox
from callbridge.kit.time import utcnow
from callbridge.models.call import Call, CallEvent
from callbridge.runtime import Runtime
from callbridge.settings import Settings
from tests.calls.test_dispatcher import store

LEASE = timedelta(seconds=30)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.resolved_database_url)
    runtime = Runtime(settings, engine, create_sessionmaker(engine), SecretBox("k" * 32))
    yield runtime
    await close_pg_ingest(runtime)
    await close_sqlite_hot_path(runtime)
    await engine.dispose()


async def claimed(runtime: Runtime, event_pk: int, owner: str) -> int:
    """Lease the event's call without taking its event (unlike PostgreSQL's claim)."""
    call_pk = (await event_row(runtime, event_pk)).call_pk
    assert await call_queue(runtime).claim_one(call_pk, owner, LEASE)
    return call_pk


async def event_row(runtime: Runtime, event_pk: int) -> CallEvent:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(CallEvent).where(CallEvent.id == event_pk))
        assert found is not None
        return found


async def call_row(runtime: Runtime, call_pk: int) -> Call:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(Call).where(Call.id == call_pk))
        assert found is not None
        return found


async def test_take_starts_only_a_due_event_of_ours(runtime: Runtime) -> None:
    queue = call_queue(runtime)
    event_pk = await store(runtime, event="queue", call_id="t1", tel="0312345678")
    call_pk = await claimed(runtime, event_pk, "me")

    other = await queue.take(call_pk, "someone-else", start=True, max_attempts=5)
    assert other is not None and other.event is not None and not other.started
    stopping = await queue.take(call_pk, "me", start=False, max_attempts=5)
    assert stopping is not None and not stopping.started
    assert (await event_row(runtime, event_pk)).status == "pending"

    step = await queue.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.started and step.unfinished == 1
    assert step.event is not None and step.event.id == event_pk and step.event.attempts == 0
    assert step.call.tel == "0312345678"
    row = await event_row(runtime, event_pk)
    assert (row.status, row.attempts, row.worker) == ("processing", 1, "me")


async def test_finish_and_release_hands_back_only_if_nothing_arrived(runtime: Runtime) -> None:
    queue = call_queue(runtime)
    first = await store(runtime, event="queue", call_id="t2")
    call_pk = await claimed(runtime, first, "me")
    step = await queue.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.started and step.unfinished == 1

    # An event arrives while the first one is being processed.
    second = await store(runtime, event="disconnect", call_id="t2")
    assert not await queue.finish_and_release(
        first, "done", [], None, call_pk=call_pk, owner="me", seen_event_count=step.event_count
    )
    assert (await event_row(runtime, first)).status == "done"
    call = await call_row(runtime, call_pk)
    assert call.lease_owner == "me" and call.due_at is not None  # still ours, still due

    step = await queue.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.event is not None and step.event.id == second
    assert step.started and step.unfinished == 1
    assert await queue.finish_and_release(
        second, "done", [], None, call_pk=call_pk, owner="me", seen_event_count=step.event_count
    )
    call = await call_row(runtime, call_pk)
    assert (call.lease_owner, call.lease_expires_at, call.due_at) == (None, None, None)
    assert (await event_row(runtime, second)).status == "done"


async def test_an_event_not_due_yet_is_not_started(runtime: Runtime) -> None:
    queue = call_queue(runtime)
    later = utcnow() + timedelta(seconds=30)
    event_pk = await store(runtime, event="queue", call_id="t3", occurred_at=later.isoformat())
    call_pk = await claimed(runtime, event_pk, "me")
    step = await queue.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.event is not None and not step.started
    assert (await event_row(runtime, event_pk)).status == "pending"


async def test_the_claim_takes_the_first_event_on_postgresql(runtime: Runtime) -> None:
    if runtime.database_kind != "postgresql":
        pytest.skip("SQLite's claim leaves the first step to take")
    queue = call_queue(runtime)
    due = await store(runtime, event="queue", call_id="c1", tel="0311112222")
    await store(runtime, event="queue", call_id="c2")
    await store(runtime, event="disconnect", call_id="c2")
    steps = dict(await queue.claim_steps("me", 10, LEASE, max_attempts=5))
    assert len(steps) == 2
    first = steps[(await event_row(runtime, due)).call_pk]
    assert first is not None and first.started and first.unfinished == 1
    assert first.lease_owner == "me" and first.call.tel == "0311112222"
    assert (await event_row(runtime, due)).status == "processing"
    two = [step for pk, step in steps.items() if step is not first]
    assert two[0] is not None and two[0].unfinished == 2 and two[0].event is not None
    assert two[0].event.event == "queue"
    # Nothing is claimed twice.
    assert await queue.claim_steps("other", 10, LEASE, max_attempts=5) == []
