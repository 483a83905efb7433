"""The calls list, a call's timeline, and the call simulator."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.calls.conftest import post_event, wait_until_processed
from tests.helpers import csrf_from, errors_by_field, make_user, sign_in


async def signed_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303


async def test_calls_list_and_timeline(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    await post_event(
        client,
        pbx_headers,
        event="queue",
        call_id="1700000000.42",
        tel="07075373713",
        tel_name="CDF 株式会社",
    )
    await wait_until_processed(app, 1)
    await signed_in(app, client)
    page = await client.get("/calls")
    assert page.status_code == 200
    assert "1700000000.42" in page.text and "CDF 株式会社" in page.text
    filtered = await client.get("/calls", params={"tel": "0312", "status": "ok"})
    assert "1700000000.42" not in filtered.text
    rows = await client.get("/calls", headers={"HX-Request": "true"})
    assert rows.text.lstrip().startswith("<tbody")
    detail = await client.get("/calls/1700000000.42")
    assert detail.status_code == 200 and "Timeline" in detail.text and "queue" in detail.text
    assert (await client.get("/calls/1700000000.42/timeline")).status_code == 200
    assert (await client.get("/calls/nope")).status_code == 404


async def test_a_filter_the_calls_list_cannot_hold_is_an_error_beside_its_field(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    """A date that is no date or a status the list does not offer was ignored: the page
    listed every call under a filter it did not apply (the status shown as "Any")."""
    await post_event(client, pbx_headers, event="queue", call_id="1700000000.42")
    await wait_until_processed(app, 1)
    await signed_in(app, client)
    query = {"from": "2026-12-04", "to": "2026-13-45", "status": "done"}
    client.cookies.set("cb_lang", "ja")
    japanese = await client.get("/calls", params=query)
    assert japanese.status_code == 422
    assert errors_by_field(japanese.text) == {
        "to": ["日付は YYYY-MM-DD の形で入力してください。"],
        "status": ["一覧から選んでください。"],
    }
    assert "1700000000.42" not in japanese.text  # no list under a filter not applied
    assert "条件に合う通話はありません。" in japanese.text
    assert "まだ通話がありません" not in japanese.text  # there is one
    assert 'name="to" value="2026-13-45"' in japanese.text  # kept, to be corrected
    client.cookies.set("cb_lang", "en")
    english = await client.get("/calls", params={"from": "04/12/2026"})
    assert english.status_code == 422
    assert errors_by_field(english.text) == {"from": ["Enter a date as YYYY-MM-DD."]}
    # The same day from the date fields, and each status of the list: the page.
    for status in ("", "pending", "ok", "error"):
        day = await client.get(
            "/calls", params={"from": "2026-12-04", "to": "2026-12-04", "status": status}
        )
        assert day.status_code == 200 and errors_by_field(day.text) == {}, status
    # A filter nothing matches says so, rather than that there are no calls yet.
    nothing = await client.get("/calls", params={"tel": "0999"})
    assert "No call matches these filters." in nothing.text
    assert "No calls yet" not in nothing.text
    everything = await client.get("/calls")
    assert "1700000000.42" in everything.text and "No call matches" not in everything.text


async def test_pages_speak_japanese(app: FastAPI, client: httpx.AsyncClient) -> None:
    await signed_in(app, client)
    page = await client.get("/calls", headers={"Accept-Language": "ja"})
    client.cookies.set("cb_lang", "ja")
    page = await client.get("/simulator")
    assert "通話シミュレーター" in page.text


async def test_the_simulator_posts_through_the_ingest_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await signed_in(app, client)
    page = await client.get("/simulator")
    assert page.status_code == 200
    token = csrf_from(page.text)
    for event in ("incoming", "queue", "answer", "disconnect"):
        sent = await client.post(
            "/simulator",
            data={
                "csrf_token": token,
                "event": event,
                "call_id": "sim-1",
                "tel": "07075373713",
                "called": "0312345678",
                "queue": "support",
                "direction": "inbound",
                "variables": "RANK=gold",
            },
        )
        assert sent.status_code == 200, sent.text
        assert "sim-1" in sent.text
    await wait_until_processed(app, 4)
    detail = await client.get("/calls/sim-1/timeline")
    for event in ("incoming", "queue", "answer", "disconnect"):
        assert event in detail.text
    bad = await client.post(
        "/simulator", data={"csrf_token": token, "event": "ringing", "call_id": "sim-1"}
    )
    assert bad.status_code == 422 and "body.event" in bad.text
    forged = await client.post("/simulator", data={"event": "queue", "call_id": "x"})
    assert forged.status_code == 403


async def test_dashboard_shows_call_figures(
    app: FastAPI, client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    await post_event(client, pbx_headers, event="queue", call_id="dash-1")
    await wait_until_processed(app, 1)
    await signed_in(app, client)
    page = await client.get("/")
    assert "Calls in the last 24 hours" in page.text and "Events waiting" in page.text
