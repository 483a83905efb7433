"""Agent desktop fixtures: callbridge and the sandbox Salesforce on loopback sockets
(the history link's fixtures), agents signed in, and a console reading the SSE stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from callbridge.auth.sessions import SESSION_COOKIE, start_session
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.models import User
from callbridge.settings import Settings
from tests.agent_desktop.crm import crm
from tests.call_actions.conftest import Live, connected, live, live_settings, sandbox

__all__ = ["Live", "connected", "crm", "live", "live_settings", "sandbox"]


async def make_agent(
    live: Live, settings: Settings, username: str, extension: str, language: str | None = None
) -> dict[str, str]:
    """An agent with that extension (and UI language), signed in: the Cookie header of
    their session."""
    body = {"username": username, "password": "long enough", "extension": extension}
    if language is not None:
        body["language"] = language
    created = await live.api("POST", "/api/v1/users", json=body)
    assert created.status_code == 201, created.text
    raw = await signed_in(settings, created.json()["id"])
    return {"Cookie": f"{SESSION_COOKIE}={raw}"}


async def signed_in(settings: Settings, user_id: int) -> str:
    """A session of the user, as signing in makes it (the test server's cookies are
    ``Secure``: an http client would not send them back)."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await session.get(User, user_id)
            assert user is not None
            raw = await start_session(session, user, 8)
            await session.commit()
    finally:
        await engine.dispose()
    return raw


async def make_profile(live: Live, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "受付",
        "lookup": {"kind": "salesforce", "oauth_account_id": live.account_id},
    }
    body.update(fields)
    response = await live.api("POST", "/api/v1/screen-pops", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def ring(live: Live, call_id: str, tel: str, extension: str, **fields: Any) -> None:
    event = {
        "call_id": call_id,
        "event": "incoming",
        "tel": tel,
        "called": "0501234567",
        "extension": extension,
        **fields,
    }
    answer = await live.http.post("/api/v1/call-events?wait=true", json=event, headers=live.pbx)
    assert answer.status_code in (200, 202), answer.text


@dataclass
class Message:
    id: int
    event: str
    data: dict[str, Any]


@dataclass
class Console:
    """One agent console's stream: its messages, read one at a time."""

    lines: AsyncIterator[str]
    comments: list[str] = field(default_factory=list)

    async def next(self, timeout: float = 20.0) -> Message:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Message:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line == "":
                if "data" in fields:
                    # ``signed_out`` has no id: it must not move Last-Event-ID.
                    event_id = int(fields.get("id", "0"))
                    return Message(event_id, fields["event"], json.loads(fields["data"]))
                fields = {}
            else:
                name, _, value = line.partition(": ")
                fields[name] = value
        raise AssertionError("the stream ended")


@asynccontextmanager
async def console(
    base_url: str, cookie: dict[str, str], last_event_id: int | None = None
) -> AsyncIterator[Console]:
    headers = dict(cookie)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream("GET", "/api/v1/agent/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        stream = Console(lines)
        # The first comment says the stream is subscribed: events after it are delivered.
        async for line in lines:
            if line.startswith(": connected"):
                break
        yield stream
