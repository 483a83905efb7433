"""The outage tests run callbridge and the sandbox Salesforce on loopback ports, as the
call-action end-to-end tests do (their fixtures are reused)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from callbridge.app import create_app
from callbridge.sandbox import SandboxHandle
from callbridge.settings import Settings
from tests.call_actions.conftest import Live, connected, live, sandbox
from tests.helpers import bearer, sign_in
from tests.servers import running_server

__all__ = ["connected", "live", "sandbox"]

# Plain http, so that the session cookies of a signed-in test client are sent back.
PUBLIC_URL = "http://callbridge.example.jp/"


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    # Resumption paced fast enough for a test's few dozen calls.
    return settings.model_copy(update={"public_url": PUBLIC_URL, "resume_calls_per_second": 500.0})


async def signed_in_browser(live: Live, language: str = "en") -> httpx.AsyncClient:
    """A client that signed in to ``live`` as an admin (cookies kept), in ``language``."""
    created = await live.api(
        "POST",
        "/api/v1/users",
        json={
            "username": "outage-admin",
            "password": "correct horse",
            "role": "admin",
            "language": language,
        },
    )
    assert created.status_code == 201, created.text
    browser = httpx.AsyncClient(base_url=live.base_url, timeout=30)
    answer = await sign_in(browser, "outage-admin", "correct horse")
    assert answer.status_code == 303, answer.text
    return browser


@asynccontextmanager
async def serving(
    settings: Settings, sandbox: SandboxHandle, admin: str, pbx: str, account_id: int | None
) -> AsyncIterator[Live]:
    """callbridge on a loopback port with ``settings`` (the same database each time)."""
    with running_server(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            yield Live(server.base_url, bearer(admin), bearer(pbx), sandbox, http, account_id)
