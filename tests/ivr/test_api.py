"""The ``ivrs`` configuration API: fields, response settings and steps, save-time
validation with positions, warnings, write-only secrets (DESIGN.md §3.6, §3.8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.ivr.conftest import add_account, create_ivr, simple_ivr
from tests.ivr.seeds import NAMED_GREETING, SEED_URL, seed_000_ivr, seed_003_ivr


def messages(body: dict[str, Any], field: str) -> list[str]:
    return [w["message"] for w in body["warnings"] if w["field"] == field]


async def invalid(
    client: httpx.AsyncClient, admin: dict[str, str], fields: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.post("/api/v1/ivrs", json=fields, headers=admin)
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


async def test_seed_000_pasted_verbatim_is_saved_with_its_normalisations(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    account = await add_account(app)
    body = await create_ivr(client, admin, seed_000_ivr(account))
    assert body["key"] == "seed000" and body["revision"] == 1
    assert body["url"] == SEED_URL  # stored as written; normalised when compiled
    assert [r["priority"] for r in body["responses"]] == [1, 2]
    assert body["responses"][0]["response_pattern"] == '/"searchRecords":¥[¥]/'
    assert body["responses"][1]["guidance"] == {"type": "tts", "text": NAMED_GREETING}
    assert body["responses"][1]["transfer"] == {"kind": "callcenter", "target": "support"}
    assert body["produces"] == ["RESPONSE_NAME"]
    # 「なし」 from the manual's empty cells is read as empty, and said so.
    assert body["headers"] == "" and body["responses"][0]["extract_pattern"] == ""
    assert messages(body, "headers") == ["「なし」 (none) was read as empty."]
    assert messages(body, "responses.1.response_pattern") == ["「なし」 (none) was read as empty."]
    pattern_notes = [w for w in body["warnings"] if w["field"] == "responses.0.response_pattern"]
    assert [w["position"] for w in pattern_notes if "¥" in w["message"]] == [17, 19]
    assert any("search ?q=" in m for m in messages(body, "url"))
    assert any("greedy" in m for m in messages(body, "responses.1.extract_pattern"))


async def test_read_by_key_or_id_list_update_and_delete(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await create_ivr(client, admin, simple_ivr(name="代表番号"))
    by_key = (await client.get("/api/v1/ivrs/lookup", headers=admin)).json()
    by_id = (await client.get(f"/api/v1/ivrs/{created['id']}", headers=admin)).json()
    assert by_key == by_id and by_key["name"] == "代表番号"
    listed = (await client.get("/api/v1/ivrs", headers=admin)).json()
    assert listed["total"] == 1 and listed["items"][0]["key"] == "lookup"

    patched = await client.patch("/api/v1/ivrs/lookup", json={"name": "new"}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "new" and patched.json()["revision"] == 2
    assert len(patched.json()["responses"]) == 2  # untouched lists are kept

    only_one = [{"priority": 5, "response_code": "*", "transfer": {"kind": "hangup"}}]
    patched = await client.patch("/api/v1/ivrs/lookup", json={"responses": only_one}, headers=admin)
    assert [r["priority"] for r in patched.json()["responses"]] == [5]
    assert patched.json()["responses"][0]["transfer"] == {"kind": "hangup", "target": None}

    assert (await client.delete("/api/v1/ivrs/lookup", headers=admin)).status_code == 204
    missing = await client.get("/api/v1/ivrs/lookup", headers=admin)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "IVR 'lookup' does not exist", "code": "not_found"}


async def test_duplicate_key_is_a_conflict(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await create_ivr(client, admin, simple_ivr())
    response = await client.post("/api/v1/ivrs", json=simple_ivr(), headers=admin)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "an IVR with key 'lookup' already exists",
        "code": "key_taken",
    }


@pytest.mark.parametrize(
    ("change", "loc", "fragment", "position"),
    [
        (
            {"url": "https://crm.example.com/x?tel={TELL}"},
            ["body", "url"],
            "Unknown variable {TELL}",
            30,
        ),
        (
            {"responses.1.extract_pattern": '/"name":"(?P<NAME>[^"]*"/'},
            ["body", "responses", 1, "extract_pattern"],
            "Invalid pattern",
            None,
        ),
        (
            {"responses.1.guidance": {"type": "tts", "text": "{CODE1}様 {CODE2}"}},
            ["body", "responses", 1, "guidance", "text"],
            "{CODE2} is not available: this setting's extraction pattern has 1 group(s)",
            9,
        ),
        (
            {"responses.0.step": "contact"},
            ["body", "responses", 0, "step"],
            "No step is called 'contact'",
            0,
        ),
        (
            {"digits_pattern": "/[0-9/"},
            ["body", "digits_pattern"],
            "Invalid pattern",
            None,
        ),
        (
            {"auth_type": "oauth"},
            ["body", "oauth_account_id"],
            "Choose the OAuth account",
            0,
        ),
        (
            {"auth_type": "oauth", "oauth_account_id": 999},
            ["body", "oauth_account_id"],
            "OAuth account 999 does not exist",
            None,
        ),
        (
            {"auth_type": "bearer"},
            ["body", "bearer_token"],
            "needs a token",
            None,
        ),
        (
            {"url": "{SVADDR}api?x={OAUTH_INSTANCE_URL}"},
            ["body", "url"],
            "choose the OAuth authentication type",
            None,
        ),
    ],
)
async def test_invalid_fields_are_refused_with_their_path_and_position(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    change: dict[str, Any],
    loc: list[Any],
    fragment: str,
    position: int | None,
) -> None:
    fields = simple_ivr()
    for path, value in change.items():
        target: Any = fields
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    detail = await invalid(client, admin, fields)
    matching = [d for d in detail if d["loc"] == loc]
    assert matching, detail
    assert fragment in matching[0]["msg"], matching[0]["msg"]
    if position is not None:
        assert matching[0]["position"] == position
    assert (await client.get("/api/v1/ivrs", headers=admin)).json()["total"] == 0


@pytest.mark.parametrize(
    ("fields", "loc", "fragment"),
    [
        ({"responses": [{"priority": 1, "transfer": {"kind": "callcenter"}}]},
         ["body", "responses", 0, "transfer"], "needs a target"),
        ({"responses": [{"priority": 1, "transfer": {"kind": "hangup", "target": "x"}}]},
         ["body", "responses", 0, "transfer"], "takes no target"),
        ({"responses": [{"priority": 1}, {"priority": 1}]},
         ["body", "responses"], "priority 1 is used twice"),
        ({"responses": [{"priority": 1, "response_code": "20x"}]},
         ["body", "responses", 0, "response_code"], '"2xx"'),
        ({"steps": [{"name": "main", "url": "https://crm.example.com/"}]},
         ["body", "steps"], "'main' is the IVR's own request"),
        ({"timeout_seconds": 0}, ["body", "timeout_seconds"], "greater than or equal"),
        ({"max_digits": 65}, ["body", "max_digits"], "less than or equal"),
        ({"key": "with space"}, ["body", "key"], "pattern"),
        ({"pbx_variables": ["lang"]}, ["body", "pbx_variables"], "not a variable name"),
        ({"on_error": {"guidance": {"type": "video"}}}, ["body", "on_error", "guidance"], "tag"),
    ],
)  # fmt: skip
async def test_malformed_payloads_are_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    fields: dict[str, Any],
    loc: list[Any],
    fragment: str,
) -> None:
    detail = await invalid(client, admin, simple_ivr(**fields))
    matching = [d for d in detail if d["loc"][: len(loc)] == loc]
    assert matching, detail
    assert fragment in matching[0]["msg"], matching[0]["msg"]


async def test_every_error_is_listed_at_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    fields = simple_ivr(url="https://crm.example.com/{NOPE}", digits_pattern="/(/")
    fields["responses"][1]["guidance"]["text"] = "{CODE9}"
    detail = await invalid(client, admin, fields)
    assert {tuple(d["loc"][1:]) for d in detail} >= {
        ("url",),
        ("digits_pattern",),
        ("responses", 1, "guidance", "text"),
    }


async def test_digits_and_declared_pbx_variables_are_template_variables(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    fields = simple_ivr(url="https://crm.example.com/members/{DIGITS}?lang={LANG}", max_digits=8)
    detail = await invalid(client, admin, fields)
    assert "Unknown variable {LANG}" in detail[0]["msg"]
    body = await create_ivr(client, admin, {**fields, "pbx_variables": ["LANG"]})
    assert body["pbx_variables"] == ["LANG"]


async def test_warnings_for_unreachable_settings_and_unproduced_variables(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    fields = simple_ivr(
        url="https://crm.example.com/cases?contact={RESPONSE_CONTACT_ID}",
        responses=[
            {"priority": 1, "response_code": "2xx", "transfer": {"kind": "end_rule"}},
            {"priority": 2, "response_code": "200", "transfer": {"kind": "hangup"}},
            {"priority": 3, "response_code": "404", "transfer": {"kind": "hangup"}},
        ],
    )
    body = await create_ivr(client, admin, fields)
    assert messages(body, "responses.1.priority") == [
        "Priority 2 is never reached: priority 1 answers every '2xx' response before it "
        "(it has no pattern, condition or extraction)."
    ]
    assert messages(body, "responses.2.priority") == []
    [unproduced] = messages(body, "url")
    assert unproduced.startswith("{RESPONSE_CONTACT_ID} is extracted neither by an earlier")


async def test_secrets_are_write_only(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = await create_ivr(
        client,
        admin,
        simple_ivr(auth_type="basic", basic_username="pbx", basic_password="s3cret-basic"),
    )
    assert body["basic_password_set"] is True and "s3cret" not in str(body)
    kept = await client.patch("/api/v1/ivrs/lookup", json={"basic_password": None}, headers=admin)
    assert kept.json()["basic_password_set"] is True
    cleared = await client.patch("/api/v1/ivrs/lookup", json={"basic_password": ""}, headers=admin)
    assert cleared.status_code == 422
    assert cleared.json()["detail"][0]["loc"] == ["body", "basic_password"]


async def test_seed_003_three_step_ivr_is_valid(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    account = await add_account(app)
    body = await create_ivr(client, admin, seed_003_ivr(account))
    assert [s["name"] for s in body["steps"]] == ["contact", "open_case"]
    assert body["steps"][1]["auth_type"] is None  # the IVR's own account
    assert set(body["produces"]) == {
        "RESPONSE_ACCOUNT_ID",
        "RESPONSE_ACCOUNT_NAME",
        "RESPONSE_CONTACT_ID",
        "RESPONSE_CASE_ID",
        "RESPONSE_CASE_NUMBER",
        "RESPONSE_PRIORITY",
    }
    assert not [w for w in body["warnings"] if "RESPONSE_" in w["message"]]


async def test_configuration_api_needs_an_admin(
    app: FastAPI, client: httpx.AsyncClient, pbx: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/ivrs")).status_code == 401
    assert (await client.get("/api/v1/ivrs", headers=pbx)).status_code == 403


async def test_openapi_documents_the_contract(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    invoke = schema["paths"]["/api/v1/ivr/{key}/invoke"]["post"]
    assert set(invoke["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    answer = invoke["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/InvokeAnswer")
    assert {"/api/v1/ivrs", "/api/v1/ivrs/{key}", "/api/v1/ivrs/{key}/test"} <= set(schema["paths"])
