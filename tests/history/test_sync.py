"""The history link against the sandbox Salesforce over sockets (DESIGN §11.2–11.4)."""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.settings import Settings
from tests.history.conftest import (
    PUBLIC_URL,
    Live,
    account_id_of,
    histories,
    make_call,
    make_link,
    settled,
    tasks_of,
    wait_rows,
)

pytestmark = pytest.mark.e2e


async def in_japanese(live: Live, link_id: int) -> list[dict[str, Any]]:
    """The history list as a reader whose language is Japanese sees it."""
    response = await live.http.get(
        f"/api/v1/history-links/{link_id}/histories",
        params={"limit": 500},
        headers={**live.admin, "Accept-Language": "ja"},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def contact(live: Live, last_name: str) -> dict[str, object]:
    return next(c for c in live.records("Contact") if c["LastName"] == last_name)


async def test_an_inbound_call_becomes_one_task_on_the_contact(connected: Live) -> None:
    live = connected
    link = await make_link(live)
    assert link["fallback_record"] == account_id_of(live, "みなと物流株式会社")
    assert link["warnings"][0]["field"] == "fallback_record"
    await make_call(live, "call-1", "09087654321")
    rows = await wait_rows(live, link["id"], settled(1))
    row = rows[0]
    assert row["state"] == "synced", row
    assert row["retry_count"] == 1 and row["next_retry_at"] is None
    assert row["phone_from"] == "09087654321" and row["phone_to"] == "0501234567"
    assert row["agent_id_to"] == "A100" and row["naisen_to"] == "201"
    assert row["agent_id_from"] is None and row["naisen_from"] is None
    [task] = tasks_of(live, "call-1")
    takahashi = contact(live, "高橋")
    assert task["WhoId"] == takahashi["Id"] and task["WhatId"] is None
    assert row["task_ids"] == [task["Id"]]
    assert row["task_urls"] == [f"{live.sandbox.base_url}/lightning/r/Task/{task['Id']}/view"]
    assert task["Subject"] == "着信 09087654321 2026/12/04 10:00"
    assert task["Status"] == "Completed" and task["Priority"] == "Normal"
    assert task["TaskSubtype"] == "Call" and task["CallType"] == "Inbound"
    assert task["CallDurationInSeconds"] == 120
    assert task["ActivityDate"] == "2026-12-04"
    assert task["B_ServerIP__c"] == PUBLIC_URL.rstrip("/")
    assert task["B_UniqueId__c"] == "u-call-1"
    assert task["B_PhoneFrom__c"] == "09087654321" and task["B_PhoneTo__c"] == "0501234567"
    assert task["B_AgentIdTo__c"] == "A100" and task["B_NaisenTo__c"] == "201"
    assert task["B_CallStartDateTime__c"].startswith("2026-12-04T01:00:00")
    assert task["B_CallEndDateTime__c"].startswith("2026-12-04T01:02:05")
    # The formula field plays the recording through callbridge's player.
    assert f'href="{PUBLIC_URL}monitor_link/u-call-1"' in task["WavUrlImg__c"]


async def test_priority_objects_first_and_outbound_calls(connected: Live) -> None:
    live = connected
    link = await make_link(live, language="en")
    # 03-1234-5678 is a Contact (priority 1) and an Account (priority 2): the Contact wins.
    await make_call(live, "call-2", "0312345678")
    # Only an Account has this number: WhatId.
    await make_call(live, "call-3", "011-222-3333", direction="outbound", called="")
    await wait_rows(live, link["id"], settled(2))
    [suzuki] = tasks_of(live, "call-2")
    assert suzuki["WhoId"] == contact(live, "鈴木")["Id"]
    [hokkaido] = tasks_of(live, "call-3")
    assert hokkaido["WhatId"] == account_id_of(live, "北海道フーズ合同会社")
    assert hokkaido["WhoId"] is None
    assert hokkaido["CallType"] == "Outbound"
    assert hokkaido["Subject"].startswith("Outbound 011-222-3333 ")
    assert hokkaido["B_PhoneFrom__c"] == "201" and hokkaido["B_AgentIdFrom__c"] == "A100"


async def test_a_call_from_an_agents_extension_is_internal(connected: Live) -> None:
    """CallType Internal (DESIGN §11.2) when the caller's number is a user's extension, the
    rule screen pops use for skip_internal; the PBX's direction says inbound either way."""
    live = connected
    # Searches are retried for numbers Salesforce has not got yet, not for an extension.
    link = await make_link(live, language="en", search_retries=3)
    agent = await live.api(
        "POST",
        "/api/v1/users",
        json={"username": "tanaka", "password": "correct horse", "role": "agent",
              "agent_id": "A200", "extension": "305"},
    )  # fmt: skip
    assert agent.status_code == 201, agent.text
    await make_call(live, "int-1", "305")
    await make_call(live, "ext-1", "0312345678")
    await wait_rows(live, link["id"], settled(2))
    [internal] = tasks_of(live, "int-1")
    assert internal["CallType"] == "Internal"
    # "305" is too short to search (SOSL refuses a FIND without a term, which failed the
    # row, and every row searched with it): no match at once, the fallback record.
    assert internal["WhatId"] == account_id_of(live, "みなと物流株式会社")
    rows = {row["call_id"]: row for row in await histories(live, link["id"])}
    assert rows["int-1"]["state"] == "synced" and rows["int-1"]["retry_count"] == 1
    assert rows["int-1"]["reason_code"] == "history_no_match"
    [external] = tasks_of(live, "ext-1")
    assert external["CallType"] == "Inbound"


async def test_multiple_matches_follow_on_multiple(connected: Live) -> None:
    live = connected
    fallback = await make_link(live, name="fallback", phone_numbers=["0501230001"])
    first = await make_link(live, name="first", on_multiple="first", phone_numbers=["0501230002"])
    every = await make_link(live, name="all", on_multiple="all", phone_numbers=["0501230003"])
    await make_call(live, "m-1", "07075373713", called="0501230001")
    await make_call(live, "m-2", "07075373713", called="0501230002")
    await make_call(live, "m-3", "07075373713", called="0501230003")
    for link in (fallback, first, every):
        await wait_rows(live, link["id"], settled(1))
    [to_fallback] = tasks_of(live, "m-1")
    assert to_fallback["WhatId"] == account_id_of(live, "みなと物流株式会社")
    [row] = await histories(live, fallback["id"])
    assert row["reason"] == "2 Contact records matched: linked to the fallback record"
    assert row["reason_code"] == "history_multiple"
    [row] = await in_japanese(live, fallback["id"])
    assert row["reason"] == (
        "Contact のレコードが 2 件一致したため、紐付け先特定不可レコードに紐付けました"
    )
    [newest] = tasks_of(live, "m-2")
    assert newest["WhoId"] in {contact(live, "佐藤")["Id"], contact(live, "田中")["Id"]}
    both = tasks_of(live, "m-3")
    assert sorted(t["WhoId"] for t in both) == sorted(
        [contact(live, "佐藤")["Id"], contact(live, "田中")["Id"]]
    )


async def test_no_match_retries_then_behaves_as_configured(connected: Live) -> None:
    live = connected
    skip = await make_link(
        live, name="skip", on_no_match="skip", search_retries=2, phone_numbers=["0501230004"]
    )
    unlinked = await make_link(
        live, name="unlinked", on_no_match="unlinked", phone_numbers=["0501230005"]
    )
    await make_call(live, "n-1", "0501119999", called="0501230004")
    await make_call(live, "n-2", "0501119999", called="0501230005")
    [row] = await wait_rows(live, skip["id"], settled(1))
    assert row["state"] == "no_match" and row["retry_count"] == 3
    assert row["reason"] == "no record matched; nothing is created (on no match: skip)"
    [row] = await in_japanese(live, skip["id"])
    assert row["reason"] == (
        "一致するレコードがありません。活動は作成しません(レコードが一致しない場合: 作成しない)"
    )
    assert tasks_of(live, "n-1") == []
    [row] = await wait_rows(live, unlinked["id"], settled(1))
    [task] = tasks_of(live, "n-2")
    assert row["state"] == "synced" and task["WhoId"] is None and task["WhatId"] is None


async def test_a_contact_created_after_the_call_is_found_on_a_retry(connected: Live) -> None:
    live = connected
    # Retries enough for any machine's speed: the contact appears after the first search.
    link = await make_link(live, search_retries=100, retry_minutes=0.05)
    await make_call(live, "late-1", "0312349999")
    [row] = await wait_rows(
        live, link["id"], lambda rows: bool(rows) and rows[0]["retry_count"] >= 1
    )
    assert row["state"] in ("searching", "synced")
    from callbridge.sandbox.records import create_record

    state = live.sandbox.state
    sobject = state.schema.get("Contact")
    assert sobject is not None
    new_id = create_record(
        state, sobject, {"LastName": "新規", "Phone": "03-1234-9999"}, user_id="005"
    )
    [row] = await wait_rows(live, link["id"], settled(1))
    [task] = tasks_of(live, "late-1")
    assert row["state"] == "synced" and task["WhoId"] == new_id


async def test_batched_lookups_and_writes_count_api_calls(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="paused")
    numbers = ["09087654321", "0312345678", "011-222-3333", "0120-123-456", "0501119999"]
    for index in range(30):
        await make_call(live, f"b-{index}", numbers[index % len(numbers)])
    rows = await histories(live, link["id"], limit=100)
    assert len(rows) == 30 and {r["state"] for r in rows} == {"held"}
    live.sandbox.state.api_calls.clear()
    response = await live.api(
        "PATCH", f"/api/v1/history-links/{link['id']}", json={"status": "enabled"}
    )
    assert response.status_code == 200, response.text
    rows = await wait_rows(live, link["id"], settled(30))
    assert all(r["state"] == "synced" for r in rows)
    assert (
        len([t for t in live.records("Task") if str(t.get("CallObject", "")).startswith("b-")])
        == 30
    )
    # One describe, one Composite with the searches, one Composite with the Tasks.
    assert live.sandbox.state.api_calls == {"composite": 3}


def add_contacts(live: Live, phone: str, count: int, newest: str) -> str:
    """``count`` Contacts with one phone number; the one named ``newest`` is the most
    recently modified. Returns its id."""
    from callbridge.sandbox.records import create_record
    from callbridge.sandbox.state import sf_datetime

    state = live.sandbox.state
    sobject = state.schema.get("Contact")
    assert sobject is not None
    for index in range(count - 1):
        create_record(state, sobject, {"LastName": f"代表{index}", "Phone": phone}, user_id="005")
    newest_id = create_record(state, sobject, {"LastName": newest, "Phone": phone}, user_id="005")
    # A day after the org's clock: later than every record the test makes, whatever the date.
    state.table(sobject)[newest_id[:15]]["LastModifiedDate"] = sf_datetime(state.now() + 86400)
    return newest_id


async def test_searches_cut_at_2000_results_are_split(connected: Live) -> None:
    """SOSL returns at most 2,000 records: a search of many numbers that fills it is
    asked again in halves, one number alone object by object (newest first); a number
    and object that still fill a search fail the rows of a link that wants them all."""
    from callbridge.sandbox.records import create_record

    live = connected
    # Two switchboard numbers shared by 1,200 Contacts each: one search of both returns
    # 2,000 records, some of each number's lost. A third number is only an Account's
    # (priority 2): the 2,000 Contacts crowd it out of that search.
    first_a = add_contacts(live, "03-5555-0001", 1200, "最新A")
    first_b = add_contacts(live, "03-5555-0002", 1200, "最新B")
    state = live.sandbox.state
    accounts = state.schema.get("Account")
    assert accounts is not None
    account = create_record(
        state, accounts, {"Name": "代表株式会社", "Phone": "03-5555-0003"}, user_id="005"
    )
    # One number alone with more Contacts than a search returns.
    first_d = add_contacts(live, "03-5555-0004", 2050, "最新D")
    newest = await make_link(live, status="paused", on_multiple="first")
    every = await make_link(
        live, name="all", status="paused", on_multiple="all", phone_numbers=["0501230009"]
    )
    for call_id, tel in (
        ("s-a", "0355550001"),
        ("s-b", "0355550002"),
        ("s-c", "0355550003"),
        ("s-d", "0355550004"),
    ):
        await make_call(live, call_id, tel)
    await make_call(live, "s-all", "0355550004", called="0501230009")
    live.sandbox.state.api_calls.clear()
    for link in (newest, every):
        enabled = await live.api(
            "PATCH", f"/api/v1/history-links/{link['id']}", json={"status": "enabled"}
        )
        assert enabled.status_code == 200, enabled.text
    rows = await wait_rows(live, newest["id"], settled(4), timeout=60)
    assert {r["call_id"]: r["state"] for r in rows} == dict.fromkeys(
        ("s-a", "s-b", "s-c", "s-d"), "synced"
    )
    assert [t["WhoId"] for t in tasks_of(live, "s-a")] == [first_a]
    assert [t["WhoId"] for t in tasks_of(live, "s-b")] == [first_b]
    [on_account] = tasks_of(live, "s-c")
    assert on_account["WhatId"] == account and on_account["WhoId"] is None
    assert [t["WhoId"] for t in tasks_of(live, "s-d")] == [first_d]
    [row] = await wait_rows(live, every["id"], settled(1), timeout=60)
    assert row["state"] == "failed" and row["reason_code"] == "history_too_many_matches"
    assert row["reason"].startswith("2000 or more Contact records matched")
    assert tasks_of(live, "s-all") == []
    searches = [r for r in live.sandbox.rest_requests() if b"/search?q=FIND" in r.body]
    # Composite requests with searches: the "first" link's four numbers (full), its
    # halves (both full), the four numbers alone (0355550004 full), that number object by
    # object newest first; the "all" link's number (full), then object by object.
    newest_first = [r for r in searches if b"ORDER%20BY%20LastModifiedDate%20DESC" in r.body]
    assert (len(searches), len(newest_first)) == (6, 2)


async def test_record_errors_fail_that_row_only(connected: Live) -> None:
    live = connected
    live.sandbox.knobs.add_validation_rule(
        "Task", "B_PhoneFrom__c", "0312345678", "この番号の活動は登録できません"
    )
    link = await make_link(live)
    await make_call(live, "v-1", "0312345678")
    await make_call(live, "v-2", "09087654321")
    rows = {r["call_id"]: r for r in await wait_rows(live, link["id"], settled(2))}
    assert rows["v-1"]["state"] == "failed"
    assert rows["v-1"]["reason"] == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: この番号の活動は登録できません"
    )
    assert rows["v-1"]["reason_code"] == "history_salesforce_error"
    shown = {r["call_id"]: r for r in await in_japanese(live, link["id"])}
    assert shown["v-1"]["reason"] == (
        "Salesforce のエラー: FIELD_CUSTOM_VALIDATION_EXCEPTION: この番号の活動は登録できません"
    )
    assert rows["v-2"]["state"] == "synced"
    live.sandbox.knobs.validation_rules.clear()
    retried = await live.api("POST", f"/api/v1/history-links/{link['id']}/histories/retry", json={})
    assert retried.json() == {"retried": 1}
    rows = {
        r["call_id"]: r
        for r in await wait_rows(
            live, link["id"], lambda rs: all(r["state"] == "synced" for r in rs)
        )
    }
    assert len(tasks_of(live, "v-1")) == 1


@pytest.mark.parametrize("failure", ["hang_after_commit", "garbled_after_commit"])
async def test_an_unknown_outcome_never_duplicates(connected: Live, failure: str) -> None:
    live = connected
    live.sandbox.knobs.hang_seconds = 30
    link = await make_link(live)
    # The describe and the search go through; the Tasks' Composite is saved by the org,
    # then its answer is lost (timeout) or unreadable.
    await make_call(live, "warm", "09087654321")
    await wait_rows(live, link["id"], settled(1))
    live.sandbox.knobs.fail_next(
        1, failure, path_contains="/composite", body_contains='"type":"Task"'
    )
    await make_call(live, "u-1", "0312345678")
    rows = await wait_rows(
        live, link["id"], lambda rs: len(rs) == 2 and all(r["state"] == "synced" for r in rs), 60
    )
    assert len(tasks_of(live, "u-1")) == 1
    # Before sending again, callbridge asked which Tasks exist.
    asked = [r for r in live.sandbox.rest_requests() if b"B_UniqueId__c%20IN" in r.body]
    assert len(asked) == 1
    assert rows[0]["call_id"] == "u-1" and rows[0]["task_ids"] == [tasks_of(live, "u-1")[0]["Id"]]


async def test_notes_update_the_existing_task(connected: Live, live_settings: Settings) -> None:
    from sqlalchemy import select

    from callbridge.db.engine import create_engine, create_sessionmaker
    from callbridge.history.service import set_call_notes
    from callbridge.models import HistoryRow

    live = connected
    link = await make_link(live)
    await make_call(live, "notes-1", "09087654321")
    await wait_rows(live, link["id"], settled(1))
    engine = create_engine(live_settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            call_pk = await session.scalar(
                select(HistoryRow.call_pk).where(HistoryRow.call_id == "notes-1")
            )
            assert call_pk is not None
            assert await set_call_notes(session, call_pk, "折り返し希望。請求書の件。") == 1
            await session.commit()
    finally:
        await engine.dispose()
    loop_tasks = tasks_of(live, "notes-1")
    [task] = loop_tasks
    import asyncio

    deadline = asyncio.get_running_loop().time() + 20
    while tasks_of(live, "notes-1")[0].get("Description") != "折り返し希望。請求書の件。":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    [again] = tasks_of(live, "notes-1")
    assert again["Id"] == task["Id"]


async def test_case_and_task(connected: Live) -> None:
    live = connected
    link = await make_link(live, activity="case_and_task")
    await make_call(live, "case-1", "09087654321")
    await make_call(live, "case-2", "0120-123-456")  # a Lead: the Task only
    await wait_rows(live, link["id"], settled(2))
    [task] = tasks_of(live, "case-1")
    case = next(c for c in live.records("Case") if c["Id"] == task["WhatId"])
    assert case["ContactId"] == contact(live, "高橋")["Id"] and case["Origin"] == "Phone"
    assert task["WhoId"] == contact(live, "高橋")["Id"]
    [lead_task] = tasks_of(live, "case-2")
    lead = next(r for r in live.records("Lead") if r["LastName"] == "中村")
    assert lead_task["WhoId"] == lead["Id"] and lead_task["WhatId"] is None


@pytest.mark.parametrize("failure", ["hang_after_commit", "garbled_after_commit"])
async def test_case_and_task_once_when_the_cases_answer_is_lost(
    connected: Live, failure: str
) -> None:
    """Salesforce saves the Cases, then their answer is lost (timeout) or unreadable: the
    next attempt finds those Cases (SOQL on their subject) and creates only the Tasks."""
    live = connected
    live.sandbox.knobs.hang_seconds = 30
    link = await make_link(live, activity="case_and_task", on_multiple="all")
    await make_call(live, "case-warm", "09087654321")
    await wait_rows(live, link["id"], settled(1))
    live.sandbox.knobs.fail_next(
        1, failure, path_contains="/composite", body_contains='"type":"Case"'
    )
    await make_call(live, "case-lost", "09087654321")  # one Contact
    await make_call(live, "case-two", "07075373713")  # two Contacts (on_multiple "all")
    rows = await wait_rows(
        live, link["id"], lambda rs: len(rs) == 3 and all(r["state"] == "synced" for r in rs), 60
    )
    assert not live.sandbox.knobs.failures, "the Cases' answer was lost"
    for call_id, contacts in (("case-lost", ["高橋"]), ("case-two", ["佐藤", "田中"])):
        subject = f"{call_id} {'09087654321' if call_id == 'case-lost' else '07075373713'}"
        made = [c for c in live.records("Case") if c["Subject"] == subject]
        tasks = tasks_of(live, call_id)
        assert len(made) == len(contacts) and len(tasks) == len(contacts), (made, tasks)
        assert sorted(c["ContactId"] for c in made) == sorted(
            contact(live, name)["Id"] for name in contacts
        )
        # Each Task is inside the Case made for its Contact.
        by_contact = {c["ContactId"]: c["Id"] for c in made}
        assert all(t["WhatId"] == by_contact[t["WhoId"]] for t in tasks)
        [row] = [r for r in rows if r["call_id"] == call_id]
        assert sorted(row["task_ids"]) == sorted(t["Id"] for t in tasks)
    # Before creating anything again, callbridge asked which Cases exist, once.
    asked = [r for r in live.sandbox.rest_requests() if b"FROM%20Case%20WHERE" in r.body]
    assert len(asked) == 1


async def test_invalid_grant_waits_for_reauthorisation(connected: Live) -> None:
    live = connected
    link = await make_link(live)
    live.sandbox.state.expire_access_tokens()
    live.sandbox.knobs.fail_next(1, "invalid_session", target="oauth")
    await make_call(live, "grant-1", "09087654321")
    [row] = await wait_rows(
        live, link["id"], lambda rows: bool(rows) and "OAuth account" in (rows[0]["reason"] or "")
    )
    assert row["state"] == "waiting"
    assert row["reason"].startswith("waiting for the OAuth account: ")
    got = (await live.api("GET", f"/api/v1/history-links/{link['id']}")).json()
    assert got["backoff_reason"] == row["reason"]
    [row] = await in_japanese(live, link["id"])
    assert row["reason"].startswith("OAuth アカウントの再接続を待っています: ")
    assert tasks_of(live, "grant-1") == []


@pytest.mark.parametrize("failure", ["unavailable", "request_limit"])
async def test_limits_and_5xx_back_the_link_off_then_sync(connected: Live, failure: str) -> None:
    live = connected
    link = await make_link(live)
    await make_call(live, "warm-2", "09087654321")
    await wait_rows(live, link["id"], settled(1))
    # Salesforce keeps failing until the test has seen the link back off.
    live.sandbox.knobs.fail_next(1000, failure, path_contains="/composite")
    await make_call(live, "off-1", "0312345678")
    await wait_rows(
        live,
        link["id"],
        lambda rows: any(
            r["call_id"] == "off-1" and (r["reason"] or "").startswith("Salesforce unavailable")
            for r in rows
        ),
    )
    got = (await live.api("GET", f"/api/v1/history-links/{link['id']}")).json()
    assert got["backoff_reason"].startswith("Salesforce unavailable, retried later: ")
    assert got["backoff_reason_code"] == "history_backoff"
    got = (
        await live.http.get(
            f"/api/v1/history-links/{link['id']}",
            headers={**live.admin, "Accept-Language": "ja"},
        )
    ).json()
    assert got["backoff_reason"].startswith("Salesforce を利用できないため、後で再試行します: ")
    assert tasks_of(live, "off-1") == []
    live.sandbox.knobs.clear_failures()
    rows = await wait_rows(
        live, link["id"], lambda rs: all(r["state"] == "synced" for r in rs), timeout=60
    )
    assert len(tasks_of(live, "off-1")) == 1 and len(rows) == 2
    got = (await live.api("GET", f"/api/v1/history-links/{link['id']}")).json()
    assert got["backoff_reason"] is None


async def test_the_answering_agent_owns_the_task(connected: Live) -> None:
    live = connected
    sf_user = next(iter(live.sandbox.state.records["User"].values()))["Id"]
    created = await live.api(
        "POST",
        "/api/v1/users",
        json={
            "username": "agent100",
            "password": "agent password",
            "role": "agent",
            "agent_id": "A100",
            "salesforce_user_id": sf_user,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["salesforce_user_id"] == sf_user
    link = await make_link(
        live,
        owner_from_agent=True,
        field_mappings=[
            {
                "field": "CallDisposition",
                "template": "{QUEUE}",
                "default": "通常",
                "conditions": [{"variable": "TEL", "equals": "0312345678", "value": "VIP"}],
            }
        ],
    )
    await make_call(live, "own-1", "09087654321")
    await make_call(live, "own-2", "0312345678")
    await wait_rows(live, link["id"], settled(2))
    [task] = tasks_of(live, "own-1")
    assert task["OwnerId"] == sf_user
    assert task["CallDisposition"] == "通常"  # no condition holds, {QUEUE} is empty: default
    [vip] = tasks_of(live, "own-2")
    assert vip["CallDisposition"] == "VIP"
