"""POST /api/v1/call-events: the PBX's contract (DESIGN.md §3.2, §3.8)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.models.call import Call, CallEvent
from tests.calls.conftest import post_event, wait_until_processed


async def _count(app: FastAPI, model: type) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_json_event_is_stored_and_acknowledged(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await post_event(
        client,
        pbx_headers,
        event="queue",
        call_id="1700000000.42",
        event_id="e-1",
        tel="07075373713",
        tel_name="CDF 株式会社",
        direction="inbound",
        queue="support",
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "event_id": "e-1", "call_id": "1700000000.42"}
    async with app.state.runtime.sessionmaker() as session:
        call = await session.scalar(select(Call))
        assert call is not None
        assert (call.call_id, call.tel, call.tel_name, call.queue) == (
            "1700000000.42",
            "07075373713",
            "CDF 株式会社",
            "support",
        )
    await wait_until_processed(app, 1)


async def test_form_body_with_variables(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/call-events",
        data={
            "event": "incoming",
            "call_id": "c-form",
            "tel": "0312345678",
            "variables[CUSTOMER_RANK]": "gold",
            "variables[NOTE]": "a&b=c",
        },
        headers=pbx_headers,
    )
    assert response.status_code == 202, response.text
    async with app.state.runtime.sessionmaker() as session:
        event = await session.scalar(select(CallEvent))
        assert event is not None
        assert event.payload["variables"] == {"CUSTOMER_RANK": "gold", "NOTE": "a&b=c"}


async def test_biztel_event_names_are_accepted(
    client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await post_event(client, pbx_headers, event="コールセンター切断", call_id="c-jp")
    assert response.status_code == 202, response.text


async def test_repeat_by_event_id_is_a_duplicate(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    first = await post_event(client, pbx_headers, event="answer", call_id="c1", event_id="x")
    again = await post_event(client, pbx_headers, event="answer", call_id="c1", event_id="x")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": "x", "call_id": "c1"}
    assert await _count(app, CallEvent) == 1


async def test_repeat_by_occurred_at_is_a_duplicate_but_not_without_it(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    at = "2026-11-25T10:00:00+09:00"
    assert (
        await post_event(client, pbx_headers, event="answer", call_id="c2", occurred_at=at)
    ).status_code == 202
    # The same instant written in UTC is the same event.
    same = await post_event(
        client, pbx_headers, event="answer", call_id="c2", occurred_at="2026-11-25T01:00:00Z"
    )
    assert same.status_code == 200 and same.json()["status"] == "duplicate"
    # Without any identity every delivery is new (a second answer after a transfer).
    for _ in range(2):
        assert (
            await post_event(client, pbx_headers, event="answer", call_id="c2")
        ).status_code == 202
    assert await _count(app, CallEvent) == 3


async def test_every_bad_field_is_listed_and_no_call_is_created(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await post_event(
        client,
        pbx_headers,
        event="ringing",
        tel="1" * 101,
        direction="sideways",
        occurred_at="yesterday",
        variables={"lower": "x", "TEL": "y"},
    )
    assert response.status_code == 422
    locs = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert locs == {
        ("body", "event"),
        ("body", "call_id"),
        ("body", "tel"),
        ("body", "direction"),
        ("body", "occurred_at"),
        ("body", "variables"),
    }
    assert await _count(app, Call) == 0


async def test_values_no_database_can_hold_are_refused(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/call-events",
        content=b'{"event":"queue","call_id":"c","tel":"0\\u0000","tel_name":"\\ud800"}',
        headers={**pbx_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "tel"),
        ("body", "tel_name"),
    }
    assert await _count(app, Call) == 0


async def test_malformed_bodies(client: httpx.AsyncClient, pbx_headers: dict[str, str]) -> None:
    not_json = await client.post(
        "/api/v1/call-events",
        content=b"{oops",
        headers={**pbx_headers, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    assert not_json.json()["detail"][0]["loc"] == ["body"]
    array = await client.post("/api/v1/call-events", json=[1], headers=pbx_headers)
    assert array.status_code == 422
    repeated = await client.post(
        "/api/v1/call-events",
        content=b"event=queue&call_id=a&call_id=b",
        headers={**pbx_headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 422
    assert repeated.json()["detail"][0]["loc"] == ["body", "call_id"]


async def test_size_and_media_type_limits(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    big = {"event": "queue", "call_id": "c", "variables": {"BIG": "x" * (65 * 1024)}}
    response = await client.post("/api/v1/call-events", json=big, headers=pbx_headers)
    assert response.status_code == 413
    xml = await client.post(
        "/api/v1/call-events",
        content=b"<event/>",
        headers={**pbx_headers, "Content-Type": "application/xml"},
    )
    assert xml.status_code == 415
    assert "application/json" in xml.json()["detail"]
    assert await _count(app, Call) == 0


async def test_tokens_and_scopes(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    body = {"event": "queue", "call_id": "c"}
    assert (await client.post("/api/v1/call-events", json=body)).status_code == 401
    wrong = await client.post(
        "/api/v1/call-events", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    scoped = await client.post("/api/v1/call-events", json=body, headers=admin_headers)
    assert scoped.status_code == 403


async def test_a_revoked_pbx_token_is_refused_at_once(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = (
        await client.post(
            "/api/v1/tokens", json={"name": "pbx2", "scope": "pbx"}, headers=admin_headers
        )
    ).json()
    pbx = {"Authorization": f"Bearer {created['token']}"}
    assert (await post_event(client, pbx, event="queue", call_id="r1")).status_code == 202
    revoked = await client.delete(f"/api/v1/tokens/{created['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    assert (await post_event(client, pbx, event="queue", call_id="r2")).status_code == 401


async def test_storage_unavailable_answers_503(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    from callbridge.calls.pg_store import PgCallStore
    from callbridge.calls.sqlite_store import SqliteCallStore
    from callbridge.calls.store import call_store
    from callbridge.db.engine import create_engine, create_sessionmaker

    assert (await post_event(client, pbx_headers, event="queue", call_id="ok")).status_code == 202
    runtime = app.state.runtime
    saved_engine, saved_sessions = runtime.engine, runtime.sessionmaker
    saved_store = call_store(runtime)
    dead_store: PgCallStore | SqliteCallStore
    if runtime.database_kind == "postgresql":
        dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        dead_store = PgCallStore("postgresql://nobody@127.0.0.1:1/none", 2, 2)
    else:
        dead = create_engine("sqlite+aiosqlite:////nonexistent-directory/callbridge.db")
        dead_store = SqliteCallStore(runtime, "/nonexistent-directory/callbridge.db")
    runtime.engine, runtime.sessionmaker = dead, create_sessionmaker(dead)
    runtime.extras["calls.call_store"] = dead_store
    try:
        # With the token already known (no lookup needed) and without.
        response = await post_event(client, pbx_headers, event="queue", call_id="c503")
        from callbridge.calls.pbx_auth import _REMEMBERED

        _REMEMBERED.clear()
        unknown = await post_event(client, pbx_headers, event="queue", call_id="c503")
    finally:
        runtime.engine, runtime.sessionmaker = saved_engine, saved_sessions
        runtime.extras["calls.call_store"] = saved_store
        await dead_store.close()
        await dead.dispose()
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after")
    assert unknown.status_code == 503


async def test_wait_true_processes_before_answering(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/call-events?wait=true",
        json={"event": "incoming", "call_id": "cw"},
        headers=pbx_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "processed",
        "event_id": None,
        "call_id": "cw",
        "executions": [],
    }
    async with app.state.runtime.sessionmaker() as session:
        event = await session.scalar(select(CallEvent))
        assert event is not None and event.status == "done"
