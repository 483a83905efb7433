"""The invocation log writer: what it stores, in bulk or one by one, and that nothing
queued is lost (overflow, failures, shutdown)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.ivr import writer as ivr_writer
from callbridge.ivr.engine import IvrRun, StepRun
from callbridge.ivr.writer import InvocationLog, InvocationWriter, store_invocation
from callbridge.kit.time import utcnow
from callbridge.models import Call, CallVariable, Execution
from callbridge.outbound import OutboundError, OutboundResult, RequestView


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


async def test_a_batch_stores_what_one_by_one_stores(app: FastAPI) -> None:
    writer = InvocationWriter(app.state.runtime.sessionmaker)
    logs = [log("c-1"), log("c-2", failed=True), log("c-1", name="CDF 2"), log("c-3")]
    async with app.state.runtime.sessionmaker() as session:
        await ivr_writer.store_invocations(session, logs)
        await session.commit()
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
    assert "guidance: CDF様" in first.notes
    assert executions[1].error == {"kind": "http_status", "message": "HTTP 503"}
    await writer.stop()

    # The per-record path (the call store's own API) stores the same things.
    async with app.state.runtime.sessionmaker() as session:
        await store_invocation(session, log("c-4"))
        await session.commit()
    state = await stored_state(app)
    single = state["executions"][-1]
    for column in ("source", "rule_id", "request", "response", "extracted", "notes", "error"):
        assert getattr(single, column) == getattr(first, column), column


async def test_nothing_is_lost_when_the_queue_overflows(app: FastAPI) -> None:
    writer = InvocationWriter(app.state.runtime.sessionmaker, max_queued=2, batch_size=3)
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
    original = ivr_writer.store_invocations
    calls = {"n": 0}

    original_one = ivr_writer.store_invocation

    async def flaky(session: Any, logs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup")
        await original(session, logs)

    async def poisoned(session: Any, log: Any) -> None:
        if log.call_id == "poison":
            raise RuntimeError("this record cannot be stored")
        await original_one(session, log)

    monkeypatch.setattr(ivr_writer, "store_invocations", flaky)
    monkeypatch.setattr(ivr_writer, "store_invocation", poisoned)
    monkeypatch.setattr(ivr_writer, "_RETRY_DELAYS", (0.0, 0.0))
    writer = InvocationWriter(app.state.runtime.sessionmaker)
    for call_id in ("a", "poison", "b"):
        writer.submit(log(call_id))
    await writer.flush()
    state = await stored_state(app)
    assert set(state["calls"]) == {"a", "b"}
    assert writer.written == 2 and writer.failed == 1


async def test_stop_writes_what_is_queued(app: FastAPI) -> None:
    writer = InvocationWriter(app.state.runtime.sessionmaker)
    writer.start()
    writer.submit(log("x-1"))
    writer.submit(log("x-2"))
    await writer.stop()
    writer.submit(log("x-3"))  # after stop: written by the next flush, not dropped
    await writer.flush()
    assert set((await stored_state(app))["calls"]) == {"x-1", "x-2", "x-3"}


async def test_the_writer_lingers_for_a_batch_but_a_flush_does_not_wait(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    original = ivr_writer.store_invocations

    async def counted(session: Any, logs: Any) -> None:
        batches.append(len(logs))
        await original(session, logs)

    monkeypatch.setattr(ivr_writer, "store_invocations", counted)
    # A minute's linger: the test would time out if the flush waited for it.
    writer = InvocationWriter(app.state.runtime.sessionmaker, linger=60)
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
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = asyncio.Event()
    original = ivr_writer.store_invocations

    async def noted(session: Any, logs: Any) -> None:
        await original(session, logs)
        written.set()

    monkeypatch.setattr(ivr_writer, "store_invocations", noted)
    writer = InvocationWriter(app.state.runtime.sessionmaker, batch_size=3, linger=60)
    writer.start()
    for n in range(3):
        writer.submit(log(f"f-{n}"))
    async with asyncio.timeout(10):
        await written.wait()  # the batch went out with no flush and no stop
    await writer.stop()
    assert writer.written == 3
