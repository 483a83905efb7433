"""Configuration documents written badly or on purpose (DESIGN.md §13): every one answers
200 or a 422 naming where the problem is, never a 500, and an import that fails changes
nothing. The property test mutates an exported document at random places."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from callbridge.app import create_app
from callbridge.settings import Settings
from tests.config_io.test_cli import run
from tests.config_io.test_export_import import (
    admin,
    api,
    build_configuration,
    empty_configuration,
    export,
    import_,
)
from tests.fuzz.conftest import bearer_headers, loopback_only

__all__ = ["admin", "loopback_only"]

TEMPLATED_RULE = {
    "event": "incoming",
    "url": "https://example.my.salesforce.com/services/data/v45.0/search?q=FIND {{TEL}} "
    "IN PHONE FIELDS&sig=MD5({TEL}{DATE-YYYY})",
    "headers": "X-Caller: {TEL}\nX-Key: LOWERCASE(SHA256({TEL}))",
    "body": '{"tel": "{TEL}", "name": "{TELNAME}"}',
    "method": "POST",
    "memo": "着信時に顧客を検索する（{TEL} と {{TEL}} の違いに注意）",
}
SCREEN_POP = {
    "name": "受付",
    "trigger": "answer",
    "strip_prefixes": ["+81"],
    "wrapup_reasons": ["注文", "問い合わせ"],
    "lookup": {
        "kind": "custom",
        "accesses": {
            "search": {
                "method": "server_get",
                "url": "https://crm.example.jp/search?tel={TEL}",
                "response_format": "NAME = $.name",
            },
            "incoming": {"method": "browser_get", "url": "https://crm.example.jp/?q={TEL}"},
        },
    },
}


async def build_rich_configuration(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await build_configuration(client, admin)
    await api(client, admin, "POST", "/api/v1/call-actions", json=TEMPLATED_RULE)
    await api(client, admin, "POST", "/api/v1/screen-pops", json=SCREEN_POP)


async def test_a_rich_configuration_round_trips_as_yaml_and_as_json(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_rich_configuration(client, admin)
    first = await export(client, admin)
    assert "FIND {{TEL}} IN PHONE FIELDS&sig=MD5({TEL}{DATE-YYYY})" in first
    assert "着信時に顧客を検索する（{TEL} と {{TEL}} の違いに注意）" in first

    for text in (first, json.dumps(yaml.safe_load(first), ensure_ascii=False)):
        await empty_configuration(app)
        response = await import_(client, admin, text)
        assert response.status_code == 200, response.text
        assert await export(client, admin) == first
        again = (await import_(client, admin, text)).json()
        assert (again["added"], again["changed"], again["removed"]) == ([], [], [])

    # Hand-edited: a byte order mark, CRLF line endings and comments change nothing.
    edited = "\ufeff# edited on Windows\n" + first.replace("\n", "  # ok\n", 1)
    response = await import_(client, admin, edited.replace("\n", "\r\n"))
    assert response.status_code == 200, response.text
    assert response.json()["unchanged"] == 14


DEEP = "version: 1\nsettings: " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            DEEP, ["document: line 2, column 42: nested more than 32 levels deep"], id="deep"
        ),
        pytest.param(
            "version: 1\n? [a, b]\n: 1\n",
            ["document: line 2, column 3: a key must be a name, not a list, a mapping or null"],
            id="list-as-key",
        ),
        pytest.param(
            "version: 1\n~: 1\n",
            ["document: line 2, column 1: a key must be a name, not a list, a mapping or null"],
            id="null-as-key",
        ),
        pytest.param(
            "version: 1\nsettings:\n  timezone: Asia\x00Tokyo\n",
            ["document: line 3, column 17: the character #x0000 is not allowed in a YAML document"],
            id="raw-nul",
        ),
        pytest.param(
            'version: 1\nsettings:\n  public_url: "https://cb.example.jp/\\0"\n',
            ["settings.public_url: must not contain a NUL character"],
            id="escaped-nul-in-settings",
        ),
        pytest.param(
            'version: 1\nsettings:\n  public_url: "https://cb.example.jp/\\ud800"\n',
            ["settings.public_url: is not valid Unicode text"],
            id="lone-surrogate-in-settings",
        ),
        pytest.param(
            "version: 1\ncall_actions:\n- event: incoming\n  url: https://x.example\n"
            '- event: queue\n  url: https://x.example\n  memo: "メモ\\x00"\n',
            ["call_actions[1].memo: must not contain a NUL character"],
            id="escaped-nul-in-a-rule",
        ),
        pytest.param(
            "version: 1\ncall_actions:\n- event: incoming\n  url: https://x.example\n"
            "  memo: !!binary 44Oh44Oi/w==\n",
            ["call_actions[0].memo: is not valid UTF-8 text"],
            id="binary-not-utf8",
        ),
        pytest.param(
            'version: 1\nsettings:\n  "time\\0zone": UTC\n',
            ["settings: the key 'time\\0zone' must not contain a NUL character"],
            id="nul-in-a-key",
        ),
        pytest.param(
            "version: 1\nhistory_links:\n- name: サポート\n",
            ["history_links[0].oauth_account: give the OAuth account's name"],
            id="history-link-without-account",
        ),
        pytest.param(
            "version: 1\nhistory_links:\n- name: サポート\n  oauth_account: 本番\n",
            [
                "history_links[0].oauth_account: OAuth account '本番' does not exist "
                "(neither in the document nor in callbridge)"
            ],
            id="history-link-unknown-account",
        ),
        pytest.param(
            "version: 1\nivrs:\n- key: k\n  url: https://x.example\n  steps: [contact]\n"
            "  on_error: [1]\n",
            [
                "ivrs[0].on_error: expected a mapping of fields (name: value)",
                "ivrs[0].steps[0]: expected a mapping of fields (name: value)",
            ],
            id="a-list-where-an-object-goes",
        ),
    ],
)
async def test_hostile_documents_are_refused_by_path_and_change_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], text: str, problems: list[str]
) -> None:
    await build_rich_configuration(client, admin)
    before = await export(client, admin)
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert sorted(f"{d['path']}: {d['msg']}" for d in detail) == problems
    assert await export(client, admin) == before


async def test_a_document_over_5_mb_is_refused_however_it_is_sent(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """With a Content-Length, before the body is read; sent in chunks without one, as soon
    as the count passes the limit (it was read whole into memory first)."""
    await build_rich_configuration(client, admin)
    before = await export(client, admin)
    large = b"version: 1\n" + b"# " + b"x" * (5 * 1024 * 1024) + b"\n"
    headers = {**admin, "Content-Type": "application/yaml"}
    declared = await client.post("/api/v1/config/import", content=large, headers=headers)

    async def chunks() -> Any:
        for start in range(0, len(large), 64 * 1024):
            yield large[start : start + 64 * 1024]

    streamed = await client.post("/api/v1/config/import", content=chunks(), headers=headers)
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["detail"] == "The document is larger than 5242880 bytes."
    assert "content-length" not in streamed.request.headers
    assert await export(client, admin) == before


async def test_a_document_whose_fifth_object_is_bad_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await build_rich_configuration(client, admin)
    before = await export(client, admin)
    data = yaml.safe_load(before)
    data["settings"]["retention_days"] = 30
    data["oauth_accounts"][1]["scope"] = "tickets write"
    data["call_actions"][0]["memo"] = "変更"
    data["call_actions"][4]["memo"] = "改行\x00"
    data["ivrs"].append({"key": "new", "url": "https://x.example"})
    response = await import_(client, admin, yaml.safe_dump(data, allow_unicode=True))
    assert response.status_code == 422, response.text
    assert [(d["path"], d["msg"]) for d in response.json()["detail"]] == [
        ("call_actions[4].memo", "must not contain a NUL character")
    ]
    assert await export(client, admin) == before


BEARER_LOOKUP = """\
version: 1
screen_pops:
- name: 受付
  lookup:
    kind: custom
    auth_type: bearer
    bearer_token: from-the-secret-store
    accesses:
      search:
        method: server_get
        url: https://crm.example.jp/search?tel={TEL}
        response_format: NAME = $.name
"""


async def test_a_custom_lookups_token_given_by_the_document_is_stored_not_exported(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await import_(client, admin, BEARER_LOOKUP)
    assert response.status_code == 200, response.text
    assert response.json()["secrets_set"] == ["screen_pops[0].lookup.bearer_token"]
    [profile] = (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"]
    assert profile["lookup"]["bearer_token_set"] is True
    exported = await export(client, admin)
    assert "from-the-secret-store" not in exported and "bearer_token" not in exported
    # Imported again without the token: the stored one is kept.
    again = (await import_(client, admin, exported)).json()
    assert (again["added"], again["changed"], again["unchanged"]) == ([], [], 1)
    [profile] = (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"]
    assert profile["lookup"]["bearer_token_set"] is True


async def test_a_custom_lookups_problem_is_named_at_its_place_in_the_document(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    text = BEARER_LOOKUP.replace("    bearer_token: from-the-secret-store\n", "")
    response = await import_(client, admin, text)
    assert response.status_code == 422, response.text
    assert [(d["path"], d["msg"]) for d in response.json()["detail"]] == [
        ("screen_pops[0].lookup.bearer_token", "Bearer authentication needs a token.")
    ]
    assert (await api(client, admin, "GET", "/api/v1/screen-pops"))["items"] == []


def test_the_command_line_says_where_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    document = tmp_path / "deep.yaml"
    document.write_text(DEEP, encoding="utf-8")
    code, _out, err = run(database_url, tmp_path, "config", "import", str(document))
    assert code == 1
    assert err.splitlines() == [
        "document: line 2, column 42: nested more than 32 levels deep",
        "callbridge: nothing was changed",
    ]
    document.write_text('version: 1\nsettings:\n  timezone: "Asia/\\0Tokyo"\n', encoding="utf-8")
    code, _out, err = run(database_url, tmp_path, "config", "import", str(document))
    assert code == 1
    assert err.splitlines() == [
        "settings.timezone: must not contain a NUL character",
        "callbridge: nothing was changed",
    ]

    code, _out, err = run(database_url, tmp_path, "config", "import", str(tmp_path))
    assert code == 1
    assert err.splitlines() == [f"callbridge: cannot read {tmp_path}: Is a directory"]
    missing = tmp_path / "no-such-folder" / "callbridge.yaml"
    code, _out, err = run(database_url, tmp_path, "config", "export", "--output", str(missing))
    assert code == 1
    assert err.splitlines() == [f"callbridge: cannot write {missing}: No such file or directory"]


# ---- the property test -------------------------------------------------------------------

EXAMPLES = 40
HOSTILE_VALUES = st.sampled_from(
    [
        None,
        "",
        " ",
        "0312345670",
        "日本語の値",
        "{TELL}",
        "MD5(",
        "a\x00b",
        "\ud800",
        "x" * 30_000,
        True,
        0,
        -1,
        2**64,
        -(2**70),
        1.5,
        [],
        [1],
        ["a", None],
        {},
        {"a": 1},
        {"name": "x"},
    ]
)
UNKNOWN_KEYS = st.sampled_from(["foo", "id", "oauth_account_id", "名前", "", "version"])


def _places(data: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    places = [where]
    if isinstance(data, dict):
        for key, value in data.items():
            places += _places(value, (*where, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            places += _places(value, (*where, index))
    return places


def _at(data: Any, where: tuple[Any, ...]) -> Any:
    for part in where:
        data = data[part]
    return data


def _mutate(data: Any, where: tuple[Any, ...], kind: str, value: Any, key: str) -> Any:
    if not where:
        return value if kind == "replace" else data
    parent = _at(data, where[:-1])
    last = where[-1]
    if kind == "replace":
        parent[last] = value
    elif kind == "delete":
        del parent[last]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(last, json.loads(json.dumps(parent[last])))
    elif kind == "add":
        target = parent[last]
        if isinstance(target, dict):
            target[key] = value
        elif isinstance(target, list):
            target.append(value)
    return data


def _parts(path: str) -> list[Any]:
    """``ivrs[0].steps[1].url`` → ``["ivrs", 0, "steps", 1, "url"]``."""
    parts: list[Any] = []
    for piece in path.split("."):
        name, *indices = piece.split("[")
        parts += [name] if name else []
        parts += [int(i.rstrip("]")) for i in indices]
    return parts


def _existing(data: Any, parts: list[Any]) -> int:
    """How many leading parts of a problem's path exist in the document."""
    found = 0
    for part in parts:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            break
        found += 1
    return found


@pytest.fixture
def served(settings: Settings, loopback_only: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_mutated_export_is_applied_faithfully_or_refused_by_path(served: TestClient) -> None:
    admin, _pbx = bearer_headers(served)

    def post(path: str, body: Any) -> None:
        assert served.post(path, json=body, headers=admin).status_code in (200, 201)

    async def build() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served.app), base_url="http://testserver"
        ) as client:
            await build_rich_configuration(client, admin)

    served.portal.call(build)  # type: ignore[attr-defined]

    def export_text() -> str:
        response = served.get("/api/v1/config/export", headers=admin)
        assert response.status_code == 200
        return response.text

    def import_text(body: bytes, query: str = "") -> Any:
        return served.post(
            f"/api/v1/config/import{query}",
            content=body,
            headers={**admin, "Content-Type": "application/yaml"},
        )

    base = export_text()
    base_data = yaml.safe_load(base)
    places = _places(base_data)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        place=st.sampled_from(places),
        kind=st.sampled_from(["replace", "delete", "duplicate", "add"]),
        value=HOSTILE_VALUES,
        key=UNKNOWN_KEYS,
        as_json=st.booleans(),
    )
    def check(place: tuple[Any, ...], kind: str, value: Any, key: str, as_json: bool) -> None:
        data = _mutate(json.loads(json.dumps(base_data)), place, kind, value, key)
        text = (
            json.dumps(data, ensure_ascii=False)
            if as_json
            else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        )
        response = import_text(text.encode("utf-8", "surrogatepass"))
        assert response.status_code in (200, 422), (place, kind, value, response.text)
        if response.status_code == 422:
            for problem in response.json()["detail"]:
                # The object the problem is in exists (a field left out may be named).
                parts = [] if problem["path"] == "document" else _parts(problem["path"])
                assert _existing(data, parts) >= len(parts) - 1, (place, kind, value, problem)
            assert export_text() == base, (place, kind, value)
            return
        # Applied: what callbridge now holds imports again as no change, and exports alike.
        after = export_text()
        again = import_text(after.encode())
        assert again.status_code == 200, again.text
        report = again.json()
        assert (report["added"], report["changed"], report["removed"]) == ([], [], [])
        assert export_text() == after
        restored = import_text(base.encode(), "?prune=true")
        assert restored.status_code == 200, restored.text
        assert export_text() == base, (place, kind, value)

    check()
