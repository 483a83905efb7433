"""The test panel: run a stored IVR on sample caller data and explain every decision,
without touching any stored call. The JSON API and the UI's simulator both use it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from callbridge.ivr import service
from callbridge.ivr.compiler import CompiledIvr, IvrInvalid
from callbridge.ivr.engine import InvokeInputs, IvrRun, outcome_message, run_ivr
from callbridge.ivr.runtime import get_ivr_runtime
from callbridge.ivr.schemas import (
    IvrTestRequest,
    IvrTestResult,
    ResponseCheckOut,
    StepTrace,
)
from callbridge.messages import Message, define
from callbridge.models.ivr import Ivr
from callbridge.outbound import get_outbound
from callbridge.runtime import get_runtime


async def run_test(
    session: AsyncSession, conn: HTTPConnection, ivr: Ivr, data: IvrTestRequest
) -> IvrTestResult:
    described = await service.describe(session, ivr)
    try:
        compiled = service.compile_for_run(ivr, get_runtime(conn).secrets)
    except IvrInvalid as exc:
        return IvrTestResult(
            call_id=data.call_id or "test",
            outcome="request_error",
            matched_priority=None,
            guidance=None,
            transfer={"kind": "end_rule"},
            variables={},
            steps=[],
            responses=[],
            warnings=described.warnings,
            error={"kind": "invalid", "message": str(exc)},
            duration_ms=0.0,
            request=None,
            response=None,
            extracted={},
        )
    system = await get_ivr_runtime(conn).system(session)
    inputs = InvokeInputs(
        call_id=data.call_id or "test",
        tel=data.tel or None,
        called=data.called or None,
        tel_name=data.tel_name or None,
        digits=data.digits or None,
    )
    run = await run_ivr(
        compiled,
        inputs,
        outbound=get_outbound(conn),
        call_values=data.variables,
        system_urls={"SVADDR": system.svaddr},
        tz=system.tz,
        send=data.send,
    )
    return explain(compiled, run, described.warnings)


define(
    {
        "step_not_run": "not run: the invocation ended before it",
        "answer_is": "the answer is {outcome}",
    }
)


def explain(compiled: CompiledIvr, run: IvrRun, warnings: Any) -> IvrTestResult:
    steps = [
        StepTrace(
            name=step.name,
            skipped=step.skipped.text if step.skipped else None,
            skipped_msg=step.skipped.to_json() if step.skipped else None,
            request=step.request_record(),
            response=step.result.response_record() if step.result is not None else None,
            duration_ms=step.duration_ms(),
            extracted=step.extracted,
            error=step.error,
        )
        for step in run.steps
    ]
    for request in compiled.requests[len(run.steps) :]:
        steps.append(StepTrace.skipped_by(request.name, Message("step_not_run")))
    checked = {check.priority: check for check in run.checks}
    responses = []
    for setting in compiled.responses:
        check = checked.get(setting.priority)
        if check is not None:
            responses.append(ResponseCheckOut.of(check.priority, check.matched, check.said))
        else:
            responses.append(
                ResponseCheckOut.of(
                    setting.priority,
                    None,
                    Message("answer_is", outcome=outcome_message(run.outcome)),
                )
            )
    last_response = next((s.response for s in reversed(steps) if s.response is not None), None)
    return IvrTestResult(
        **run.answer,
        steps=steps,
        responses=responses,
        warnings=warnings,
        error=run.error,
        duration_ms=run.duration_ms,
        request=steps[0].request if steps else None,
        response=last_response,
        extracted=dict(run.stored),
    )
