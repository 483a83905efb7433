"""The agent console page ``/agent`` (DESIGN §12.1): where an agent lands after signing in."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from callbridge.admin.rendering import add_template_dir, render
from callbridge.auth.deps import CurrentUser
from callbridge.db.session import SessionDep

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")


@router.get("/agent")
async def agent_console(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return await render(
        request,
        "agent/console.html",
        {"extension": user.extension, "agent_id": user.agent_id},
        user=user,
        session=session,
        active="agent",
    )
