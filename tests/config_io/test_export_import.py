# ruff: noqa: E501 (the manuals' lines, typed by hand into a document)
"""Configuration as code (DESIGN.md §13): export, import with its difference, all or
nothing, errors by document path, prune, secrets kept, the round trip."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import delete

from callbridge.models import CallAction, HistoryLink, Ivr, OAuthAccount, SystemSetting
from tests.call_actions.conftest import EXAMPLE_1, EXAMPLE_2, EXAMPLE_3
from tests.helpers import bearer, make_token
from tests.ivr.seeds import seed_000_ivr, seed_003_ivr

YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


async def api(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str, **kw: Any
) -> dict[str, Any]:
    response = await client.request(method, path, headers=admin, **kw)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def export(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    response = await client.get("/api/v1/config/export", headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/yaml; charset=utf-8"
    return response.text


async def import_(
    client: httpx.AsyncClient, admin: dict[str, str], text: str, query: str = ""
) -> httpx.Response:
    return await client.post(
        f"/api/v1/config/import{query}", content=text.encode(), headers={**admin, **YAML}
    )


async def build_configuration(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """What an admin sets up through the API: two accounts, the manual's three rules,
    the manual's IVR and the Webex ANI lookup, and three settings."""
    salesforce = await api(
        client,
        admin,
        "POST",
        "/api/v1/oauth-accounts",
        json={"name": "Salesforce 本番", "client_id": "3MVG9-consumer", "client_secret": "s3"},
    )
    await api(
        client,
        admin,
        "POST",
        "/api/v1/oauth-accounts",
        json={
            "name": "helpdesk",
            "provider": "generic",
            "grant_type": "client_credentials",
            "token_url": "https://auth.example.com/token",
            "base_url": "https://api.example.com",
            "client_id": "cb",
            "client_secret": "s4",
            "scope": "tickets",
        },
    )
    for rule in (EXAMPLE_1, EXAMPLE_2, EXAMPLE_3):
        await api(
            client,
            admin,
            "POST",
            "/api/v1/call-actions",
            json={**rule, "oauth_account_id": salesforce["id"]},
        )
    await api(
        client,
        admin,
        "POST",
        "/api/v1/call-actions",
        json={
            "event": "answer",
            "url": "https://api.example.com/answered?tel={TEL}",
            "enabled": False,
            "memo": "複数行の\nメモ",
        },
    )
    await api(client, admin, "POST", "/api/v1/ivrs", json=seed_000_ivr(salesforce["id"]))
    await api(client, admin, "POST", "/api/v1/ivrs", json=seed_003_ivr(salesforce["id"]))
    await api(
        client,
        admin,
        "POST",
        "/api/v1/history-links",
        json={
            "name": "サポート窓口",
            "oauth_account_id": salesforce["id"],
            "fallback_record": "https://ap15.lightning.force.com/lightning/r/Account/"
            "0012v000032fR15AAE/view",
            "api_consent": True,
            "status": "paused",
            "phone_numbers": ["0312345678"],
            "field_mappings": [{"field": "CallDisposition", "default": "完了"}],
        },
    )
    await api(
        client,
        admin,
        "PATCH",
        "/api/v1/settings",
        json={
            "timezone": "Asia/Tokyo",
            "retention_days": 120,
            "public_url": "https://cb.example.jp",
        },
    )


async def empty_configuration(app: FastAPI) -> None:
    """Every configuration gone (ids go on counting: the document must not use them)."""
    async with app.state.runtime.sessionmaker() as session:
        for model in (CallAction, Ivr, HistoryLink, OAuthAccount, SystemSetting):
            await session.execute(delete(model))
        await session.commit()


async def test_export_import_into_an_empty_callbridge_gives_the_same_document(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_configuration(client, admin)
    first = await export(client, admin)
    data = yaml.safe_load(first)
    assert list(data) == [
        "version",
        "oauth_accounts",
        "call_actions",
        "ivrs",
        "history_links",
        "screen_pops",
        "settings",
    ]
    [link] = data["history_links"]
    assert link["oauth_account"] == "Salesforce 本番" and "oauth_account_id" not in link
    assert link["fallback_record"] == "0012v000032fR15AAE" and link["status"] == "paused"
    assert [a["name"] for a in data["oauth_accounts"]] == ["Salesforce 本番", "helpdesk"]
    assert "client_secret" not in first and "s3" not in first and "access_token" not in first
    assert "status" not in data["oauth_accounts"][0] and " id:" not in first
    rules = data["call_actions"]
    assert [(r["event"], r["order"]) for r in rules] == [
        ("answer", 1),
        ("disconnect", 1),
        ("queue", 1),
        ("queue", 2),
    ]
    assert rules[2]["oauth_account"] == "Salesforce 本番" and "oauth_account_id" not in rules[2]
    assert rules[0]["memo"] == "複数行の\nメモ" and "memo: |-\n    複数行の\n    メモ" in first
    ani = next(i for i in data["ivrs"] if i["key"] == "ani")
    assert [s["name"] for s in ani["steps"]] == ["contact", "open_case"]
    assert ani["responses"][0]["transfer"] == {"kind": "callcenter", "target": "vip"}
    assert data["settings"] == {
        "public_url": "https://cb.example.jp/",
        "retention_days": 120,
        "timezone": "Asia/Tokyo",
    }

    await empty_configuration(app)
    response = await import_(client, admin, first)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["changed"] == [] and report["removed"] == [] and report["unchanged"] == 0
    assert len(report["added"]) == 2 + 4 + 2 + 1 + 3
    # The accounts come without their secrets, and say so.
    assert {
        "path": "oauth_accounts[0]",
        "message": "Created without client_secret: enter it on the account's page before "
        "connecting.",
    } in report["warnings"]
    assert await export(client, admin) == first

    # Imported again: nothing to do.
    again = (await import_(client, admin, first)).json()
    assert (again["added"], again["changed"], again["removed"]) == ([], [], [])
    assert again["unchanged"] == 12


async def test_dry_run_shows_each_changed_field_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_configuration(client, admin)
    original = await export(client, admin)
    data = yaml.safe_load(original)
    seed = next(i for i in data["ivrs"] if i["key"] == "seed000")
    seed["responses"][1]["transfer"]["target"] = "sales"
    data["call_actions"][2]["timeout_seconds"] = 20
    data["call_actions"].append({"event": "outgoing", "url": "https://api.example.com/out"})
    data["settings"]["timezone"] = "UTC"
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)

    response = await import_(client, admin, text, "?dry_run=true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is True
    assert report["added"] == [{"section": "call_actions", "name": "outgoing #1", "fields": []}]
    assert {
        "section": "call_actions",
        "name": "queue #1",
        "fields": [{"field": "timeout_seconds", "before": 10, "after": 20}],
    } in report["changed"]
    assert {
        "section": "ivrs",
        "name": "seed000",
        "fields": [
            {"field": "responses[1].transfer.target", "before": "support", "after": "sales"}
        ],
    } in report["changed"]
    assert {
        "section": "settings",
        "name": "timezone",
        "fields": [{"field": "", "before": "Asia/Tokyo", "after": "UTC"}],
    } in report["changed"]
    assert await export(client, admin) == original

    applied = (await import_(client, admin, text)).json()
    assert applied["dry_run"] is False and len(applied["changed"]) == 3
    after = yaml.safe_load(await export(client, admin))
    rules = {(r["event"], r["order"]): r for r in after["call_actions"]}
    assert after["settings"]["timezone"] == "UTC" and rules["queue", 1]["timeout_seconds"] == 20
    assert after["ivrs"][1]["responses"][1]["transfer"]["target"] == "sales"
    outgoing = await api(client, admin, "GET", "/api/v1/call-actions?event=outgoing")
    assert [r["url"] for r in outgoing["items"]] == ["https://api.example.com/out"]


async def test_every_problem_is_named_by_its_path_and_nothing_is_applied(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    text = """
oauth_accounts:
  - name: sf
    client_id: abc
    use_pkce: true
call_actions:
  - event: incoming
    url: https://api.example.com/ok
  - event: incoming
    order: 1
    url: https://api.example.com/twice
  - event: queue
    auth_type: oauth
    oauth_account: nobody
    url: https://api.example.com/x
ivrs:
  - key: good
    url: https://api.example.com/a
  - key: bad
    url: https://api.example.com/b
    responses:
      - priority: 2
        response_pattern: /ok/
        transfer: {kind: callcenter, target: support}
      - priority: 1
        response_pattern: /(unclosed/
        transfer: {kind: callcenter}
  - key: bad2
    oauth_account_id: 3
    url: https://api.example.com/c
    responses:
      - priority: 1
        response_pattern: /(unclosed/
        transfer: {kind: callcenter, target: support}
settings:
  timezone: Mars/Olympus
"""
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    problems = {d["path"]: d["msg"] for d in response.json()["detail"]}
    assert problems["call_actions[1].order"] == (
        "incoming #1 is given twice (also at call_actions[0]): orders are unique within an event"
    )
    assert problems["call_actions[2].oauth_account"] == (
        "OAuth account 'nobody' does not exist (neither in the document nor in callbridge)"
    )
    assert problems["ivrs[1].responses[1].transfer"] == "a 'callcenter' transfer needs a target"
    assert problems["ivrs[2].oauth_account_id"].startswith("database ids differ")
    assert problems["ivrs[2].responses[0].response_pattern"] == "Invalid pattern: missing )."
    assert problems["settings.timezone"] == (
        "unknown time zone 'Mars/Olympus' (use an IANA name like Asia/Tokyo)"
    )
    detail = next(
        d for d in response.json()["detail"] if d["path"] == "ivrs[1].responses[1].transfer"
    )
    assert detail["loc"] == ["body", "ivrs", 1, "responses", 1, "transfer"]
    # All or nothing: the valid account, rule and IVR were not kept either.
    assert "sf" not in await export(client, admin)
    assert (await api(client, admin, "GET", "/api/v1/ivrs"))["total"] == 0


async def test_a_service_error_inside_a_list_names_the_documents_index(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    text = """
ivrs:
  - key: lookup
    url: https://api.example.com/a
    responses:
      - priority: 5
        transfer: {kind: callcenter, target: support}
      - priority: 1
        response_pattern: /(unclosed/
        transfer: {kind: callcenter, target: support}
"""
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    paths = [d["path"] for d in response.json()["detail"]]
    # The service numbers them by priority; the document lists priority 1 second.
    assert paths == ["ivrs[0].responses[1].response_pattern"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ivrs:\n  - key: a\n   url: b\n",
            "document: line 3, column 4: expected <block end>, but found '<block mapping start>'",
        ),
        (
            "ivrs:\n  - key: a\n    key: b\n",
            "document: line 3, column 5: the key 'key' is given twice",
        ),
        (
            "- 1\n- 2\n",
            "document: expected a mapping with version and the sections "
            "oauth_accounts, call_actions, ivrs, history_links, screen_pops, settings",
        ),
        (
            "history: []\n",
            "history: unknown section (known: oauth_accounts, call_actions, ivrs, history_links, screen_pops, settings)",
        ),
        ("version: 2\n", "version: this callbridge reads version 1 documents"),
        (
            "a: &x [1]\nb: *x\n",
            "document: line 2, column 4: anchors and aliases (*name) are not supported",
        ),
        ("call_actions: {}\n", "call_actions: expected a list"),
    ],
)
async def test_unreadable_documents(
    client: httpx.AsyncClient, admin: dict[str, str], text: str, message: str
) -> None:
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"{detail[0]['path']}: {detail[0]['msg']}" == message


async def test_content_type_must_be_yaml(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/config/import",
        content=b"version: 1\n",
        headers={**admin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "detail": "Send the document with Content-Type: application/yaml "
        "(got 'application/x-www-form-urlencoded')."
    }


async def test_without_prune_absent_objects_are_kept_and_with_prune_removed(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_configuration(client, admin)
    data = yaml.safe_load(await export(client, admin))
    data["ivrs"] = [i for i in data["ivrs"] if i["key"] != "ani"]
    data["call_actions"] = [r for r in data["call_actions"] if r["event"] != "answer"]
    data["oauth_accounts"] = [a for a in data["oauth_accounts"] if a["name"] != "helpdesk"]
    del data["settings"]["retention_days"]
    text = yaml.safe_dump(data, allow_unicode=True)

    kept = (await import_(client, admin, text)).json()
    assert kept["removed"] == [] and kept["changed"] == []
    assert {(e["section"], e["name"]) for e in kept["kept"]} == {
        ("oauth_accounts", "helpdesk"),
        ("call_actions", "answer #1"),
        ("ivrs", "ani"),
        ("settings", "retention_days"),
    }
    pruned = (await import_(client, admin, text, "?prune=true")).json()
    assert {(e["section"], e["name"]) for e in pruned["removed"]} == {
        ("oauth_accounts", "helpdesk"),
        ("call_actions", "answer #1"),
        ("ivrs", "ani"),
        ("settings", "retention_days"),
    }
    after = yaml.safe_load(await export(client, admin))
    assert after == data
    settings = await api(client, admin, "GET", "/api/v1/settings")
    assert settings["retention_days"] == app.state.runtime.settings.retention_days


async def test_stored_secrets_are_kept_and_a_document_may_set_them(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_configuration(client, admin)
    data = yaml.safe_load(await export(client, admin))
    data["oauth_accounts"][0]["scope"] = "api refresh_token"
    data["call_actions"].append(
        {
            "event": "outgoing",
            "auth_type": "bearer",
            "bearer_token": "t0ken",
            "url": "https://api.example.com/out",
        }
    )
    report = (await import_(client, admin, yaml.safe_dump(data, allow_unicode=True))).json()
    assert report["secrets_set"] == ["call_actions[4].bearer_token"]
    accounts = (await api(client, admin, "GET", "/api/v1/oauth-accounts"))["items"]
    salesforce = next(a for a in accounts if a["name"] == "Salesforce 本番")
    assert salesforce["scope"] == "api refresh_token" and salesforce["client_secret_set"] is True
    rules = (await api(client, admin, "GET", "/api/v1/call-actions?event=outgoing"))["items"]
    assert rules[0]["bearer_token_set"] is True
    assert "t0ken" not in await export(client, admin)

    # A new bearer rule without its token cannot send: refused at its path.
    data["call_actions"].append(
        {"event": "outgoing", "auth_type": "bearer", "url": "https://api.example.com/o2"}
    )
    del data["call_actions"][4]["bearer_token"]
    response = await import_(client, admin, yaml.safe_dump(data, allow_unicode=True))
    assert response.status_code == 422
    assert [(d["path"], d["msg"]) for d in response.json()["detail"]] == [
        ("call_actions[5].bearer_token", "Bearer authentication needs a token.")
    ]


HAND_WRITTEN = """\
# The manual's examples (BIZTEL call actions and API-linked IVR, Salesforce), typed by hand.
oauth_accounts:
  - name: Salesforce
    client_id: 3MVG9example
    use_pkce: yes

call_actions:
  - event: コールセンターキュー
    auth_type: oauth
    oauth_account: Salesforce
    url: "{OAUTH_INSTANCE_URL}/services/data/v45.0/query?q= SELECT+Id,Name FROM Contact WHERE Phone ='{TEL}'"
    method: get
    timeout_seconds: 10
    extract_pattern: /"Id":"(?P<CONTACT_ID>.*)",/
    memo: 取引先責任者を検索
  - event: コールセンターキュー
    auth_type: oauth
    oauth_account: Salesforce
    url: "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobject s/case/"
    method: POST
    headers: "Content-Type: application/json"
    body: '{"Origin": "Phone","ContactId":"{RESPONSE_CONTACT_ID}"}'
    extract_pattern: /"id":"(?P<CASE_ID>.*)",/
    memo: ケースを作成
  - event: コールセンター切断
    auth_type: oauth
    oauth_account: Salesforce
    url: "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/cas e/{RESPONSE_CASE_ID}"
    method: PATCH
    headers: "Content-Type: application/json"
    body: |
      {"Origin": "Phone","Subject":"コールセンターへの着信です ","ContactId":"{RESPONSE_CONTACT_ID}","Description": "{SVADDR}monitor_link/{ID}"}
    memo: 録音再生URLを付与

ivrs:
  - key: seed000
    name: Salesforce 取引先検索
    auth_type: oauth
    oauth_account: Salesforce
    url: "{OAUTH_INSTANCE_URL}/services/data/v45.0/search ?q=FIND {{TEL}} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"
    headers: なし
    body: なし
    on_error:
      transfer: {kind: external, target: 0312345670}
    responses:
      - priority: 1
        response_code: 200
        response_pattern: /"searchRecords":¥[¥]/
        guidance:
          type: tts
          text: お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、しばらくお待ちください。
        transfer: {kind: callcenter, target: support}
      - priority: 2
        response_code: 200
        extract_pattern: /"Name":"(?P<NAME>.*)",/
        guidance:
          type: tts
          text: "{CODE1}様、お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、しばらくお待ちください。"
        transfer: {kind: callcenter, target: support}

settings:
  timezone: Asia/Tokyo
  retention_days: 90
"""


async def test_a_document_written_by_hand_from_the_manuals_imports_cleanly(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await import_(client, admin, HAND_WRITTEN)
    assert response.status_code == 200, response.text
    report = response.json()
    assert [(e["section"], e["name"]) for e in report["added"]] == [
        ("oauth_accounts", "Salesforce"),
        ("call_actions", "disconnect #1"),
        ("call_actions", "queue #1"),
        ("call_actions", "queue #2"),
        ("ivrs", "seed000"),
        ("settings", "retention_days"),
        ("settings", "timezone"),
    ]
    assert {"path": "ivrs[0].headers", "message": "「なし」 (none) was read as empty."} in report[
        "warnings"
    ]
    data = yaml.safe_load(await export(client, admin))
    queue_1 = data["call_actions"][1]
    assert (queue_1["method"], queue_1["order"], queue_1["oauth_account"]) == (
        "GET",
        1,
        "Salesforce",
    )
    assert data["oauth_accounts"][0]["use_pkce"] is True
    seed = data["ivrs"][0]
    # A phone number keeps its leading zero; 200 is the code "200".
    assert seed["on_error"]["transfer"] == {"kind": "external", "target": "0312345670"}
    assert seed["responses"][0]["response_code"] == "200"
    assert seed["headers"] == "" and seed["max_digits"] == 0
    assert data["settings"] == {"retention_days": 90, "timezone": "Asia/Tokyo"}
