"""Pops between processes (DESIGN §12.1): the event is stored and processed by one
process, the agent's console is held by another web process; PostgreSQL LISTEN/NOTIFY
carries the pop across."""

from __future__ import annotations

import pytest

from callbridge.agent_desktop import router
from callbridge.app import create_app
from callbridge.settings import Settings
from tests.agent_desktop.conftest import Live, console, make_agent, ring
from tests.servers import running_server


async def test_a_pop_reaches_a_console_held_by_another_process(
    live: Live, live_settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share one database on PostgreSQL only")
    # No heartbeat (which also re-reads the stream) within the test: only NOTIFY can wake it.
    monkeypatch.setattr(router, "HEARTBEAT_SECONDS", 3600.0)
    created = await live.api("POST", "/api/v1/screen-pops", json={"name": "受付"})
    assert created.status_code == 201, created.text
    sato = await make_agent(live, live_settings, "sato", "201")
    # A second process serving the web only: it runs no dispatcher of its own.
    with running_server(create_app(live_settings, role="web")) as web:
        async with console(web.base_url, sato) as stream:
            await ring(live, "p-1", "0312345678", "201")
            pop = await stream.next()
    assert pop.event == "pop" and pop.data["call_id"] == "p-1"
    assert pop.data["tel"] == "0312345678" and pop.data["matches"] == []
