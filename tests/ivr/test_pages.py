"""The IVR admin pages: list, settings form with errors and warnings in place, response
settings and steps on their own forms, the re-authorisation banner, the simulator."""

from __future__ import annotations

import re

import httpx
import pytest
import respx
from fastapi import FastAPI

from tests.helpers import csrf_from, make_user, sign_in
from tests.ivr.conftest import CRM, add_account, create_ivr, simple_ivr
from tests.ivr.seeds import seed_000_ivr


@pytest.fixture
async def browser_session(app: FastAPI, client: httpx.AsyncClient) -> str:
    """Signed in as an administrator; returns a CSRF token for forms."""
    await make_user(app)
    await sign_in(client)
    page = await client.get("/ivrs")
    assert page.status_code == 200
    return csrf_from(page.text)


def form(**fields: str) -> dict[str, str]:
    base = {
        "key": "lookup",
        "name": "代表番号",
        "auth_type": "none",
        "url": CRM + "/lookup?tel={TEL}",
        "method": "GET",
        "timeout_seconds": "2",
        "max_digits": "0",
    }
    base.update(fields)
    return base


async def test_list_and_navigation(
    client: httpx.AsyncClient, admin: dict[str, str], browser_session: str
) -> None:
    empty = await client.get("/ivrs")
    assert "No IVR yet." in empty.text and 'href="/ivrs"' in empty.text
    await create_ivr(client, admin, simple_ivr(name="代表番号"))
    listed = await client.get("/ivrs")
    assert "<code>lookup</code>" in listed.text and "代表番号" in listed.text


async def test_create_with_the_form_then_edit(
    client: httpx.AsyncClient, browser_session: str
) -> None:
    created = await client.post(
        "/ivrs/new",
        data={
            **form(),
            "csrf_token": browser_session,
            "on_error_guidance_type": "tts",
            "on_error_guidance_text": "ただいま混み合っております。",
            "on_error_transfer_kind": "callcenter",
            "on_error_transfer_target": "support",
        },
    )
    assert created.status_code == 303
    location = created.headers["location"]
    assert re.fullmatch(r"/ivrs/\d+\?saved=1", location)
    page = await client.get(location)
    assert "Saved." in page.text
    assert "ただいま混み合っております。" in page.text
    assert "No response settings yet" in page.text

    ivr_path = location.split("?")[0]
    changed = await client.post(
        ivr_path, data={**form(name="新しい名前", headers="なし"), "csrf_token": browser_session}
    )
    assert changed.status_code == 200
    assert "新しい名前" in changed.text
    assert "「なし」 (none) was read as empty." in changed.text


async def test_errors_are_shown_next_to_their_field_with_the_position(
    client: httpx.AsyncClient, browser_session: str
) -> None:
    response = await client.post(
        "/ivrs/new",
        data={
            **form(url=CRM + "/x?tel={TELL}", digits_pattern="/(/"),
            "csrf_token": browser_session,
        },
    )
    assert response.status_code == 422
    text = response.text
    assert "The IVR was not saved" in text
    assert 'id="e-url"' in text and "Unknown variable {TELL}" in text
    assert "position 30" in text
    assert 'id="e-digits_pattern"' in text
    assert 'value="代表番号"' in text  # what was typed is kept


async def test_response_settings_and_steps_have_their_own_forms(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], browser_session: str
) -> None:
    body = await create_ivr(client, admin, simple_ivr(responses=[]))
    ivr_id = body["id"]
    new = await client.get(f"/ivrs/{ivr_id}/responses/new")
    assert 'name="priority" value="1"' in new.text
    saved = await client.post(
        f"/ivrs/{ivr_id}/responses/new",
        data={
            "csrf_token": browser_session,
            "priority": "1",
            "response_code": "200",
            "response_pattern": '/"searchRecords":¥[¥]/',
            "extract_pattern": "なし",
            "guidance_type": "tts",
            "guidance_text": "お電話ありがとうございます。",
            "transfer_kind": "callcenter",
            "transfer_target": "support",
        },
    )
    assert saved.status_code == 303
    stored = (await client.get("/api/v1/ivrs/lookup", headers=admin)).json()
    [setting] = stored["responses"]
    assert setting["response_pattern"] == '/"searchRecords":¥[¥]/'
    assert setting["extract_pattern"] == ""
    assert setting["transfer"] == {"kind": "callcenter", "target": "support"}

    edit = await client.get(f"/ivrs/{ivr_id}/responses/{setting['id']}")
    assert "Read ¥ as a backslash" in edit.text
    wrong = await client.post(
        f"/ivrs/{ivr_id}/responses/{setting['id']}",
        data={
            "csrf_token": browser_session,
            "priority": "1",
            "response_code": "200",
            "guidance_type": "tts",
            "guidance_text": "{CODE1}様",
            "transfer_kind": "callcenter",
            "transfer_target": "support",
        },
    )
    assert wrong.status_code == 422
    assert 'id="e-guidance_text"' in wrong.text and "{CODE1} is not available" in wrong.text
    no_target = await client.post(
        f"/ivrs/{ivr_id}/responses/{setting['id']}",
        data={"csrf_token": browser_session, "priority": "1", "transfer_kind": "callcenter"},
    )
    assert no_target.status_code == 422
    assert 'id="e-transfer_target"' in no_target.text and "needs a target" in no_target.text

    step = await client.post(
        f"/ivrs/{ivr_id}/steps/new",
        data={
            "csrf_token": browser_session,
            "name": "contact",
            "url": CRM + "/contacts?tel={TEL}",
            "method": "GET",
            "extract_pattern": "CONTACT_ID = $.records[0].Id",
        },
    )
    assert step.status_code == 303
    page = await client.get(f"/ivrs/{ivr_id}")
    assert "<code>contact</code>" in page.text and "{RESPONSE_CONTACT_ID}" in page.text
    stored = (await client.get("/api/v1/ivrs/lookup", headers=admin)).json()
    deleted = await client.post(
        f"/ivrs/{ivr_id}/steps/{stored['steps'][0]['id']}/delete",
        data={"csrf_token": browser_session},
    )
    assert deleted.status_code == 303
    assert (await client.get("/api/v1/ivrs/lookup", headers=admin)).json()["steps"] == []


async def test_the_page_says_why_an_account_needs_reconnecting(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], browser_session: str
) -> None:
    account = await add_account(
        app,
        status="needs_reauthorization",
        access_token=None,
        detail="The provider refused the refresh token (invalid_grant).",
    )
    body = await create_ivr(client, admin, seed_000_ivr(account))
    page = await client.get(f"/ivrs/{body['id']}")
    assert 'id="reauthorize"' in page.text
    assert "answers request_error at once" in page.text
    assert "invalid_grant" in page.text
    listed = await client.get("/ivrs")
    assert "OAuth account needs reconnecting" in listed.text


async def test_the_simulator_shows_what_the_caller_hears_and_why(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    browser_session: str,
    crm: respx.MockRouter,
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text='{"found":true,"name":"CDF 株式会社"}')
    body = await create_ivr(client, admin, simple_ivr())
    result = await client.post(
        f"/ivrs/{body['id']}/test",
        data={"csrf_token": browser_session, "tel": "07075373713", "send": "1"},
        headers={"HX-Request": "true"},
    )
    assert result.status_code == 200
    text = result.text
    assert "CDF 株式会社様、お電話ありがとうございます。" in text
    assert "Call center" in text and "<strong>support</strong>" in text
    assert "Priority 1</strong> — did not match" in text
    assert "is not in the body" in text
    assert "Priority 2</strong> — matched" in text
    assert "GET https://crm.example.com/lookup?tel=07075373713" in text


async def test_pages_are_for_administrators(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app, username="agent", role="agent")
    await sign_in(client, username="agent")
    assert (await client.get("/ivrs")).status_code == 403
