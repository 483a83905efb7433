"""The invocation log writer: what it stores, in bulk or one by one, and that nothing
queued is lost (overflow, failures, shutdown)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.calls import store
from callbridge.calls.callstore import from_db_time
from callbridge.ivr import writer as ivr_writer
from callbridge.ivr.engine import IvrRun, StepRun
from callbridge.ivr.runtime import get_ivr_runtime
from callbridge.ivr.writer import (
    InvocationLog,
    InvocationWriter,
    PendingInvocation,
    pending_invocation,
)
from callbridge.kit.time import utcnow
from callbridge.models import Call, CallVariable, Execution
from callbridge.outbound import OutboundError, OutboundResult, RequestView
from callbridge.runtime import Runtime


def result(status: int | None = 200, error: OutboundError | None = None) -> OutboundResult:
    return OutboundResult(
        request=RequestView.build(
            "GET",
            "https://crm.example.com/lookup?tel=1",
            [("Authorization", "Bearer secret-token")],
            None,
            ["secret-token"],
        ),
        status=status,
        headers=(("content-type", "application/json"),) if status else (),
        text='{"name":"CDF"}' if status else "",
        content=b'{"name":"CDF"}' if status else b"",
        binary=False,
        truncated=False,
        elapsed_ms=12.5,
        error=error,
        attempts=(),
    )


def log(call_id: str, *, failed: bool = False, name: str = "CDF") -> InvocationLog:
    step = StepRun("main", utcnow())
    if failed:
        step.result = result(503, OutboundError("http_status", "HTTP 503"))
        step.error = {"kind": "http_status", "message": "HTTP 503"}
        answer = {"outcome": "request_error", "transfer": {"kind": "end_rule"}}
        stored: dict[str, str] = {}
    else:
        step.result = result()
        step.extracted = {"RESPONSE_NAME": name}
        answer = {
            "outcome": "matched",
            "matched_priority": 2,
            "guidance": {"type": "tts", "text": f"{name}様"},
            "transfer": {"kind": "callcenter", "target": "support"},
        }
        stored = {"RESPONSE_NAME": name}
    run = IvrRun(answer=answer, steps=[step], stored=stored, duration_ms=13.0)
    return InvocationLog(call_id, "0312345678", None, None, 7, "lookup", "代表", run, utcnow())


async def stored_state(app: FastAPI) -> dict[str, Any]:
    async with app.state.runtime.sessionmaker() as session:
        calls = {c.call_id: c for c in await session.scalars(select(Call))}
        variables = {
            (v.call_pk, v.name): (v.value, v.source)
            for v in await session.scalars(select(CallVariable))
        }
        executions = list(await session.scalars(select(Execution).order_by(Execution.id)))
    return {"calls": calls, "variables": variables, "executions": executions}


async def test_what_an_invocation_stores(app: FastAPI) -> None:
    writer = InvocationWriter(ivr_writer.batch_store(app.state.runtime))
    for item in (log("c-1"), log("c-2", failed=True), log("c-1", name="CDF 2"), log("c-3")):
        writer.submit(item)
    await writer.flush()
    state = await stored_state(app)
    assert set(state["calls"]) == {"c-1", "c-2", "c-3"}
    assert state["calls"]["c-1"].tel == "0312345678"
    assert state["calls"]["c-2"].error_count == 1
    assert state["calls"]["c-1"].error_count == 0
    c1 = state["calls"]["c-1"].id
    assert state["variables"][(c1, "RESPONSE_NAME")] == ("CDF 2", "ivr:lookup")
    executions = state["executions"]
    assert len(executions) == 4
    first = executions[0]
    assert first.source == "ivr" and first.rule_id == 7
    assert first.label == "IVR lookup (代表): main — matched priority 2, callcenter support"
    assert first.request["headers"]["Authorization"] == "Bearer [redacted]"
    assert first.response["status"] == 200 and first.response["truncated"] is False
    assert first.extracted == {"RESPONSE_NAME": "CDF"}
    assert "guidance: CDF様" in [note["message"] for note in first.notes]
    assert executions[1].error == {"kind": "http_status", "message": "HTTP 503"}
    assert [e.outcome for e in executions] == ["matched", "request_error", "matched", "matched"]
    await writer.stop()


def _columns(execution: Execution) -> dict[str, Any]:
    names = ("source", "rule_id", "label", "attempt", "request", "response", "duration_ms")
    more = ("extracted", "error", "attempts", "notes", "at", "event", "event_pk", "outcome")
    return {name: getattr(execution, name) for name in names + more}


async def store_one_by_one(runtime: Runtime, item: PendingInvocation) -> None:
    """An invocation through the call store's record-at-a-time operations."""
    call_pk = await store.ensure_call(
        runtime, item.call_id, tel=item.tel, called=item.called, tel_name=item.tel_name
    )
    await store.set_variables(runtime, call_pk, item.variables, source=item.source)
    for text in item.executions:
        record = json.loads(text)
        del record["call_id"]
        record["at"] = from_db_time(record["at"])
        await store.record_execution(runtime, call_pk, **record)


async def test_the_database_batch_stores_what_the_call_store_api_stores(app: FastAPI) -> None:
    """The batch statement (JSON documents decoded by the database) against the call
    store's record-at-a-time operations, one invocation at a time."""
    runtime = app.state.runtime
    bulk = ivr_writer.batch_store(runtime)
    quoted = 'a "quoted" \\ name, 改行\nあり'
    two_steps = log("b-2", name="two")
    two_steps.run.steps.insert(0, replace(two_steps.run.steps[0], name="first"))
    logs = [
        log("b-1"),
        log("b-2", failed=True),
        log("b-1", name="CDF 2"),
        log("b-3", name=quoted),
        two_steps,  # only the last execution of an invocation carries the notes
    ]
    await store.ensure_call(runtime, "b-3", tel="0999")  # exists already, no errors yet
    await bulk([pending_invocation(item) for item in logs])
    batch = await stored_state(app)
    for item in logs:
        await store_one_by_one(
            runtime, pending_invocation(replace(item, call_id=f"ref-{item.call_id}"))
        )
    state = await stored_state(app)
    calls = state["calls"]
    for call_id in ("b-1", "b-2", "b-3"):
        got, want = calls[call_id], calls[f"ref-{call_id}"]
        assert (got.tel, got.called, got.tel_name, got.error_count, got.event_count) == (
            (want.tel if call_id != "b-3" else "0999"),
            want.called,
            want.tel_name,
            want.error_count,
            want.event_count,
        ), call_id
        assert got.started_at is not None and got.due_at is None
    variables = state["variables"]
    assert variables[(calls["b-1"].id, "RESPONSE_NAME")] == ("CDF 2", "ivr:lookup")
    assert variables[(calls["b-3"].id, "RESPONSE_NAME")] == (quoted, "ivr:lookup")
    by_call = {call.id: call.call_id for call in calls.values()}
    got_rows = list(batch["executions"])
    want_rows = [e for e in state["executions"] if by_call[e.call_pk].startswith("ref-")]
    order = ["b-1", "b-2", "b-1", "b-3", "b-2", "b-2"]
    assert [by_call[e.call_pk] for e in got_rows] == order
    assert [by_call[e.call_pk] for e in want_rows] == [f"ref-{c}" for c in order]
    assert got_rows[4].notes == [] and got_rows[5].notes
    # The answer's outcome, once an invocation (on its last execution).
    outcomes = ["matched", "request_error", "matched", "matched", None, "matched"]
    assert [e.outcome for e in got_rows] == outcomes
    for got_row, want_row in zip(got_rows, want_rows, strict=True):
        assert _columns(got_row) == _columns(want_row)
    assert got_rows[1].error == {"kind": "http_status", "message": "HTTP 503"}
    assert got_rows[0].error is None and got_rows[0].response["truncated"] is False


async def test_the_database_batch_adds_to_a_call_s_errors_and_overwrites_variables(
    app: FastAPI,
) -> None:
    runtime = app.state.runtime
    bulk = ivr_writer.batch_store(runtime)
    first = [log("e-1", failed=True), log("e-1", name="first")]
    second = [log("e-1", failed=True), log("e-1", failed=True), log("e-1", name="second")]
    await bulk([pending_invocation(item) for item in first])
    await bulk([pending_invocation(item) for item in second])
    state = await stored_state(app)
    call = state["calls"]["e-1"]
    assert call.error_count == 3
    assert state["variables"][(call.id, "RESPONSE_NAME")] == ("second", "ivr:lookup")
    assert len(state["executions"]) == 5
    assert [e.id for e in state["executions"]] == sorted(e.id for e in state["executions"])


async def test_the_writer_sends_its_batches_to_the_database_batch(app: FastAPI) -> None:
    """The runtime's writer uses the batch statement (not the ORM path) and stores every
    invocation submitted."""
    writer = get_ivr_runtime(app.state.runtime).writer
    for n in range(7):
        writer.submit(log(f"w-{n}"))
    await writer.flush()
    state = await stored_state(app)
    assert {f"w-{n}" for n in range(7)} <= set(state["calls"])
    assert len(state["executions"]) == 7


async def test_nothing_is_lost_when_the_queue_overflows(app: FastAPI) -> None:
    writer = InvocationWriter(ivr_writer.batch_store(app.state.runtime), max_queued=2, batch_size=3)
    writer.start()
    for n in range(25):
        writer.submit(log(f"c-{n}"))
    await writer.stop()
    state = await stored_state(app)
    assert len(state["calls"]) == 25 and len(state["executions"]) == 25
    assert writer.written == 25 and writer.failed == 0


async def test_a_failed_batch_is_retried_record_by_record(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ivr_writer.batch_store(app.state.runtime)
    batches: list[list[str]] = []

    async def flaky(items: Sequence[PendingInvocation]) -> None:
        batches.append([item.call_id for item in items])
        if len(batches) == 1:
            raise RuntimeError("database hiccup")
        if any(item.call_id == "poison" for item in items):
            raise RuntimeError("this record cannot be stored")
        await real(items)

    monkeypatch.setattr(ivr_writer, "_RETRY_DELAYS", (0.0, 0.0))
    writer = InvocationWriter(flaky)
    for call_id in ("a", "poison", "b"):
        writer.submit(log(call_id))
    await writer.flush()
    state = await stored_state(app)
    assert set(state["calls"]) == {"a", "b"}
    assert writer.written == 2 and writer.failed == 1
    assert batches == [["a", "poison", "b"], ["a"], *[["poison"]] * 3, ["b"]]


async def test_stop_writes_what_is_queued(app: FastAPI) -> None:
    writer = InvocationWriter(ivr_writer.batch_store(app.state.runtime))
    writer.start()
    writer.submit(log("x-1"))
    writer.submit(log("x-2"))
    await writer.stop()
    writer.submit(log("x-3"))  # after stop: written by the next flush, not dropped
    await writer.flush()
    assert set((await stored_state(app))["calls"]) == {"x-1", "x-2", "x-3"}


async def test_the_writer_lingers_for_a_batch_but_a_flush_does_not_wait(
    app: FastAPI,
) -> None:
    batches: list[int] = []
    real = ivr_writer.batch_store(app.state.runtime)

    async def counted(items: Sequence[PendingInvocation]) -> None:
        batches.append(len(items))
        await real(items)

    # A minute's linger: the test would time out if the flush waited for it.
    writer = InvocationWriter(counted, linger=60)
    writer.start()
    for n in range(5):
        writer.submit(log(f"l-{n}"))
        await asyncio.sleep(0)  # the writer task runs between submissions
    async with asyncio.timeout(10):
        await writer.flush()
    assert batches == [5]  # one transaction, not one per invocation
    async with asyncio.timeout(10):
        await writer.stop()
    assert writer.written == 5


async def test_a_full_batch_is_written_without_waiting_for_the_linger(
    app: FastAPI,
) -> None:
    written = asyncio.Event()
    real = ivr_writer.batch_store(app.state.runtime)

    async def noted(items: Sequence[PendingInvocation]) -> None:
        await real(items)
        written.set()

    writer = InvocationWriter(noted, batch_size=3, linger=60)
    writer.start()
    for n in range(3):
        writer.submit(log(f"f-{n}"))
    async with asyncio.timeout(10):
        await written.wait()  # the batch went out with no flush and no stop
    await writer.stop()
    assert writer.written == 3
