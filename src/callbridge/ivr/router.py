"""JSON API: the ``ivrs`` configuration resource (scope admin), its test endpoint, and the
PBX's ``POST /api/v1/ivr/{key}/invoke`` (scope pbx)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from callbridge.auth.deps import AdminAccess
from callbridge.calls.ingest import InvalidEvent, parse_fields, read_limited_body
from callbridge.calls.pbx_auth import PbxToken, pbx_token
from callbridge.db.session import SessionDep
from callbridge.hot_routes import hot_route
from callbridge.ivr import repository, service
from callbridge.ivr.compiler import IvrInvalid
from callbridge.ivr.engine import InvokeInputs, IvrRun, run_ivr
from callbridge.ivr.runtime import get_ivr_runtime
from callbridge.ivr.schemas import (
    InvokeAnswer,
    InvokeRequest,
    IvrCreate,
    IvrRead,
    IvrTestRequest,
    IvrTestResult,
    IvrUpdate,
)
from callbridge.ivr.testing import run_test
from callbridge.ivr.writer import InvocationLog
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.outbound import get_outbound
from callbridge.runtime import get_runtime

logger = logging.getLogger("callbridge.ivr")

router = APIRouter(tags=["ivrs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No IVR with this key"},
    422: {"description": "Invalid fields, with their paths and positions"},
}


# ---- configuration -----------------------------------------------------------------------


def forget_ivr(request: Request, *keys: str) -> None:
    """A saved change is used by this process's next invocation, other processes' within
    ``REVISION_TTL``."""
    ivr_runtime = get_ivr_runtime(request)
    for key in keys:
        ivr_runtime.forget(key)


@router.get("/api/v1/ivrs", operation_id="list_ivrs")
async def list_ivrs(
    session: SessionDep, principal: AdminAccess, page: Annotated[PageParams, Depends(page_params)]
) -> Page[IvrRead]:
    rows, total = await repository.list_ivrs(session, page.limit, page.offset)
    available = await service.available_response_names(session)
    return Page(
        items=[await service.describe(session, ivr, available) for ivr in rows], total=total
    )


@router.post("/api/v1/ivrs", status_code=201, operation_id="create_ivr", responses=_ERRORS)
async def create_ivr(
    request: Request, session: SessionDep, principal: AdminAccess, data: IvrCreate
) -> IvrRead:
    return await service.create_ivr(session, data, get_runtime(request).secrets, principal.label)


@router.get("/api/v1/ivrs/{key}", operation_id="get_ivr", responses=_ERRORS)
async def get_ivr(session: SessionDep, principal: AdminAccess, key: str) -> IvrRead:
    """``key`` is the IVR's key (or its numeric id)."""
    return await service.describe(session, await service.get_ivr_or_404(session, key))


@router.patch("/api/v1/ivrs/{key}", operation_id="update_ivr", responses=_ERRORS)
async def update_ivr(
    request: Request, session: SessionDep, principal: AdminAccess, key: str, data: IvrUpdate
) -> IvrRead:
    ivr = await service.get_ivr_or_404(session, key)
    old_key = ivr.key
    updated = await service.update_ivr(
        session, ivr, data, get_runtime(request).secrets, principal.label
    )
    forget_ivr(request, old_key, updated.key)
    return updated


@router.delete("/api/v1/ivrs/{key}", status_code=204, operation_id="delete_ivr", responses=_ERRORS)
async def delete_ivr(
    request: Request, session: SessionDep, principal: AdminAccess, key: str
) -> Response:
    ivr = await service.get_ivr_or_404(session, key)
    await service.delete_ivr(session, ivr, principal.label)
    forget_ivr(request, ivr.key)
    return Response(status_code=204)


@router.post("/api/v1/ivrs/{key}/test", operation_id="test_ivr", responses=_ERRORS)
async def test_ivr_endpoint(
    request: Request, session: SessionDep, principal: AdminAccess, key: str, data: IvrTestRequest
) -> IvrTestResult:
    """Run the IVR on sample caller data: each step's request and response, why each
    response setting matched or not, the final guidance and transfer. No call is stored."""
    ivr = await service.get_ivr_or_404(session, key)
    return await run_test(session, request, ivr, data)


# ---- invoke --------------------------------------------------------------------------------


async def _arrival(request: Request) -> float:
    """When the PBX's request arrived, on the loop's clock: the answer is due by then plus
    the IVR's timeout, whatever the authentication and the database cost before."""
    return asyncio.get_running_loop().time()


Arrival = Annotated[float, Depends(_arrival)]

_INVOKE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": InvokeRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    **InvokeRequest.model_json_schema(),
                    "description": "The same fields; extra variables as variables[NAME]=value",
                }
            },
        },
    }
}


def _json(answer: dict[str, Any]) -> Response:
    return Response(
        json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
        media_type="application/json",
    )


async def _read_invoke(request: Request) -> InvokeRequest:
    fields = await parse_fields(request, await read_limited_body(request))
    try:
        return InvokeRequest.model_validate(fields)
    except ValidationError as exc:
        errors = [
            {
                "loc": ["body", *error["loc"]],
                "msg": str(error["msg"]).removeprefix("Value error, "),
                "type": error["type"],
            }
            for error in exc.errors(include_url=False)
        ]
        raise InvalidEvent(errors) from None


INVOKE_PATH = "/api/v1/ivr/{key}/invoke"


@router.post(
    INVOKE_PATH,
    operation_id="invoke_ivr",
    response_model=InvokeAnswer,
    responses={
        404: {"description": "No IVR with this key"},
        413: {"description": "Body over 64 KiB"},
        415: {"description": "Neither JSON nor a form"},
        422: {"description": "call_id missing or a field invalid"},
    },
    openapi_extra=_INVOKE_BODY,
)
async def invoke_ivr(arrival: Arrival, request: Request, token: PbxToken, key: str) -> Response:
    """The PBX asks what to say and where to send the caller; the answer arrives within
    the IVR's timeout (plus a few milliseconds) whatever the CRM does.

    The answer path writes nothing and, once the token and the IVR are known to this
    process, reads nothing from the database: a valid token is remembered a few seconds
    (as on the call-event ingest), the compiled IVR for ``REVISION_TTL``; the invocation
    log is written after the answer."""
    return await invoke(request, key, arrival)


async def hot_invoke(request: Request) -> Response:
    """``invoke_ivr`` on the lean path (callbridge.hot_routes): the same checks in the
    same order, without FastAPI's dependency solving."""
    arrival = asyncio.get_running_loop().time()
    await pbx_token(request)
    return await invoke(request, request.path_params["key"], arrival)


HOT_ROUTE = hot_route(INVOKE_PATH, hot_invoke)


async def invoke(request: Request, key: str, arrival: float) -> Response:
    data = await _read_invoke(request)
    ivr_runtime = get_ivr_runtime(request)
    inputs = InvokeInputs(
        call_id=data.call_id,
        tel=data.tel,
        called=data.called,
        tel_name=data.tel_name,
        digits=data.digits,
        variables=data.variables,
    )
    try:
        compiled = await ivr_runtime.compiled(key)
    except IvrInvalid as exc:
        logger.error("IVR %s cannot run: %s", key, exc)
        return _json(
            {
                "call_id": data.call_id,
                "outcome": "request_error",
                "matched_priority": None,
                "guidance": None,
                "transfer": {"kind": "end_rule"},
                "variables": {},
            }
        )
    call_values: dict[str, str] = {}
    if compiled.needs_call_store:
        # A short read-only session: no database connection is held while the CRM answers
        # (hundreds of invocations may be waiting on it at once).
        async with get_runtime(request).sessionmaker() as session:
            call_values = await service.call_values(session, data.call_id)
    system = await ivr_runtime.system()
    run: IvrRun = await run_ivr(
        compiled,
        inputs,
        outbound=get_outbound(request),
        call_values=call_values,
        system_urls={"SVADDR": system.svaddr},
        tz=system.tz,
        started=arrival,
    )
    log = InvocationLog.of(inputs, compiled, run)
    # Queued by the event loop's next turn: the answer, written to the socket in this
    # one, does not wait for the run to be reduced to what is stored (tens of µs), and
    # the log is queued whatever happens to the connection.
    asyncio.get_running_loop().call_soon(ivr_runtime.writer.submit, log)
    return _json(run.answer)
