"""The execution search (API and page) and the audit log (API and page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callbridge.models.call import Call, Execution
from tests.helpers import bearer, errors_by_field, make_token, make_user, sign_in

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


def _execution(call_pk: int, n: int, **fields: Any) -> Execution:
    values: dict[str, Any] = {
        "call_pk": call_pk,
        "source": "call_action",
        "rule_id": 1,
        "label": "ケースを作成",
        "event": "queue",
        "request": {"method": "POST", "url": f"https://crm.example.com/Case/{n}"},
        "response": {"status": 201, "headers": {}, "body": "{}", "truncated": False},
        "duration_ms": 120.0,
        "error": None,
        "at": T0 + timedelta(minutes=n),
    }
    values.update(fields)
    return Execution(**values)


async def seed_executions(app: FastAPI) -> None:
    """Six requests of two calls: created, a 404, two 503s, a timeout, an IVR lookup."""
    async with app.state.runtime.sessionmaker() as session:
        first, second = Call(call_id="call-1", tel="0312345678"), Call(call_id="call-2")
        session.add_all([first, second])
        await session.flush()
        failure = {"kind": "http_status", "message": "the CRM answered 503"}
        session.add_all(
            [
                _execution(first.id, 0),
                _execution(
                    first.id,
                    1,
                    rule_id=2,
                    label="取引先責任者を検索",
                    request={"method": "GET", "url": "https://crm.example.com/Contact?q=TEL"},
                    response={"status": 404, "headers": {}, "body": "[]", "truncated": False},
                    error={"kind": "http_status", "message": "the CRM answered 404"},
                ),
                _execution(
                    second.id,
                    2,
                    response={"status": 503, "headers": {}, "body": "", "truncated": False},
                    error=failure,
                ),
                _execution(
                    second.id,
                    3,
                    response={"status": 503, "headers": {}, "body": "", "truncated": False},
                    error=failure,
                ),
                _execution(
                    second.id,
                    4,
                    response=None,
                    duration_ms=None,
                    error={"kind": "timeout", "message": "no answer within 10 s"},
                ),
                _execution(
                    second.id,
                    5,
                    source="ivr",
                    rule_id=7,
                    label="IVR main",
                    event=None,
                    outcome="no_match",
                    request={"method": "GET", "url": "https://crm.example.com/search?q=X"},
                    response={"status": 200, "headers": {}, "body": "{}", "truncated": False},
                ),
            ]
        )
        await session.commit()


async def search(client: httpx.AsyncClient, admin: dict[str, str], query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/executions?{query}", headers=admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def urls(page: dict[str, Any]) -> list[str]:
    return [hit["url"].rsplit("/", 1)[-1] for hit in page["items"]]


async def test_the_execution_search_filters_in_the_database(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await seed_executions(app)
    everything = await search(client, admin, "")
    assert everything["total"] == 6
    newest = everything["items"][0]
    assert newest == {
        "id": newest["id"],
        "call_id": "call-2",
        "at": "2026-11-30T03:05:00Z",
        "source": "ivr",
        "rule_id": 7,
        "label": "IVR main",
        "event": None,
        "method": "GET",
        "url": "https://crm.example.com/search?q=X",
        "status": 200,
        "error_kind": None,
        "error_message": None,
        "duration_ms": 120.0,
        "outcome": "no_match",
    }
    assert urls(await search(client, admin, "status=5xx")) == ["3", "2"]
    assert urls(await search(client, admin, "status=404")) == ["Contact?q=TEL"]
    assert urls(await search(client, admin, "status=none")) == ["4"]
    assert urls(await search(client, admin, "error_kind=timeout")) == ["4"]
    assert (await search(client, admin, "error_kind=any"))["total"] == 4
    assert urls(await search(client, admin, "source=call_action&rule_id=2")) == ["Contact?q=TEL"]
    assert urls(await search(client, admin, "url=CONTACT")) == ["Contact?q=TEL"]
    assert urls(await search(client, admin, "outcome=no_match")) == ["search?q=X"]
    assert (await search(client, admin, "outcome=matched"))["total"] == 0
    window = "since=2026-11-30T03:01:00Z&until=2026-11-30T03:03:00Z"
    assert urls(await search(client, admin, window)) == ["2", "Contact?q=TEL"]
    # Without an offset, the same window in the configured time zone (Japan: UTC+9).
    japan = "since=2026-11-30T12:01&until=2026-11-30T12:03"
    assert urls(await search(client, admin, japan)) == ["2", "Contact?q=TEL"]
    # A bare date is that whole day there, until included; the calendar's ends no bound.
    assert (await search(client, admin, "since=2026-11-30&until=2026-11-30"))["total"] == 6
    assert (await search(client, admin, "until=2026-11-29"))["total"] == 0
    assert (await search(client, admin, "since=2026-12-01"))["total"] == 0
    assert (await search(client, admin, "since=0001-01-01&until=9999-12-31"))["total"] == 6
    # The first hours of year 1 in Japan are before the calendar starts in UTC.
    beyond = await client.get("/api/v1/executions?since=0001-01-01T00:00", headers=admin)
    assert beyond.status_code == 422
    assert beyond.json()["detail"][0]["loc"] == ["query", "since"]
    assert beyond.json()["detail"][0]["msg"] == (
        "is out of range: give a time between the years 1 and 9999"
    )
    paged = await search(client, admin, "rule_id=1&limit=2&offset=2")
    assert paged["total"] == 4 and urls(paged) == ["2", "0"]


async def test_a_bad_filter_is_a_422_naming_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/executions?status=abc&error_kind=boom&outcome=maybe", headers=admin
    )
    assert response.status_code == 422
    fields = {tuple(d["loc"]): d["msg"] for d in response.json()["detail"]}
    assert fields[("query", "status")] == (
        'Value error, use a status code such as "404", a class such as "5xx", or "none"'
    )
    assert ("query", "error_kind") in fields and ("query", "outcome") in fields


async def test_the_executions_page_lists_and_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    await seed_executions(app)
    await make_user(app)
    await sign_in(client)
    page = await client.get("/executions?status=5xx&from=2026-11-30&to=2026-11-30")
    assert page.status_code == 200
    assert "2 requests found." in page.text
    assert page.text.count('<a href="/calls/call-2">call-2</a>') == 2
    assert "the CRM answered 503" in page.text
    assert '<option value="call_action:1"' not in page.text  # no rule stored: nothing to list

    japanese = await client.get(
        "/executions?status=abc&from=30/11", headers={"Accept-Language": "ja"}
    )
    assert japanese.status_code == 422
    assert "日付は YYYY-MM-DD の形で入力してください。" in japanese.text
    assert "404 のようなステータスコード、5xx のようなクラス、または none を入力してください。" in (
        japanese.text
    )


async def test_the_audit_log_says_who_changed_what_from_where(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/call-actions",
        json={"event": "incoming", "url": "https://crm.example.com/x"},
        headers=admin,
    )
    assert created.status_code == 201
    await client.patch("/api/v1/settings", json={"timezone": "Asia/Tokyo"}, headers=admin)
    log = (await client.get("/api/v1/audit?kind=call_action", headers=admin)).json()
    assert log["total"] == 1
    entry = log["items"][0]
    assert (entry["actor"], entry["action"], entry["target"], entry["source"]) == (
        "token:test",
        "call_action.create",
        str(created.json()["id"]),
        "127.0.0.1",
    )
    assert entry["details"] == {"event": "incoming"}
    everything = (await client.get("/api/v1/audit?actor=token:test", headers=admin)).json()
    assert [e["action"] for e in everything["items"]] == ["settings.update", "call_action.create"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = await client.get("/api/v1/audit", params={"since": tomorrow}, headers=admin)
    assert later.json() == {"items": [], "total": 0}

    await make_user(app)
    await sign_in(client)
    page = await client.get("/audit?kind=settings")
    assert page.status_code == 200
    assert "1 entries." in page.text or "1 entry." in page.text
    assert "<code>settings.update</code>" in page.text and "127.0.0.1" in page.text
    assert '<option value="call_action">call_action</option>' in page.text


async def test_a_request_the_crm_could_not_take_is_found_by_its_error(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """ "unavailable" (the CRM's circuit open, nothing sent) is offered by the page's Error
    list, but the filter refused it: the page answered 422 "Choose a value from the list."
    for its own option, the API a 422 on ``error_kind``."""
    async with app.state.runtime.sessionmaker() as session:
        call = Call(call_id="call-1")
        session.add(call)
        await session.flush()
        unsent = {"kind": "unavailable", "message": "the CRM is not answering: not sent"}
        session.add_all(
            [_execution(call.id, 0), _execution(call.id, 1, response=None, error=unsent)]
        )
        await session.commit()
    assert urls(await search(client, admin, "error_kind=unavailable")) == ["1"]
    await make_user(app)
    await sign_in(client)
    page = await client.get("/executions?error_kind=unavailable")
    assert page.status_code == 200 and errors_by_field(page.text) == {}
    assert "1 requests found." in page.text
    assert '<option value="unavailable" selected>' in page.text
    # The first and last days of the calendar are dates too (they were "Enter a date as
    # YYYY-MM-DD."): the whole calendar.
    calendar = await client.get("/executions?from=0001-01-01&to=9999-12-31")
    assert calendar.status_code == 200 and errors_by_field(calendar.text) == {}
    assert "2 requests found." in calendar.text


async def test_an_audit_filter_the_lists_do_not_offer_is_an_error_beside_its_field(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """An actor or a kind the lists do not offer (an address edited by hand, or kept from
    before the entries were purged) showed the lists at "Any" above entries filtered by
    it."""
    await client.patch("/api/v1/settings", json={"timezone": "Asia/Tokyo"}, headers=admin)
    await make_user(app)
    await sign_in(client)
    client.cookies.set("cb_lang", "ja")
    japanese = await client.get("/audit?actor=user:nobody&kind=settings&to=2026-02-30")
    assert japanese.status_code == 422
    assert errors_by_field(japanese.text) == {
        "actor": ["一覧から選んでください。"],
        "to": ["日付は YYYY-MM-DD の形で入力してください。"],
    }
    client.cookies.set("cb_lang", "en")
    english = await client.get("/audit?kind=nothing")
    assert english.status_code == 422
    assert errors_by_field(english.text) == {"kind": ["Choose a value from the list."]}
    offered = await client.get("/audit?actor=token:test&kind=settings")
    assert offered.status_code == 200 and errors_by_field(offered.text) == {}
    assert "<code>settings.update</code>" in offered.text
