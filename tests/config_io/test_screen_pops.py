"""Screen-pop profiles in the configuration document (DESIGN §13): the lookup's account by
name, creation order kept, the difference by field, problems by document path with nothing
applied, prune."""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from sqlalchemy import delete

from callbridge.models import OAuthAccount, ScreenPopProfile
from tests.config_io.test_export_import import admin, api, export, import_

__all__ = ["admin"]


async def configure(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """An account and two profiles, the one created first named to sort last."""
    account = await api(
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
        "/api/v1/screen-pops",
        json={
            "name": "夜間",
            "enabled": False,
            "phone_numbers": ["0501234567"],
            "anonymous_label": "",
        },
    )
    await api(
        client,
        admin,
        "POST",
        "/api/v1/screen-pops",
        json={
            "name": "受付",
            "trigger": "answer",
            "answer_delay_seconds": 3,
            "skip_internal": False,
            "display_seconds": 45,
            "copy_number": True,
            "strip_prefixes": ["+81"],
            "wrapup_reasons": ["注文", "問い合わせ"],
            "lookup": {
                "kind": "salesforce",
                "oauth_account_id": account["id"],
                "objects": [
                    {"api_name": "Contact", "key_prefix": "003", "priority": 1},
                    {"api_name": "Lead", "key_prefix": "00Q", "priority": 2},
                ],
            },
        },
    )


async def test_round_trip_into_an_empty_callbridge(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await configure(client, admin)
    first = await export(client, admin)
    data = yaml.safe_load(first)
    assert list(data)[-2:] == ["screen_pops", "settings"]
    night, desk = data["screen_pops"]  # in creation order: the order calls try them
    assert night == {
        "name": "夜間",
        "enabled": False,
        "trigger": "incoming",
        "phone_numbers": ["0501234567"],
        "answer_delay_seconds": 0,
        "skip_internal": True,
        "display_seconds": 30,
        "copy_number": False,
        "anonymous_label": "",
        "strip_prefixes": [],
        "wrapup_reasons": [],
        "lookup": None,
    }
    assert desk["lookup"] == {
        "kind": "salesforce",
        "oauth_account": "Salesforce 本番",
        "objects": [
            {"api_name": "Contact", "tab_name": "", "key_prefix": "003", "priority": 1},
            {"api_name": "Lead", "tab_name": "", "key_prefix": "00Q", "priority": 2},
        ],
        "timeout_seconds": 5.0,
        "card_wait_seconds": 1.0,
    }
    assert "oauth_account_id" not in first

    async with app.state.runtime.sessionmaker() as session:
        for model in (ScreenPopProfile, OAuthAccount):
            await session.execute(delete(model))
        await session.commit()
    response = await import_(client, admin, first)
    assert response.status_code == 200, response.text
    report = response.json()
    assert [(a["section"], a["name"]) for a in report["added"]] == [
        ("oauth_accounts", "Salesforce 本番"),
        ("screen_pops", "夜間"),
        ("screen_pops", "受付"),
    ]
    assert await export(client, admin) == first
    again = (await import_(client, admin, first)).json()
    assert (again["added"], again["changed"], again["removed"]) == ([], [], [])
    assert again["unchanged"] == 3


async def test_the_difference_names_each_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await configure(client, admin)
    original = await export(client, admin)
    data = yaml.safe_load(original)
    desk = data["screen_pops"][1]
    desk["answer_delay_seconds"] = 10
    desk["lookup"]["timeout_seconds"] = 2.5
    data["screen_pops"].append({"name": "夜間2", "strip_prefixes": ["+81"]})
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)

    dry = (await import_(client, admin, text, "?dry_run=true")).json()
    assert dry["added"] == [{"section": "screen_pops", "name": "夜間2", "fields": []}]
    assert dry["changed"] == [
        {
            "section": "screen_pops",
            "name": "受付",
            "fields": [
                {"field": "answer_delay_seconds", "before": 3, "after": 10},
                {"field": "lookup.timeout_seconds", "before": 5.0, "after": 2.5},
            ],
        }
    ]
    assert await export(client, admin) == original
    applied = await import_(client, admin, text)
    assert applied.status_code == 200, applied.text
    profiles = (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"]
    assert [p["name"] for p in profiles] == ["夜間", "受付", "夜間2"]
    assert profiles[1]["answer_delay_seconds"] == 10
    assert profiles[1]["lookup"]["timeout_seconds"] == 2.5
    assert profiles[2]["strip_prefixes"] == ["+81"] and profiles[2]["lookup"] is None


async def test_problems_are_named_by_path_and_nothing_is_applied(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    text = """
oauth_accounts:
  - name: sf
    client_id: abc
screen_pops:
  - name: ok
    lookup: {kind: salesforce, oauth_account: sf}
  - name: delay
    answer_delay_seconds: 61
    strip_prefixes: ["+81", "81-"]
  - name: nobody
    lookup: {kind: salesforce, oauth_account: nobody}
  - name: ids
    lookup: {kind: salesforce, oauth_account_id: 3}
  - name: prefix
    lookup:
      kind: salesforce
      oauth_account: sf
      objects:
        - {api_name: Contact, key_prefix: "0033", priority: 1}
        - {api_name: Lead, key_prefix: 00Q, priority: x}
  - name: OK
"""
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    problems = {d["path"]: d["msg"] for d in response.json()["detail"]}
    assert problems == {
        "screen_pops[1].answer_delay_seconds": "Input should be less than or equal to 60",
        "screen_pops[1].strip_prefixes[1]": "String should match pattern '^\\+?[0-9]+$'",
        "screen_pops[2].lookup.oauth_account": (
            "OAuth account 'nobody' does not exist (neither in the document nor in callbridge)"
        ),
        "screen_pops[3].lookup.oauth_account_id": (
            "database ids differ between callbridges: refer by name (oauth_account: NAME)"
        ),
        "screen_pops[4].lookup.objects[1].priority": (
            "Input should be a valid integer, unable to parse string as an integer"
        ),
        "screen_pops[5].name": "the screen-pop profile 'OK' is given twice",
    }
    # The key prefix is the service's check: it comes once the schema is satisfied.
    fixed = text.replace("priority: x", "priority: 2")
    response = await import_(client, admin, fixed.split("  - name: delay")[0] + PREFIX_ONLY)
    assert response.status_code == 422, response.text
    assert {d["path"]: d["msg"] for d in response.json()["detail"]} == {
        "screen_pops[1].lookup.objects[0].key_prefix": (
            "The key prefix must be exactly 3 letters or digits (got '0033')"
        )
    }
    assert "sf" not in await export(client, admin)
    assert (await api(client, admin, "GET", "/api/v1/screen-pops"))["total"] == 0


PREFIX_ONLY = """  - name: prefix
    lookup:
      kind: salesforce
      oauth_account: sf
      objects:
        - {api_name: Contact, key_prefix: "0033", priority: 1}
"""


async def test_prune_and_the_order_warning(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await configure(client, admin)
    data = yaml.safe_load(await export(client, admin))
    data["screen_pops"] = [data["screen_pops"][1], data["screen_pops"][0]]
    reordered = (
        await import_(client, admin, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    ).json()
    assert reordered["changed"] == [] and reordered["added"] == []
    assert reordered["warnings"] == [
        {
            "path": "screen_pops",
            "message": "calls try screen-pop profiles in the order they were created; the "
            "existing profiles keep theirs: 夜間, 受付",
        }
    ]
    data["screen_pops"] = [p for p in data["screen_pops"] if p["name"] == "受付"]
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    kept = (await import_(client, admin, text)).json()
    assert [(e["section"], e["name"]) for e in kept["kept"]] == [("screen_pops", "夜間")]
    pruned = (await import_(client, admin, text, "?prune=true")).json()
    assert [(e["section"], e["name"]) for e in pruned["removed"]] == [("screen_pops", "夜間")]
    profiles = (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"]
    assert [p["name"] for p in profiles] == ["受付"]


DELETED = "The lookup's OAuth account ({id}) was deleted: choose another account for this profile."


async def _desk(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    profiles = (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"]
    desk = next(p for p in profiles if p["name"] == "受付")
    return await api(client, admin, "GET", f"/api/v1/screen-pops/{desk['id']}")


async def test_deleting_a_used_account_keeps_the_profile_and_says_so(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """As for call-action rules and history links, deleting an OAuth account in use is
    allowed; the profile keeps its lookup and says the account is gone."""
    await configure(client, admin)
    desk = await _desk(client, admin)
    account_id = desk["lookup"]["oauth_account_id"]
    assert desk["warnings"] == []
    deleted = await client.delete(f"/api/v1/oauth-accounts/{account_id}", headers=admin)
    assert deleted.status_code == 204
    desk = await _desk(client, admin)
    assert desk["lookup"]["oauth_account_id"] == account_id
    assert desk["warnings"] == [
        {
            "field": "lookup.oauth_account_id",
            "message": DELETED.format(id=account_id),
            "position": None,
            "code": "screen_pop_account_deleted",
        }
    ]


async def test_an_import_pruning_a_used_account_names_what_still_uses_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await configure(client, admin)
    account_id = (await _desk(client, admin))["lookup"]["oauth_account_id"]
    data = yaml.safe_load(await export(client, admin))
    data["oauth_accounts"] = []
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    pruned = (await import_(client, admin, text, "?prune=true")).json()
    assert [(e["section"], e["name"]) for e in pruned["removed"]] == [
        ("oauth_accounts", "Salesforce 本番")
    ]
    assert pruned["warnings"] == [
        {
            "path": "oauth_accounts",
            "message": "OAuth account 'Salesforce 本番' was removed but is still used by "
            "screen-pop profile '受付': they fail until you choose another account",
        }
    ]
    desk = await _desk(client, admin)
    assert [w["message"] for w in desk["warnings"]] == [DELETED.format(id=account_id)]
