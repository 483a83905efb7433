"""The 連携通話履歴 date filter, on the page and on the API: dates are whole days in the
configured time zone (``to`` included), an API time without an offset is in that zone,
one with an offset as given, and a bad date names its field (never a server error)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callbridge.calls import store
from callbridge.models import HistoryLink, HistoryRow
from callbridge.settings import Settings
from tests.foundation.test_japanese_pages import japanese
from tests.helpers import bearer, errors_by_field, make_token, make_user, sign_in
from tests.history.test_api import _account

# Each call by when it ended, in UTC (Tokyo is 9 hours ahead, no daylight saving time).
ENDED = {
    "dec3-late": datetime(2026, 12, 3, 14, 59, 59, tzinfo=UTC),  # 12-03 23:59:59 JST
    "dec4-0859": datetime(2026, 12, 3, 23, 59, tzinfo=UTC),  # 12-04 08:59 JST
    "dec4-2359": datetime(2026, 12, 4, 14, 59, tzinfo=UTC),  # 12-04 23:59 JST
    "dec5-0000": datetime(2026, 12, 4, 15, 0, tzinfo=UTC),  # 12-05 00:00 JST
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"timezone": "Asia/Tokyo"})


@pytest.fixture
async def link_id(app: FastAPI) -> int:
    """A link with one history row for each call of ``ENDED``."""
    account_id = await _account(app, "salesforce")
    runtime = app.state.runtime
    call_pks = {call_id: await store.ensure_call(runtime, call_id) for call_id in ENDED}
    async with runtime.sessionmaker() as session:
        link = HistoryLink(name="窓口", oauth_account_id=account_id, objects=[])
        session.add(link)
        await session.flush()
        for call_id, ended in ENDED.items():
            session.add(
                HistoryRow(
                    link_id=link.id,
                    call_pk=call_pks[call_id],
                    call_id=call_id,
                    phone_from="0312345678",
                    phone_to="0501234567",
                    started_at=ended,
                    ended_at=ended,
                    state="synced",
                    task_ids=[],
                )
            )
        await session.commit()
        return int(link.id)


async def listed(
    client: httpx.AsyncClient, admin: dict[str, str], link_id: int, **params: str
) -> list[str]:
    response = await client.get(
        f"/api/v1/history-links/{link_id}/histories", params=params, headers=admin
    )
    assert response.status_code == 200, response.text
    return [item["call_id"] for item in response.json()["items"]]


async def test_the_api_reads_dates_as_whole_days_in_the_time_zone(
    app: FastAPI, client: httpx.AsyncClient, link_id: int
) -> None:
    admin = bearer(await make_token(app, scope="admin"))
    one_day = await listed(client, admin, link_id, **{"from": "2026-12-04", "to": "2026-12-04"})
    assert one_day == ["dec4-2359", "dec4-0859"]
    assert await listed(client, admin, link_id, **{"from": "2026-12-05"}) == ["dec5-0000"]
    assert await listed(client, admin, link_id, to="2026-12-03") == ["dec3-late"]


async def test_the_api_reads_a_time_in_the_time_zone_unless_it_has_an_offset(
    app: FastAPI, client: httpx.AsyncClient, link_id: int
) -> None:
    admin = bearer(await make_token(app, scope="admin"))
    # The probe that answered 500: a time without an offset, in Tokyo.
    assert await listed(client, admin, link_id, **{"from": "2026-12-04T00:00"}) == [
        "dec5-0000",
        "dec4-2359",
        "dec4-0859",
    ]
    # ``to`` as a time is the moment itself, not included.
    tokyo = await listed(
        client, admin, link_id, **{"from": "2026-12-04T09:00", "to": "2026-12-05T00:00"}
    )
    assert tokyo == ["dec4-2359"]
    utc = await listed(
        client,
        admin,
        link_id,
        **{"from": "2026-12-04T00:00:00+00:00", "to": "2026-12-04T15:00:00Z"},
    )
    assert utc == ["dec4-2359"]
    also_utc = await listed(client, admin, link_id, **{"from": "2026-12-03T23:59:00+00:00"})
    assert also_utc == ["dec5-0000", "dec4-2359", "dec4-0859"]


async def test_a_bad_date_is_a_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, link_id: int
) -> None:
    admin = bearer(await make_token(app, scope="admin"))
    url = f"/api/v1/history-links/{link_id}/histories"
    response = await client.get(url, params={"from": "2026-13-45", "to": "abc"}, headers=admin)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["query", "from"],
                "msg": "Input should be a valid datetime or date, "
                "month value is outside expected range of 1-12",
                "type": "datetime_from_date_parsing",
                "code": "datetime_from_date_parsing",
            },
            {
                "loc": ["query", "to"],
                "msg": "Input should be a valid datetime or date, input is too short",
                "type": "datetime_from_date_parsing",
                "code": "datetime_from_date_parsing",
            },
        ]
    }
    # A time that has no UTC (the first hours of year 1 in Tokyo).
    early = await client.get(url, params={"from": "0001-01-01T00:00"}, headers=admin)
    assert early.status_code == 422
    assert early.json() == {
        "detail": [
            {
                "loc": ["query", "from"],
                "msg": "is out of range: give a time between the years 1 and 9999",
                "type": "value_error",
                "code": "value_error",
            }
        ]
    }


def rows_on(page: str) -> list[str]:
    return re.findall(r'<tr data-call="([^"]+)">', page)


async def test_the_page_lists_whole_days_in_the_time_zone(
    app: FastAPI, client: httpx.AsyncClient, link_id: int
) -> None:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    client.cookies.set("cb_lang", "ja")
    url = f"/history-links/{link_id}/histories"
    # What the page's own date inputs send.
    page = await client.get(url, params={"from": "2026-12-04", "to": "2026-12-04"})
    assert page.status_code == 200
    assert rows_on(japanese(page)) == ["dec4-2359", "dec4-0859"]
    assert "2 件" in page.text
    assert '<label for="f-from">開始日</label>' in page.text
    assert '<label for="f-to">終了日</label>' in page.text
    assert 'value="2026-12-04"' in page.text  # the dates chosen stay in the form
    everything = await client.get(url)
    assert rows_on(everything.text) == ["dec5-0000", "dec4-2359", "dec4-0859", "dec3-late"]


async def test_a_bad_date_on_the_page_names_the_field_in_the_admins_language(
    app: FastAPI, client: httpx.AsyncClient, link_id: int
) -> None:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    url = f"/history-links/{link_id}/histories"
    bad: dict[str, Any] = {"from": "2026-13-45", "to": "abc"}
    client.cookies.set("cb_lang", "ja")
    in_japanese = await client.get(url, params=bad)
    assert in_japanese.status_code == 422
    assert errors_by_field(japanese(in_japanese)) == {
        "from": ["日付は YYYY-MM-DD の形で入力してください。"],
        "to": ["日付は YYYY-MM-DD の形で入力してください。"],
    }
    assert rows_on(in_japanese.text) == []
    client.cookies.set("cb_lang", "en")
    in_english = await client.get(url, params={"from": "2026-12-04", "to": "abc"})
    assert in_english.status_code == 422
    assert errors_by_field(in_english.text) == {"to": ["Enter a date as YYYY-MM-DD."]}
    only_from = await client.get(url, params={"from": "2026-13-45"})
    assert errors_by_field(only_from.text) == {"from": ["Enter a date as YYYY-MM-DD."]}
    # The calendar's first and last days are dates a date input allows: no bound.
    calendar = await client.get(url, params={"from": "0001-01-01", "to": "9999-12-31"})
    assert calendar.status_code == 200 and errors_by_field(calendar.text) == {}
    assert len(rows_on(calendar.text)) == 4
    # A state the list does not offer (an address edited by hand) is an error beside it,
    # not a filter the page would show as "—".
    unknown = await client.get(url, params={"state": "no-such-state"})
    assert unknown.status_code == 422
    assert errors_by_field(unknown.text) == {"state": ["Choose a value from the list."]}
    assert rows_on(unknown.text) == []
