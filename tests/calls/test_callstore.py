"""The call store's contract: every operation of the driver, on both databases (the
fixture runs each test with the SQLite and with the PostgreSQL driver), leaves exactly
the rows written here. Taking an event marks it as being processed only when it is due
and ours; finishing the call's last event hands the call back only if no event arrived
meanwhile; the claim's first step on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from callbridge.calls import service, store
from callbridge.calls.callstore import CallStore
from callbridge.calls.schemas import CallEventIn
from callbridge.calls.store import call_store, close_call_store
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import SecretBox
from callbridge.kit.time import utcnow
from callbridge.models.call import Call, CallEvent, CallVariable, Execution
from callbridge.runtime import Runtime
from callbridge.settings import Settings
from tests.calls.test_dispatcher import store as store_event

LEASE = timedelta(seconds=30)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.resolved_database_url)
    runtime = Runtime(settings, engine, create_sessionmaker(engine), SecretBox("k" * 32))
    yield runtime
    await close_call_store(runtime)
    await engine.dispose()


@pytest.fixture
def driver(runtime: Runtime) -> CallStore:
    return call_store(runtime)


async def claimed(runtime: Runtime, event_pk: int, owner: str) -> int:
    """Lease the event's call without taking its event (unlike PostgreSQL's claim)."""
    call_pk = (await event_row(runtime, event_pk)).call_pk
    assert await call_store(runtime).claim_one(call_pk, owner, LEASE)
    return call_pk


async def event_row(runtime: Runtime, event_pk: int) -> CallEvent:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(CallEvent).where(CallEvent.id == event_pk))
        assert found is not None
        return found


async def call_row(runtime: Runtime, call_id: str) -> Call:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(Call).where(Call.call_id == call_id))
        assert found is not None
        return found


async def variables(runtime: Runtime, call_pk: int) -> dict[str, tuple[str, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(CallVariable).where(CallVariable.call_pk == call_pk))
        return {v.name: (v.value, v.source) for v in rows}


def columns(row: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


CALL_COLUMNS = (
    "call_id", "unique_id", "tel", "tel_name", "called", "called_name", "direction", "queue",
    "last_event", "event_count", "error_count", "lease_owner", "lease_expires_at",
)  # fmt: skip


async def test_an_event_creates_its_call_and_a_later_one_fills_it_in(runtime: Runtime) -> None:
    at = "2026-12-01T10:00:00+09:00"
    first = await store_event(
        runtime, event="queue", call_id="s1", event_id="e1", tel="0312345678", occurred_at=at
    )
    event = await event_row(runtime, first)
    assert columns(event, "event", "event_id", "dedupe_key", "status", "attempts", "late") == {
        "event": "queue",
        "event_id": "e1",
        "dedupe_key": "id:e1",
        "status": "pending",
        "attempts": 0,
        "late": False,
    }
    assert event.payload == {"tel": "0312345678"}
    assert event.occurred_at.isoformat() == "2026-12-01T01:00:00+00:00"
    call = await call_row(runtime, "s1")
    assert columns(call, *CALL_COLUMNS) == {
        **dict.fromkeys(CALL_COLUMNS),
        "call_id": "s1",
        "tel": "0312345678",
        "last_event": "queue",
        "event_count": 1,
        "error_count": 0,
    }
    assert call.started_at == event.occurred_at and call.due_at == event.due_at
    assert call.ended_at is None

    second = await store_event(
        runtime, event="disconnect", call_id="s1", event_id="e2", queue="support", tel=None
    )
    call = await call_row(runtime, "s1")
    assert (call.tel, call.queue, call.last_event, call.event_count) == (
        "0312345678",
        "support",
        "disconnect",
        2,
    )
    assert call.ended_at == (await event_row(runtime, second)).occurred_at
    assert call.started_at == event.occurred_at  # the earlier of the two


async def test_a_repeat_is_a_duplicate_and_stores_nothing(
    runtime: Runtime, driver: CallStore
) -> None:
    data = CallEventIn.model_validate({"event": "queue", "call_id": "d1", "event_id": "x"})
    first = await service.store_event(driver, data, reorder_window_ms=0)
    again = await service.store_event(driver, data, reorder_window_ms=0)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.call_pk, again.event_pk) == (first.call_pk, first.event_pk)
    assert await driver.find_event("id:x") == (first.event_pk, first.call_pk)
    assert await driver.find_event("id:nothing") is None
    assert (await call_row(runtime, "d1")).event_count == 1


async def test_a_step_records_its_execution_counts_its_error_and_sets_variables(
    runtime: Runtime,
) -> None:
    call_pk = await store.ensure_call(runtime, "x1", tel="0311112222", direction="inbound")
    assert await store.ensure_call(runtime, "x1", tel="0999") == call_pk  # details kept
    at = utcnow()
    ok = await store.record_execution(
        runtime,
        call_pk,
        variables={"RESPONSE_ID": "003"},
        variables_source="rule:" + "7" * 200,
        source="call_action",
        rule_id=7,
        label="lookup",
        request={"method": "GET", "url": "https://crm.example.com/q"},
        response={"status": 200, "body": "x" * (store.MAX_RECORDED_BODY + 5)},
        duration_ms=12.5,
        extracted={"RESPONSE_ID": "003"},
        notes=["a note", {"message": "m", "msg": {"id": "n"}}],
        at=at,
    )
    failed = await store.record_execution(
        runtime,
        call_pk,
        source="call_action",
        rule_id=8,
        request={"method": "POST", "url": "https://crm.example.com/c"},
        response=None,
        duration_ms=None,
        error={"kind": "timeout", "message": "timed out"},
        attempt=2,
        attempts=[{"status": None}],
        rerun_of=ok,
    )
    await store.set_variables(runtime, call_pk, {"RESPONSE_ID": "004", "NOTES": "n"}, source="x")
    await store.set_variables(runtime, call_pk, {}, source="nothing")
    call = await call_row(runtime, "x1")
    assert (call.tel, call.direction, call.event_count, call.error_count, call.due_at) == (
        "0311112222",
        "inbound",
        0,
        1,
        None,
    )
    assert await variables(runtime, call_pk) == {"RESPONSE_ID": ("004", "x"), "NOTES": ("n", "x")}
    async with runtime.sessionmaker() as session:
        rows = list(await session.scalars(select(Execution).order_by(Execution.id)))
    assert [row.id for row in rows] == [ok, failed]
    names = ("source", "rule_id", "label", "event", "event_pk", "attempt", "request")
    more = ("duration_ms", "extracted", "error", "attempts", "notes", "outcome", "rerun_of")
    assert columns(rows[0], *names, *more) == {
        "source": "call_action",
        "rule_id": 7,
        "label": "lookup",
        "event": None,
        "event_pk": None,
        "attempt": 1,
        "request": {"method": "GET", "url": "https://crm.example.com/q"},
        "duration_ms": 12.5,
        "extracted": {"RESPONSE_ID": "003"},
        "error": None,
        "attempts": [],
        "notes": ["a note", {"message": "m", "msg": {"id": "n"}}],
        "outcome": None,
        "rerun_of": None,
    }
    assert rows[0].response == {
        "status": 200,
        "body": "x" * store.MAX_RECORDED_BODY,
        "truncated": True,
    }
    assert rows[0].at == at
    assert columns(rows[1], "error", "attempt", "attempts", "response", "rerun_of") == {
        "error": {"kind": "timeout", "message": "timed out"},
        "attempt": 2,
        "attempts": [{"status": None}],
        "response": None,
        "rerun_of": ok,
    }


async def test_take_starts_only_a_due_event_of_ours(runtime: Runtime, driver: CallStore) -> None:
    event_pk = await store_event(runtime, event="queue", call_id="t1", tel="0312345678")
    call_pk = await claimed(runtime, event_pk, "me")
    await store.set_variables(runtime, call_pk, {"RESPONSE_A": "1"}, source="rule:1")

    other = await driver.take(call_pk, "someone-else", start=True, max_attempts=5)
    assert other is not None and other.event is not None and not other.started
    stopping = await driver.take(call_pk, "me", start=False, max_attempts=5)
    assert stopping is not None and not stopping.started
    assert (await event_row(runtime, event_pk)).status == "pending"

    step = await driver.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.started and step.unfinished == 1
    assert step.event is not None and step.event.id == event_pk and step.event.attempts == 0
    assert step.event.payload == {"tel": "0312345678"} and step.event.parked_at is None
    assert step.call.tel == "0312345678" and step.variables == {"RESPONSE_A": "1"}
    row = await event_row(runtime, event_pk)
    assert (row.status, row.attempts, row.worker, row.late) == ("processing", 1, "me", False)
    assert await driver.status(event_pk) == "processing"
    assert await driver.status(event_pk + 1000) is None


async def test_finish_and_release_hands_back_only_if_nothing_arrived(
    runtime: Runtime, driver: CallStore
) -> None:
    first = await store_event(runtime, event="queue", call_id="t2")
    call_pk = await claimed(runtime, first, "me")
    step = await driver.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.started and step.unfinished == 1

    # An event arrives while the first one is being processed.
    second = await store_event(runtime, event="disconnect", call_id="t2")
    outcome = [{"rule_id": 1, "status": "ok"}]
    assert not await driver.finish_and_release(
        first, "done", outcome, None, call_pk=call_pk, owner="me", seen_event_count=1
    )
    row = await event_row(runtime, first)
    assert (row.status, row.outcome, row.error) == ("done", outcome, None)
    assert row.processed_at is not None
    call = await call_row(runtime, "t2")
    assert call.lease_owner == "me" and call.due_at is not None  # still ours, still due

    step = await driver.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.event is not None and step.event.id == second
    assert step.started and step.unfinished == 1 and step.event_count == 2
    assert await driver.finish_and_release(
        second, "failed", [], "1 of 1 rule(s) failed", call_pk=call_pk, owner="me",
        seen_event_count=2,
    )  # fmt: skip
    call = await call_row(runtime, "t2")
    assert (call.lease_owner, call.lease_expires_at, call.due_at) == (None, None, None)
    row = await event_row(runtime, second)
    assert (row.status, row.error) == ("failed", "1 of 1 rule(s) failed")


async def test_release_drop_renew_and_finish(runtime: Runtime, driver: CallStore) -> None:
    event_pk = await store_event(runtime, event="queue", call_id="t4")
    call_pk = await claimed(runtime, event_pk, "me")
    assert not await driver.claim_one(call_pk, "other", LEASE)  # held
    before = (await call_row(runtime, "t4")).lease_expires_at
    assert before is not None
    assert await driver.renew("me", [call_pk], timedelta(minutes=5)) == 1
    assert await driver.renew("other", [call_pk], LEASE) == 0
    assert await driver.renew("me", [], LEASE) == 0
    renewed = (await call_row(runtime, "t4")).lease_expires_at
    assert renewed is not None and renewed > before
    assert not await driver.release(call_pk, "me", 7, None)  # a newer event was seen
    later = utcnow() + timedelta(minutes=1)
    assert await driver.release(call_pk, "me", 1, later)
    call = await call_row(runtime, "t4")
    assert (call.lease_owner, call.due_at) == (None, later)
    assert await driver.claim_one(call_pk, "me", LEASE)
    assert await driver.drop("other", None) == 0
    assert await driver.drop("me", [call_pk + 1000]) == 0
    assert await driver.drop("me", [call_pk]) == 1
    assert (await call_row(runtime, "t4")).lease_owner is None
    assert await driver.claim_one(call_pk, "me", LEASE)
    assert await driver.drop("me", None) == 1

    await driver.start(event_pk, "me")
    await driver.finish(event_pk, "done", None, None)
    row = await event_row(runtime, event_pk)
    assert (row.status, row.attempts, row.worker, row.outcome) == ("done", 1, "me", None)
    assert await driver.executed(event_pk, "call_action") == set()
    await store.record_execution(
        runtime, call_pk, source="call_action", rule_id=3, event_pk=event_pk,
        request={}, response=None, duration_ms=None,
    )  # fmt: skip
    await store.record_execution(
        runtime, call_pk, source="ivr", rule_id=4, event_pk=event_pk,
        request={}, response=None, duration_ms=None,
    )  # fmt: skip
    assert await driver.executed(event_pk, "call_action") == {3}


async def test_an_event_not_due_yet_is_not_started(runtime: Runtime, driver: CallStore) -> None:
    event_pk = await store_event(runtime, event="queue", call_id="t3")
    call_pk = await claimed(runtime, event_pk, "me")
    async with runtime.sessionmaker() as session:  # due in a minute, whatever the pace
        await session.execute(update(CallEvent).values(due_at=utcnow() + timedelta(minutes=1)))
        await session.commit()
    step = await driver.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.event is not None and not step.started
    assert (await event_row(runtime, event_pk)).status == "pending"


async def test_the_claim_leases_due_calls_once(runtime: Runtime, driver: CallStore) -> None:
    """Both drivers lease each due call to one owner; PostgreSQL's claim also takes the
    first step of each (SQLite leaves it to ``take``)."""
    due = await store_event(runtime, event="queue", call_id="c1", tel="0311112222")
    await store_event(runtime, event="queue", call_id="c2")
    await store_event(runtime, event="disconnect", call_id="c2")
    steps = dict(await driver.claim_steps("me", 10, LEASE, max_attempts=5))
    assert len(steps) == 2
    assert {(await call_row(runtime, c)).lease_owner for c in ("c1", "c2")} == {"me"}
    # Nothing is claimed twice.
    assert await driver.claim_steps("other", 10, LEASE, max_attempts=5) == []
    first = steps[(await event_row(runtime, due)).call_pk]
    if runtime.database_kind == "sqlite":
        assert set(steps.values()) == {None}
        return
    assert first is not None and first.started and first.unfinished == 1
    assert first.lease_owner == "me" and first.call.tel == "0311112222"
    assert (await event_row(runtime, due)).status == "processing"
    two = [step for step in steps.values() if step is not first]
    assert two[0] is not None and two[0].unfinished == 2 and two[0].event is not None
    assert two[0].event.event == "queue"


async def test_park_gives_the_attempt_back_and_releases_the_call_until_due(
    runtime: Runtime, driver: CallStore
) -> None:
    event_pk = await store_event(runtime, event="queue", call_id="p1")
    call_pk = await claimed(runtime, event_pk, "me")
    step = await driver.take(call_pk, "me", start=True, max_attempts=5)
    assert step is not None and step.started
    due = utcnow() + timedelta(seconds=30)
    items = [{"rule_id": 1, "status": "parked", "reason": "CRM down"}]
    park = {"key": "crm", "call_pk": call_pk, "owner": "me", "next_due": due}
    assert await driver.park(event_pk, items, "parked: CRM down", seen_event_count=1, **park)
    row = await event_row(runtime, event_pk)
    assert columns(row, "status", "attempts", "worker", "park_key", "outcome", "error") == {
        "status": "pending",
        "attempts": 0,
        "worker": None,
        "park_key": "crm",
        "outcome": items,
        "error": "parked: CRM down",
    }
    assert row.due_at == due and row.parked_at is not None and row.resumed_at is None
    call = await call_row(runtime, "p1")
    assert (call.lease_owner, call.lease_expires_at, call.due_at) == (None, None, due)

    # Parked again while an event arrived: it waits, when it was first parked is kept,
    # and the call stays with the worker.
    assert await driver.claim_one(call_pk, "me", LEASE)
    await driver.start(event_pk, "me")
    await store_event(runtime, event="disconnect", call_id="p1")
    assert not await driver.park(event_pk, None, "parked: again", seen_event_count=1, **park)
    again = await event_row(runtime, event_pk)
    assert (again.status, again.attempts, again.parked_at) == ("pending", 0, row.parked_at)
    assert (await call_row(runtime, "p1")).lease_owner == "me"
    # Finished, it has resumed and stops counting as parked.
    await driver.finish(event_pk, "done", [], None)
    done = await event_row(runtime, event_pk)
    assert (done.park_key, done.resumed_at is not None) == (None, True)
