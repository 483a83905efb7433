"""Call notes and wrap-up (DESIGN §12.4): saved on the call (NOTES, WRAPUP) and sent to
the history link's Task — in the Task when written before the call ended, and as an
update of the same Task afterwards."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from callbridge.auth.csrf import CSRF_COOKIE, CSRF_HEADER
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.time import utcnow
from callbridge.models import UserSession
from callbridge.settings import Settings
from tests.agent_desktop.conftest import console, make_agent, make_profile, ring
from tests.history.conftest import (
    Live,
    connected,
    live,
    live_settings,
    make_link,
    sandbox,
    settled,
    tasks_of,
    wait_rows,
)

__all__ = ["connected", "live", "live_settings", "sandbox"]


async def _save(live: Live, agent: dict[str, str], call_id: str, **body: Any) -> httpx.Response:
    headers = {"Cookie": f"{agent['Cookie']}; {CSRF_COOKIE}=t0ken", CSRF_HEADER: "t0ken"}
    return await live.http.post(f"/api/v1/agent/calls/{call_id}/notes", json=body, headers=headers)


async def _task_description(live: Live, call_id: str, expected: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        tasks = tasks_of(live, call_id)
        if len(tasks) == 1 and tasks[0].get("Description") == expected:
            return tasks[0]
        assert asyncio.get_running_loop().time() < deadline, tasks
        await asyncio.sleep(0.02)


async def test_notes_reach_the_call_and_the_task(connected: Live, live_settings: Settings) -> None:
    live = connected
    link = await make_link(live)
    await make_profile(live, wrapup_reasons=["注文", "問い合わせ"])
    sato = await make_agent(live, live_settings, "sato", "201")
    kato = await make_agent(live, live_settings, "kato", "202")
    async with console(live.base_url, sato) as stream:
        await ring(live, "n-1", "09087654321", "201")
        await stream.next()
    # Before the call ends: the history row is created with them.
    saved = await _save(live, sato, "n-1", notes="先に書いたメモ", wrapup="注文")
    assert saved.status_code == 200, saved.text
    assert saved.json()["history_rows"] == 0
    for event in ("answer", "disconnect"):
        await ring(live, "n-1", "09087654321", "201", event=event, agent_id="A100")
    await wait_rows(live, link["id"], settled(1))
    first = await _task_description(live, "n-1", "先に書いたメモ\n\n[注文]")
    call = (await live.api("GET", "/api/v1/calls/n-1")).json()
    assert call["variables"]["NOTES"] == "先に書いたメモ"
    assert call["variables"]["WRAPUP"] == "注文"
    # After the Task exists: the same Task is updated.
    again = await _save(live, sato, "n-1", notes="折り返し済み", wrapup="問い合わせ")
    assert again.json()["history_rows"] == 1
    second = await _task_description(live, "n-1", "折り返し済み\n\n[問い合わせ]")
    assert second["Id"] == first["Id"]

    refused = await _save(live, sato, "n-1", notes="x", wrapup="雑談")
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "wrapup"]]
    others = await _save(live, kato, "n-1", notes="他人の通話")
    assert others.status_code == 404
    no_csrf = await live.http.post(
        "/api/v1/agent/calls/n-1/notes", json={"notes": "x"}, headers=sato
    )
    assert no_csrf.status_code == 403


def _task_writes(live: Live, method: str) -> list[Any]:
    """The Task records callbridge sent with sObject Collections (POST: created, PATCH:
    updated) inside its Composite requests, as Salesforce received them."""
    found = []
    for request in live.sandbox.rest_requests():
        if request.method != "POST" or not request.path.endswith("/composite"):
            continue
        for sub in json.loads(request.body)["compositeRequest"]:
            if sub["method"] == method and sub["url"].endswith("/composite/sobjects"):
                found += [r for r in sub["body"]["records"] if r["attributes"]["type"] == "Task"]
    return found


async def test_the_wrapup_goes_to_its_mapped_field(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    link = await make_link(
        live, field_mappings=[{"field": "CallDisposition", "template": "{WRAPUP}"}]
    )
    await make_profile(live, wrapup_reasons=["注文", "問い合わせ"])
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "w-1", "09087654321", "201")
        await stream.next()
    saved = await _save(live, sato, "w-1", notes="先に書いたメモ", wrapup="注文")
    assert saved.status_code == 200, saved.text
    for event in ("answer", "disconnect"):
        await ring(live, "w-1", "09087654321", "201", event=event, agent_id="A100")
    await wait_rows(live, link["id"], settled(1))
    # The Task was created with the notes in Description and the reason in its field.
    [created] = _task_writes(live, "POST")
    assert (created["Description"], created["CallDisposition"]) == ("先に書いたメモ", "注文")
    [task] = tasks_of(live, "w-1")
    assert (task["Description"], task["CallDisposition"]) == ("先に書いたメモ", "注文")

    # Saved again after the Task exists: one update of exactly those two fields.
    again = await _save(live, sato, "w-1", notes="折り返し済み", wrapup="問い合わせ")
    assert again.json()["history_rows"] == 1
    await _task_description(live, "w-1", "折り返し済み")
    assert _task_writes(live, "PATCH") == [
        {
            "attributes": {"type": "Task"},
            "id": task["Id"],
            "Description": "折り返し済み",
            "CallDisposition": "問い合わせ",
        }
    ]
    [updated] = tasks_of(live, "w-1")
    assert updated["Id"] == task["Id"] and updated["CallDisposition"] == "問い合わせ"


async def test_notes_are_saved_when_the_sign_in_is_refreshed(
    connected: Live, live_settings: Settings
) -> None:
    """A sign-in last seen minutes ago is refreshed by the request (a write of its
    session); the call's variables are still stored at once — on SQLite the call store's
    own connection would otherwise wait for that session's write lock."""
    live = connected
    await make_profile(live, wrapup_reasons=["注文"])
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "r-1", "09087654321", "201")
        await stream.next()
    engine = create_engine(live_settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(
                update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=10))
            )
            await session.commit()
        async with asyncio.timeout(10):
            saved = await _save(live, sato, "r-1", notes="メモ", wrapup="注文")
        assert saved.status_code == 200, saved.text
        async with create_sessionmaker(engine)() as session:
            seen = await session.scalar(select(func.min(UserSession.last_seen_at)))
    finally:
        await engine.dispose()
    assert seen is not None and utcnow() - seen < timedelta(minutes=1)
    call = (await live.api("GET", "/api/v1/calls/r-1")).json()
    assert (call["variables"]["NOTES"], call["variables"]["WRAPUP"]) == ("メモ", "注文")
