"""The call-action pages: list per event, form errors next to fields with positions,
reordering, enabling, deleting, and the test panel."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from tests.call_actions.conftest import FakeCrm
from tests.helpers import csrf_from, make_user, sign_in


async def signed_in(app: FastAPI, client: httpx.AsyncClient) -> str:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    return csrf_from((await client.get("/call-actions/new")).text)


def form(token: str, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "event": "queue",
        "order": "",
        "auth_type": "none",
        "oauth_account_id": "",
        "url": "",
        "method": "GET",
        "headers": "",
        "body": "",
        "timeout_seconds": "10",
        "extract_pattern": "",
        "json_extractions": "",
        "condition_code": "",
        "condition_pattern": "",
        "memo": "",
        "enabled": "1",
        "basic_username": "",
    }
    return {**base, **fields}


async def test_errors_show_next_to_their_field_with_the_position(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await signed_in(app, client)
    answer = await client.post(
        "/call-actions/new",
        data=form(token, url="https://x.example/{TELNAM}", extract_pattern="/(?P<A>[/"),
    )
    assert answer.status_code == 422
    assert re.search(r'id="e-url">Unknown variable \{TELNAM\}', answer.text)
    assert "position 18" in answer.text
    assert 'id="e-extract_pattern"' in answer.text
    assert "https://x.example/{TELNAM}" in answer.text  # what was typed is kept


async def test_create_edit_reorder_toggle_delete(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client)
    for memo in ("memo-alpha", "memo-beta"):
        created = await client.post(
            "/call-actions/new",
            data=form(token, url="https://x.example/{RESPONSE_CASE_ID}", memo=memo),
        )
        assert created.status_code == 303
    edit = await client.get(created.headers["location"])
    assert "is not produced by any earlier rule" in edit.text
    rule_id = int(created.headers["location"].split("/")[2].split("?")[0])
    listing = await client.get("/call-actions")
    assert listing.text.index("memo-alpha") < listing.text.index("memo-beta")
    moved = await client.post(
        f"/call-actions/{rule_id}/move", data={"csrf_token": token, "direction": "up"}
    )
    assert moved.status_code == 303
    listing = await client.get("/call-actions")
    assert listing.text.index("memo-beta") < listing.text.index("memo-alpha")
    await client.post(f"/call-actions/{rule_id}/toggle", data={"csrf_token": token})
    listing = await client.get("/call-actions")
    assert "disabled" in listing.text
    saved = await client.post(
        f"/call-actions/{rule_id}",
        data=form(token, url="https://x.example/changed", memo="memo-beta, edited"),
    )
    assert saved.status_code == 200 and "memo-beta, edited" in saved.text
    gone = await client.post(f"/call-actions/{rule_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    assert "memo-beta, edited" not in (await client.get("/call-actions")).text


async def test_the_test_panel(app: FastAPI, client: httpx.AsyncClient, crm: FakeCrm) -> None:
    token = await signed_in(app, client)
    created = await client.post(
        "/call-actions/new",
        data=form(
            token,
            url=crm.base_url + "/contact?tel={TEL}",
            extract_pattern='/"Id":"(?P<CONTACT_ID>[^"]*)"/',
        ),
    )
    rule_id = created.headers["location"].split("/")[2].split("?")[0]
    shown = await client.post(
        f"/call-actions/{rule_id}/test",
        data={"csrf_token": token, "TEL": "07075373713", "ID": "t", "send": "0"},
    )
    assert shown.status_code == 200
    assert "/contact?tel=07075373713" in shown.text and crm.received == []
    sent = await client.post(
        f"/call-actions/{rule_id}/test",
        data={
            "csrf_token": token,
            "TEL": "07075373713",
            "ID": "t",
            "send": "1",
            "more": "RESPONSE_X=1",
        },
    )
    assert "003A0000001" in sent.text and "RESPONSE_CONTACT_ID" in sent.text
    assert len(crm.received) == 1
