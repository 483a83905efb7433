"""The configuration API and UI answer bad input with 404 / 409 / 422, never 500
(each case here was a 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import callbridge.users.service as user_service
from tests.helpers import Gated, bearer, csrf_from, make_token, make_user, sign_in

HUGE = "99999999999999999999"
IVR = {
    "key": "lookup",
    "url": "https://crm.example.com/lookup",
    "responses": [{"priority": 1, "transfer": {"kind": "hangup"}}],
}


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/users/{HUGE}",
        f"/api/v1/tokens/{HUGE}",
        f"/api/v1/oauth-accounts/{HUGE}",
        f"/api/v1/call-actions/{HUGE}",
        "/api/v1/users/2147483648",
    ],
)
async def test_ids_beyond_the_database_answer_404(client, admin, path) -> None:
    response = await client.get(path, headers=admin)
    assert response.status_code == 404
    assert response.json()["detail"].startswith("Nothing has the id ")


async def test_an_offset_beyond_the_database_answers_422(client, admin) -> None:
    response = await client.get(f"/api/v1/users?offset={HUGE}", headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


async def test_ids_beyond_the_database_in_ui_routes_answer_404(app, client) -> None:
    await make_user(app)
    await sign_in(client)
    for path in (f"/users/{HUGE}/edit", f"/call-actions/{HUGE}", f"/oauth-accounts/{HUGE}"):
        response = await client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 404, path


async def test_a_call_id_of_digits_is_still_a_call_id(client, admin) -> None:
    # call_id is the PBX's text: a long number is looked up, not refused as an id.
    response = await client.get(f"/api/v1/calls/{HUGE}", headers=admin)
    assert response.status_code == 404
    assert "Nothing has the id" not in response.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/call-actions/{rule}", {"enabled": None}, "enabled"),
        ("/api/v1/call-actions/{rule}", {"event": None}, "event"),
        ("/api/v1/call-actions/{rule}", {"url": None}, "url"),
        ("/api/v1/call-actions/{rule}", {"order": None}, "order"),
        ("/api/v1/call-actions/{rule}", {"condition_code": None}, "condition_code"),
        ("/api/v1/ivrs/lookup", {"name": None}, "name"),
        ("/api/v1/ivrs/lookup", {"digits_pattern": None}, "digits_pattern"),
        ("/api/v1/users/{user}", {"role": None}, "role"),
        ("/api/v1/oauth-accounts/{account}", {"client_id": None}, "client_id"),
    ],
)
async def test_patch_with_null_for_a_field_that_cannot_be_empty_is_422(
    app, client, admin, path, body, field
) -> None:
    rule = await _created(
        client,
        admin,
        "/api/v1/call-actions",
        {"event": "queue", "url": "https://crm.example.com/x"},
    )
    await _created(client, admin, "/api/v1/ivrs", IVR)
    user = await _created(
        client, admin, "/api/v1/users", {"username": "u", "password": "correct horse"}
    )
    account = await _created(
        client,
        admin,
        "/api/v1/oauth-accounts",
        {"name": "a", "client_id": "c", "use_pkce": True},
    )
    target = path.format(rule=rule["id"], user=user["id"], account=account["id"])
    response = await client.patch(target, json=body, headers=admin)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert "must not be null: leave the field out to keep its value" in error["msg"]
    # Nullable fields still take null.
    response = await client.patch(
        f"/api/v1/call-actions/{rule['id']}", json={"oauth_account_id": None}, headers=admin
    )
    assert response.status_code == 200


async def _created(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, body: dict[str, Any]
) -> Any:
    response = await client.post(path, json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def test_patching_an_ivrs_responses_takes_the_same_defaults_as_creating(
    client, admin
) -> None:
    await _created(client, admin, "/api/v1/ivrs", IVR)
    response = await client.patch(
        "/api/v1/ivrs/lookup", json={"responses": [{"priority": 1}]}, headers=admin
    )
    assert response.status_code == 200, response.text
    created = await _created(
        client, admin, "/api/v1/ivrs", {**IVR, "key": "other", "responses": [{"priority": 1}]}
    )

    def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "id"} for item in items]

    assert without_ids(response.json()["responses"]) == without_ids(created["responses"])
    assert response.json()["responses"][0]["transfer"] == {"kind": "end_rule", "target": None}


async def test_an_ivr_key_of_non_ascii_digits_is_404(client, admin) -> None:
    response = await client.get("/api/v1/ivrs/%C2%B2", headers=admin)
    assert (response.status_code, response.json()["detail"]) == (404, "IVR '²' does not exist")


async def test_oauth_account_names_compare_without_case_on_both_databases(client, admin) -> None:
    body = {"name": "Èacct", "client_id": "c", "use_pkce": True}
    await _created(client, admin, "/api/v1/oauth-accounts", body)
    for name in ("Èacct", "èACCT"):
        response = await client.post(
            "/api/v1/oauth-accounts", json={**body, "name": name}, headers=admin
        )
        assert response.status_code == 409, name
        assert response.json()["detail"] == f"an OAuth account named '{name}' already exists"


async def test_a_user_deleted_while_being_changed_answers_404(
    app, client, admin, monkeypatch
) -> None:
    user = await _created(
        client, admin, "/api/v1/users", {"username": "u", "password": "correct horse"}
    )
    gate = Gated(user_service.end_all_sessions)
    monkeypatch.setattr(user_service, "end_all_sessions", gate)
    gate.hold()
    import asyncio

    patch = asyncio.create_task(
        client.patch(
            f"/api/v1/users/{user['id']}", json={"password": "another horse"}, headers=admin
        )
    )
    await gate.started.wait()  # the PATCH has read the user
    deleted = await client.delete(f"/api/v1/users/{user['id']}", headers=admin)
    assert deleted.status_code == 204
    gate.gate.set()
    response = await patch
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "it was deleted by another request meanwhile"


@pytest.mark.parametrize(
    "query", ["from=2026-12-01", "to=2026-12-01T10:00", "from=2026-12-01T10:00:00Z"]
)
async def test_calls_take_dates_and_times_without_offset_in_local_time(
    client, admin, query
) -> None:
    response = await client.get(f"/api/v1/calls?{query}", headers=admin)
    assert (response.status_code, response.json()) == (200, {"items": [], "total": 0})


async def test_calls_at_the_edge_of_the_calendar(app, client, admin) -> None:
    response = await client.get("/api/v1/calls?from=0001-01-01T00:00", headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "from"]
    await make_user(app)
    await sign_in(client)
    for query in ("to=9999-12-31", "from=0001-01-01", f"page={HUGE}"):
        page = await client.get(f"/calls?{query}", headers={"Accept": "text/html"})
        assert page.status_code == 200, query


async def test_an_empty_token_form_shows_its_errors(app, client) -> None:
    await make_user(app)
    await sign_in(client)
    page = await client.get("/tokens")
    response = await client.post("/tokens", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 422
    assert '<div class="error" id="e-name">Too short: at least 1 characters.</div>' in response.text
    assert '<div class="error" id="e-scope">Choose one of the offered values.</div>' in (
        response.text
    )
