"""``/api/v1/screen-pops`` (scope admin) and ``/api/v1/agent/events`` (the console's SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.agent_desktop import notes, pops, service
from callbridge.agent_desktop.pops import get_hub
from callbridge.agent_desktop.schemas import (
    ScreenPopCreate,
    ScreenPopRead,
    ScreenPopTest,
    ScreenPopTestResult,
    ScreenPopUpdate,
)
from callbridge.agent_desktop.softphone import softphone_bearer
from callbridge.auth.csrf import CSRF_HEADER, csrf_valid
from callbridge.auth.deps import AdminAccess, optional_user
from callbridge.auth.sessions import (
    BROWSER,
    SESSION_COOKIE,
    SOFTPHONE,
    session_expiry,
    user_for_session,
)
from callbridge.db.session import SessionDep
from callbridge.errors import Forbidden, NotFound, Unauthorized
from callbridge.i18n import language_for, translations
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.kit.time import utcnow
from callbridge.messages import Gettext
from callbridge.messages import render as render_message
from callbridge.models import AgentPop, User
from callbridge.runtime import Runtime, get_runtime

router = APIRouter(prefix="/api/v1/screen-pops", tags=["screen-pops"])


@router.get("", operation_id="list_screen_pops")
async def list_screen_pops(
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ScreenPopRead]:
    profiles, total = await service.page_of_profiles(session, limit=page.limit, offset=page.offset)
    return Page(items=[await service.describe(session, p) for p in profiles], total=total)


@router.post("", status_code=201, operation_id="create_screen_pop")
async def create_screen_pop(
    request: Request, session: SessionDep, principal: AdminAccess, data: ScreenPopCreate
) -> ScreenPopRead:
    profile = await service.create_profile(
        session, data, principal.label, get_runtime(request).secrets
    )
    return await service.describe(session, profile)


@router.get("/{profile_id}", operation_id="get_screen_pop")
async def get_screen_pop(
    session: SessionDep, principal: AdminAccess, profile_id: int
) -> ScreenPopRead:
    return await service.describe(session, await service.get_profile_or_404(session, profile_id))


@router.patch("/{profile_id}", operation_id="update_screen_pop")
async def update_screen_pop(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    profile_id: int,
    data: ScreenPopUpdate,
) -> ScreenPopRead:
    profile = await service.get_profile_or_404(session, profile_id)
    secrets = get_runtime(request).secrets
    await service.update_profile(session, profile, data, principal.label, secrets)
    return await service.describe(session, profile)


@router.post("/{profile_id}/test", operation_id="test_screen_pop")
async def test_screen_pop(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    profile_id: int,
    data: ScreenPopTest,
) -> ScreenPopTestResult:
    """The test panel: a caller's number in; the lookup's requests and the pop that would
    open out. The lookup's own requests (auth, search) are sent; the incoming, answer,
    disconnect and click accesses are expanded and shown, not sent. No call is touched."""
    profile = await service.get_profile_or_404(session, profile_id)
    return await pops.test_profile(get_runtime(request), profile, data)


@router.delete("/{profile_id}", status_code=204, operation_id="delete_screen_pop")
async def delete_screen_pop(
    session: SessionDep, principal: AdminAccess, profile_id: int
) -> Response:
    await service.delete_profile(
        session, await service.get_profile_or_404(session, profile_id), principal.label
    )
    return Response(status_code=204)


# ---- the console's stream ------------------------------------------------------------

events_router = APIRouter(prefix="/api/v1/agent", tags=["agent"])
# A comment line this often keeps proxies from closing an idle stream.
HEARTBEAT_SECONDS = 15.0


def sse_message(pop: AgentPop, gettext: Gettext) -> str:
    """One stored message as SSE. ``lookup_error`` is rendered from its stored message
    in the reading agent's language (a message stored without one keeps its text)."""
    fields = dict(pop.data)
    msg = fields.pop("lookup_error_msg", None)
    if msg is not None:
        fields["lookup_error"] = render_message(
            {"message": fields.get("lookup_error"), "msg": msg}, gettext
        )
    data = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return f"id: {pop.id}\nevent: {pop.kind}\ndata: {data}\n\n"


def reader_gettext(request: Request, user: User) -> Gettext:
    """The agent's language (their setting, else the browser's), as the pages use it."""
    return translations(language_for(request, user.language)).gettext


@events_router.get(
    "/events",
    operation_id="agent_events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def agent_events(request: Request, extension: str | None = None) -> StreamingResponse:
    """The signed-in agent's pops as Server-Sent Events: the console's session cookie, or
    the Open CTI softphone's token (``Authorization: Bearer``). ``Last-Event-ID`` (or
    ``?last_event_id=``) resumes after that message; ``extension``, when given, must be
    the agent's own."""
    runtime = get_runtime(request)
    raw, kind = _credentials(request)
    # Its own short session: a stream must not hold a database connection while it lasts.
    async with runtime.sessionmaker() as session:
        user = await user_for_session(session, raw, kind)
        expires_at = await session_expiry(session, raw, kind)
        await session.commit()
    if user is None or expires_at is None:
        if kind == SOFTPHONE:
            raise Unauthorized(SOFTPHONE_REFUSED)
        raise Unauthorized("sign in first: the agent console's stream needs a session")
    if extension is not None and extension != (user.extension or ""):
        raise Forbidden("this is another agent's stream: agents receive only their own pops")
    user_id = user.id
    gettext = reader_gettext(request, user)
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    hub = get_hub(runtime)
    wake = hub.subscribe(user_id)
    try:
        after = int(last) if last and last.isdigit() else await pops.latest_id(runtime, user_id)
    except BaseException:
        hub.unsubscribe(user_id, wake)
        raise

    async def stream() -> AsyncIterator[str]:
        position = after
        try:
            yield f"retry: 2000\n: connected as {user_id}\n\n"
            while True:
                wake.clear()
                for pop in await pops.messages_after(runtime, user_id, position):
                    position = pop.id
                    yield sse_message(pop, gettext)
                left = (expires_at - utcnow()).total_seconds()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(wake.wait(), min(HEARTBEAT_SECONDS, left))
                except TimeoutError:
                    # Signed out (or deactivated) meanwhile: the stream ends with the session.
                    if utcnow() >= expires_at or not await _still_signed_in(runtime, raw, kind):
                        break
                    yield ": heartbeat\n\n"
            # The session is over: the console stops reconnecting and asks to sign in.
            yield "event: signed_out\ndata: {}\n\n"
        finally:
            hub.unsubscribe(user_id, wake)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _still_signed_in(runtime: Runtime, raw: str | None, kind: str) -> bool:
    async with runtime.sessionmaker() as session:
        return await session_expiry(session, raw, kind) is not None


SOFTPHONE_REFUSED = "the softphone's token is unknown, expired or revoked: pair the softphone again"


def _credentials(request: Request) -> tuple[str | None, str]:
    """The softphone's token when the request carries one, else the session cookie."""
    raw = softphone_bearer(request)
    if raw is not None:
        return raw, SOFTPHONE
    return request.cookies.get(SESSION_COOKIE), BROWSER


async def _agent(request: Request, session: AsyncSession, signed_out: str, expired: str) -> User:
    """The agent sending a card's action: the softphone's token (no CSRF token: a
    browser never adds that header by itself), or the session cookie with the page's
    CSRF token."""
    raw, kind = _credentials(request)
    if kind == SOFTPHONE:
        user = await user_for_session(session, raw, SOFTPHONE)
        if user is None:
            raise Unauthorized(SOFTPHONE_REFUSED)
        return user
    user = await optional_user(request, session)
    if user is None:
        raise Unauthorized(signed_out)
    if not csrf_valid(request, request.headers.get(CSRF_HEADER)):
        raise Forbidden(expired)
    return user


class CallNotes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: Annotated[str, StringConstraints(max_length=32000)] = ""
    wrapup: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class CallNotesSaved(BaseModel):
    call_id: str
    notes: str
    wrapup: str
    history_rows: int


@events_router.post("/calls/{call_id}/notes", operation_id="save_call_notes")
async def save_call_notes(
    request: Request, session: SessionDep, call_id: str, data: CallNotes
) -> CallNotesSaved:
    """The agent's notes and wrap-up for a call that popped on their console (DESIGN
    §12.4): the call's ``NOTES`` and ``WRAPUP`` variables, and the Description of the
    history link's Task (updated when the Task exists already). Session auth and the
    page's CSRF token (header ``X-CSRF-Token``), or the softphone's token."""
    user = await _agent(
        request,
        session,
        "sign in first: call notes are saved by the signed-in agent",
        "the page expired: reload it and save again",
    )
    saved = await notes.save_notes(
        get_runtime(request), session, user, call_id, data.notes, data.wrapup
    )
    return CallNotesSaved(call_id=call_id, notes=data.notes, wrapup=data.wrapup, history_rows=saved)


class ClickSent(BaseModel):
    call_id: str
    status: int | None
    error: str | None


@events_router.post("/calls/{call_id}/click", operation_id="click_card")
async def click_card(request: Request, session: SessionDep, call_id: str) -> ClickSent:
    """The agent clicked a card whose click access callbridge sends (seed 002 クリック時
    アクセス, ``server_get``/``server_post``): sent with the call's values, recorded on the
    call's timeline. Session auth and the page's CSRF token, or the softphone's token.
    404 when no card of that call with such a click access reached this agent."""
    user = await _agent(
        request,
        session,
        "sign in first: the click access is sent for the signed-in agent",
        "the page expired: reload it and click again",
    )
    run = await pops.click(get_runtime(request), user, call_id)
    if run is None:
        raise NotFound(f"no card of call {call_id} with a click access sent by callbridge")
    status = (run.response or {}).get("status")
    error = render_message(run.error, reader_gettext(request, user)) if run.error else None
    return ClickSent(call_id=call_id, status=status, error=error or None)
