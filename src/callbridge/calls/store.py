"""The call store as other features use it: its driver, call variables, execution
records, and the extension points of the call page and ``GET /api/v1/calls/{call_id}``.

Every write goes through the database's driver (``callstore.CallStore``) and commits on
its own; reads take the caller's session. Typical use::

    call_pk = await ensure_call(runtime, "1700000000.42", tel="0312345678")
    await set_variables(runtime, call_pk, {"RESPONSE_NAME": "CDF 株式会社"}, source="ivr:main")
    await record_execution(runtime, call_pk, source="ivr", label="IVR main",
                           request=result.request.as_dict(),
                           response=result.response_record(), duration_ms=result.elapsed_ms,
                           extracted={"RESPONSE_NAME": "CDF 株式会社"}, error=None)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls import repository
from callbridge.calls.callstore import CALL_DETAILS, CallStore
from callbridge.calls.pg_store import PgCallStore
from callbridge.calls.sqlite_store import SqliteCallStore
from callbridge.kit.time import utcnow
from callbridge.models.call import Call
from callbridge.runtime import Runtime

RESPONSE_PREFIX = "RESPONSE_"
# Execution records keep at most this much of a response body (the rest is cut and the
# record says "truncated").
MAX_RECORDED_BODY = 64 * 1024
_KEY = "calls.call_store"


def call_store(runtime: Runtime) -> CallStore:
    """The runtime's call store driver (created on first use, closed by
    ``close_call_store`` after everything that writes through it has stopped)."""
    found: CallStore | None = runtime.extras.get(_KEY)
    if found is None:
        driver = PgCallStore if runtime.database_kind == "postgresql" else SqliteCallStore
        found = runtime.extras[_KEY] = driver.of(runtime)
    return found


async def close_call_store(runtime: Runtime) -> None:
    found: CallStore | None = runtime.extras.pop(_KEY, None)
    if found is not None:
        await found.close()


async def ensure_call(runtime: Runtime, call_id: str, **details: str | None) -> int:
    """The primary key of the call ``call_id``, created (without events) when new.

    ``details`` (``tel``, ``called``, ``unique_id``…) are used only when the call is new;
    events the PBX posts later fill in the rest.
    """
    values = {k: v for k, v in details.items() if k in CALL_DETAILS and v is not None}
    return await call_store(runtime).ensure_call(call_id, values)


async def find_call(session: AsyncSession, call_id: str) -> Call | None:
    return await repository.get_call_by_call_id(session, call_id)


async def get_variables(session: AsyncSession, call_pk: int) -> dict[str, str]:
    """Every variable stored on the call, by full name (``RESPONSE_CONTACT_ID``)."""
    return await repository.variables_of(session, call_pk)


async def set_variables(
    runtime: Runtime, call_pk: int, values: Mapping[str, str], *, source: str
) -> None:
    """Store (or overwrite) variables on the call; later events see them.

    Names are stored as given: extracted values are ``RESPONSE_<NAME>``.
    ``source`` says who set them (``rule:12``, ``ivr:main``), shown on the timeline.
    """
    await call_store(runtime).set_variables(call_pk, values, source[:100])


def response_variables(extracted: Mapping[str, str]) -> dict[str, str]:
    """``{"CASE_ID": v}`` → ``{"RESPONSE_CASE_ID": v}`` (names already prefixed stay)."""
    return {
        name if name.startswith(RESPONSE_PREFIX) else RESPONSE_PREFIX + name: value
        for name, value in extracted.items()
    }


async def record_execution(
    runtime: Runtime,
    call_pk: int,
    *,
    variables: Mapping[str, str] | None = None,
    variables_source: str = "",
    **execution: Any,
) -> int:
    """Log one outbound request made for the call (the arguments of
    :func:`execution_values`) and store the ``variables`` it extracted, atomically; it
    appears on the call's timeline and in ``GET /api/v1/calls/{call_id}``. Returns the
    execution's id."""
    values = execution_values(call_pk, **execution)
    return await call_store(runtime).record_step(values, variables or {}, variables_source[:100])


def execution_values(
    call_pk: int,
    *,
    source: str,
    request: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    duration_ms: float | None,
    extracted: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
    rule_id: int | None = None,
    label: str = "",
    event: str | None = None,
    event_pk: int | None = None,
    attempt: int = 1,
    attempts: list[dict[str, Any]] | None = None,
    notes: list[str | dict[str, Any]] | None = None,
    at: datetime | None = None,
    outcome: str | None = None,
    rerun_of: int | None = None,
) -> dict[str, Any]:
    """An execution record's columns. ``request`` must already be redacted (the outbound
    result's ``request.as_dict()``); ``response`` is capped to
    :data:`MAX_RECORDED_BODY`. An ``error`` (``{"kind", "message"}``) counts the call as
    having errors. ``attempts``: each exchange on the wire (``[a.as_dict() for a in
    result.attempts]``); ``notes``: hints shown with it (text, or a catalogue message as
    ``callbridge.messages.stored()`` keeps it); ``outcome``: an IVR answer's outcome, on
    the invocation's last execution; ``rerun_of``: the execution a re-run repeated."""
    return {
        "call_pk": call_pk,
        "event_pk": event_pk,
        "source": source,
        "rule_id": rule_id,
        "label": label[:300],
        "event": event,
        "attempt": attempt,
        "request": dict(request),
        "response": cap_response(response),
        "duration_ms": duration_ms,
        "extracted": dict(extracted or {}),
        "error": dict(error) if error is not None else None,
        "attempts": list(attempts or []),
        "notes": list(notes or []),
        "at": at or utcnow(),
        "outcome": outcome,
        "rerun_of": rerun_of,
    }


def cap_response(response: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if response is None:
        return None
    capped = dict(response)
    body = capped.get("body")
    if isinstance(body, str) and len(body) > MAX_RECORDED_BODY:
        capped["body"] = body[:MAX_RECORDED_BODY]
        capped["truncated"] = True
    capped.setdefault("truncated", False)
    return capped


# ---- extension points of the call view --------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """Something a feature wants shown on a call's timeline (a recording uploaded…)."""

    at: datetime
    title: str  # a msgid, translated when shown
    detail: str = ""
    link: str | None = None


TimelineProvider = Callable[[AsyncSession, Call], Awaitable[list[TimelineEntry]]]
DetailProvider = Callable[[AsyncSession, Call], Awaitable[Any]]

# Features append here at import time (recordings: ``TIMELINE_PROVIDERS.append(...)``).
TIMELINE_PROVIDERS: list[TimelineProvider] = []
# Name → provider of a field of ``GET /api/v1/calls/{call_id}``; "recording" is null
# until the recordings feature registers it.
DETAIL_PROVIDERS: dict[str, DetailProvider] = {}
