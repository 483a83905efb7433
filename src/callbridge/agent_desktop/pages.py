"""The agent console page ``/agent`` (DESIGN §12.1): where an agent lands after signing in."""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import add_template_dir, gettext_for, is_htmx, render
from callbridge.agent_desktop import softphone
from callbridge.auth.deps import AdminUser, CsrfChecked, CurrentUser
from callbridge.auth.sessions import SOFTPHONE, count_sessions, end_sessions
from callbridge.db.session import SessionDep
from callbridge.errors import Conflict
from callbridge.models import User
from callbridge.runtime import get_runtime
from callbridge.system_settings.service import get_system_settings

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")


async def _console(
    request: Request,
    session: AsyncSession,
    user: User | None,
    opencti: bool,
    script: str | None,
    template: str = "agent/console.html",
    code: tuple[str, object] | None = None,
) -> Response:
    """The console (``user`` signed in by the cookie), or the softphone page (no user:
    it signs in with its own token, in the browser)."""
    return await render(
        request,
        template,
        {
            "extension": user.extension if user else None,
            "agent_id": user.agent_id if user else None,
            "opencti": opencti,
            "opencti_script": script,
            "softphones": await count_sessions(session, user.id, SOFTPHONE) if user else 0,
            "softphone_code": code[0] if code else None,
            "softphone_expires": code[1] if code else None,
            "code_minutes": softphone.CODE_MINUTES,
        },
        user=user,
        session=session,
        active="agent",
    )


@router.get("/agent")
async def agent_console(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return await _console(request, session, user, opencti=False, script=None)


@router.post("/agent/softphone-code", dependencies=[CsrfChecked])
async def softphone_code(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The button "Connect Salesforce softphone": a one-time pairing code for the softphone page,
    shown once (only its hash is stored)."""
    code = await softphone.new_code(session, user)
    template = "agent/_softphone.html" if is_htmx(request) else "agent/console.html"
    return await _console(request, session, user, False, None, template, code)


@router.post("/agent/softphone-disconnect", dependencies=[CsrfChecked])
async def softphone_disconnect(
    request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """The agent signs out every softphone of theirs (the console stays signed in)."""
    await end_sessions(session, user.id, SOFTPHONE)
    template = "agent/_softphone.html" if is_htmx(request) else "agent/console.html"
    return await _console(request, session, user, False, None, template)


# Salesforce hands the softphone its origin (``sfdcIframeOrigin``); only Salesforce's
# own domains may supply the Open CTI script.
_SALESFORCE_ORIGIN = re.compile(
    r"^https://[A-Za-z0-9.-]+\.(force\.com|salesforce\.com|salesforce-setup\.com)$"
)


@router.get("/agent/opencti")
async def opencti_softphone(
    request: Request, session: SessionDep, sfdcIframeOrigin: str = ""
) -> Response:
    """The console as an Open CTI softphone (DESIGN §12.1): the same cards, popped with
    ``sforce.opencti.screenPop`` instead of a browser tab. No cookie is needed (none is
    sent inside Salesforce's iframe): the page asks for a pairing code and keeps its
    own token (agent_desktop.softphone)."""
    origin = sfdcIframeOrigin.rstrip("/")
    script = (
        f"{origin}/support/api/{OPENCTI_API_VERSION}/lightning/opencti_min.js"
        if _SALESFORCE_ORIGIN.match(origin)
        else None
    )
    return await _console(request, session, None, opencti=True, script=script)


@router.get("/agent/callcenter.xml")
async def call_center_definition(
    request: Request, session: SessionDep, user: AdminUser
) -> Response:
    """The call center definition to import in Salesforce (Setup → Call Centers → Import)."""
    current = await get_system_settings(session, get_runtime(request).settings)
    public_url = (current.public_url or "").rstrip("/")
    if not public_url.startswith("https://"):
        _ = gettext_for(request, user)
        raise Conflict(
            _(
                "Set an https public URL in the settings first: "
                "Salesforce accepts only an https adapter URL."
            )
        )
    body = CALL_CENTER_XML.format(adapter_url=escape(f"{public_url}/agent/opencti"))
    return Response(
        body,
        media_type="application/xml",
        headers={"Content-Disposition": 'attachment; filename="callbridge-callcenter.xml"'},
    )


OPENCTI_API_VERSION = "59.0"
CALL_CENTER_XML = (Path(__file__).resolve().parent / "callcenter.xml").read_text("utf-8")
