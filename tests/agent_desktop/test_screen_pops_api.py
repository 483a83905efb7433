"""``/api/v1/screen-pops`` (DESIGN §12.2): defaults, and 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.helpers import bearer, make_token


async def _account(app: FastAPI) -> int:
    from callbridge.models import OAuthAccount

    async with app.state.runtime.sessionmaker() as session:
        account = OAuthAccount(
            name="本番",
            provider="salesforce",
            client_id="id",
            grant_type="client_credentials",
            login_url="https://login.salesforce.com",
        )
        session.add(account)
        await session.commit()
        return account.id


async def test_create_read_update_delete(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app))
    account_id = await _account(app)
    created = await client.post(
        "/api/v1/screen-pops",
        json={
            "name": "受付",
            "strip_prefixes": ["+81"],
            "lookup": {"kind": "salesforce", "oauth_account_id": account_id},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["trigger"] == "incoming" and body["anonymous_label"] == "非通知"
    assert [o["api_name"] for o in body["lookup"]["objects"]] == ["Contact", "Account", "Lead"]
    patched = await client.patch(
        f"/api/v1/screen-pops/{body['id']}",
        json={"trigger": "answer", "answer_delay_seconds": 5},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["trigger"] == "answer" and patched.json()["strip_prefixes"] == ["+81"]
    listed = await client.get("/api/v1/screen-pops", headers=headers)
    assert [p["name"] for p in listed.json()["items"]] == ["受付"]
    gone = await client.delete(f"/api/v1/screen-pops/{body['id']}", headers=headers)
    assert gone.status_code == 204
    missing = await client.get(f"/api/v1/screen-pops/{body['id']}", headers=headers)
    assert missing.status_code == 404


async def _refused(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> list[Any]:
    response = await client.post("/api/v1/screen-pops", json=body, headers=headers)
    assert response.status_code == 422, response.text
    return [tuple(e["loc"]) for e in response.json()["detail"]]


async def test_bad_input_names_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app))
    assert await _refused(client, headers, {"name": "a", "answer_delay_seconds": 61}) == [
        ("body", "answer_delay_seconds")
    ]
    assert await _refused(client, headers, {"name": "a", "strip_prefixes": ["+81", "81-"]}) == [
        ("body", "strip_prefixes", 1)
    ]
    access = {"method": "browser_get", "url": "https://www.google.com/search?q={TEL}"}
    unknown_method = {"kind": "custom", "accesses": {"incoming": {**access, "method": "os"}}}
    assert await _refused(client, headers, {"name": "a", "lookup": unknown_method}) == [
        ("body", "lookup", "custom", "accesses", "incoming", "method")
    ]
    no_format = {"kind": "custom", "accesses": {"search": {**access, "method": "server_get"}}}
    assert await _refused(client, headers, {"name": "a", "lookup": no_format}) == [
        ("body", "lookup", "custom", "accesses", "search", "response_format")
    ]
    no_account = {"kind": "salesforce", "oauth_account_id": 999}
    assert await _refused(client, headers, {"name": "a", "lookup": no_account}) == [
        ("body", "lookup", "oauth_account_id")
    ]


GOOGLE = {"method": "browser_get", "url": "https://www.google.com/search?q={TEL}"}


async def test_the_seed_002_google_search_example_is_accepted_and_tested(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """seed 002 §4, verbatim: incoming access HTTP GET https://www.google.com/search?q={TEL}."""
    headers = bearer(await make_token(app))
    created = await client.post(
        "/api/v1/screen-pops",
        json={
            "name": "Google",
            "strip_prefixes": ["+81"],
            "lookup": {"kind": "custom", "accesses": {"incoming": GOOGLE}},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["lookup"]["accesses"]["incoming"] == {**GOOGLE, "headers": "", "body": ""}
    assert body["lookup"]["auth_type"] == "none" and body["warnings"] == []
    tested = await client.post(
        f"/api/v1/screen-pops/{body['id']}/test",
        json={"tel": "+81312345678"},
        headers=headers,
    )
    assert tested.status_code == 200, tested.text
    result = tested.json()
    # The pop opens Google with the caller's number (its prefix removed, URL-encoded).
    assert result["pop"]["url"] == "https://www.google.com/search?q=0312345678"
    assert result["requests"] == [
        {
            "access": "incoming",
            "method": "browser_get",
            "sent": False,
            "request": None,
            "response": None,
            "extracted": {},
            "error": None,
            "opens": "https://www.google.com/search?q=0312345678",
            "form": None,
        }
    ]
    odd = await client.post(
        f"/api/v1/screen-pops/{body['id']}/test", json={"tel": "0&a=1#x"}, headers=headers
    )
    assert odd.json()["pop"]["url"] == "https://www.google.com/search?q=0%26a%3D1%23x"


async def test_secrets_are_write_only_and_kept(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app))
    lookup = {
        "kind": "custom",
        "auth_type": "bearer",
        "bearer_token": "tok-123",
        "accesses": {
            "search": {
                "method": "server_get",
                "url": "https://crm.example.com/find?tel={TEL}",
                "response_format": '/"name":"(?P<NAME>[^"]*)"/',
            }
        },
    }
    created = await client.post(
        "/api/v1/screen-pops", json={"name": "CRM", "lookup": lookup}, headers=headers
    )
    assert created.status_code == 201, created.text
    read = created.json()["lookup"]
    assert read["bearer_token_set"] is True and "bearer_token" not in read
    assert "tok-123" not in created.text
    patched = await client.patch(
        f"/api/v1/screen-pops/{created.json()['id']}", json={"copy_number": True}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["lookup"]["bearer_token_set"] is True
    # A custom lookup given again without its authentication keeps it (as the admin
    # page saves it: the accesses only).
    accesses_only = {"kind": "custom", "accesses": lookup["accesses"]}
    again = await client.patch(
        f"/api/v1/screen-pops/{created.json()['id']}",
        json={"lookup": accesses_only},
        headers=headers,
    )
    assert again.status_code == 200, again.text
    assert again.json()["lookup"]["auth_type"] == "bearer"
    assert again.json()["lookup"]["bearer_token_set"] is True
    no_token = {**lookup, "bearer_token": None}
    refused = await client.post(
        "/api/v1/screen-pops", json={"name": "B", "lookup": no_token}, headers=headers
    )
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [
        ["body", "lookup", "custom", "bearer_token"]
    ]


def _custom(**accesses: Any) -> dict[str, Any]:
    return {"name": "a", "lookup": {"kind": "custom", "accesses": accesses}}


SEARCH = {
    "method": "server_get",
    "url": "https://crm.example.com/find?tel={TEL}",
    "response_format": "COMPANY = $.company\nNAME = $.name",
}


async def _detail(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> list[Any]:
    response = await client.post("/api/v1/screen-pops", json=body, headers=headers)
    assert response.status_code == 422, response.text
    return [(tuple(e["loc"][1:]), e["msg"], e.get("position")) for e in response.json()["detail"]]


ACCESS = ("lookup", "custom", "accesses")


async def test_bad_custom_lookups_name_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app))
    apw = {"method": "server_post", "url": "https://crm.example.com/login?id={AID}&pw={APW}",
           "response_format": "SESSION = $.session"}  # fmt: skip
    assert await _detail(client, headers, _custom(auth=apw)) == [
        (
            (*ACCESS, "auth", "url"),
            "{APW} (the agent's password) is not available: callbridge never holds passwords "
            "in clear. Use an OAuth account or a bearer token instead.",
            42,
        )
    ]
    assert await _detail(client, headers, _custom(search={**SEARCH, "method": "os_command"})) == [
        (
            (*ACCESS, "search", "method"),
            "Value error, OS commands are not offered: callbridge is a web service and does "
            "not run programs on agents' PCs. Use browser_get or browser_post to open a page, "
            "or server_get or server_post to have callbridge send the request.",
            None,
        )
    ]
    in_browser = {**SEARCH, "method": "browser_get"}
    assert await _detail(client, headers, _custom(search=in_browser)) == [
        (
            (*ACCESS, "search", "method"),
            "callbridge reads the search access's answer (its response format): use "
            "server_get or server_post.",
            None,
        )
    ]
    unnamed = {**SEARCH, "response_format": "ID = $.id"}
    assert [d[0] for d in await _detail(client, headers, _custom(search=unnamed))] == [
        (*ACCESS, "search", "response_format"),
        (*ACCESS, "search", "response_format"),
    ]
    no_search = {"method": "browser_get", "url": "https://crm.example.com/c/{EXT_ID}"}
    assert await _detail(client, headers, _custom(incoming=no_search)) == [
        (
            (*ACCESS, "incoming", "url"),
            "{EXT_ID} is filled by the search access's response format, and no search access "
            "defines it.",
            26,
        )
    ]
    assert await _detail(
        client, headers, {**_custom(search=SEARCH, incoming=no_search), "trigger": "answer"}
    ) == [
        (
            (*ACCESS, "incoming", "url"),
            "{EXT_ID} comes from the search access's answer, which is not known yet when the "
            "incoming access runs.",
            26,
        )
    ]
    headed = {**GOOGLE, "headers": "X-Agent: {EXT}"}
    assert [d[0] for d in await _detail(client, headers, _custom(incoming=headed))] == [
        (*ACCESS, "incoming", "headers")
    ]
    misspelt = {"method": "browser_get", "url": "https://www.google.com/search?q={TELL}"}
    ((where, message, position),) = await _detail(client, headers, _custom(incoming=misspelt))
    assert where == (*ACCESS, "incoming", "url") and position == 32
    assert message == "Unknown variable {TELL}. Did you mean {TEL}?"
    basic = {**_custom(search=SEARCH)}
    basic["lookup"] = {**basic["lookup"], "auth_type": "basic"}
    assert [d[0] for d in await _detail(client, headers, basic)] == [
        ("lookup", "custom", "basic_username"),
        ("lookup", "custom", "basic_password"),
    ]
    too_long = {**_custom(incoming=GOOGLE), "answer_delay_seconds": 61}
    assert [d[0] for d in await _detail(client, headers, too_long)] == [("answer_delay_seconds",)]


async def test_screen_pops_need_an_admin(app: FastAPI, client: httpx.AsyncClient) -> None:
    pbx = bearer(await make_token(app, scope="pbx"))
    assert (await client.get("/api/v1/screen-pops", headers=pbx)).status_code == 403
    assert (await client.get("/api/v1/screen-pops")).status_code == 401


async def test_the_list_pages_with_limit_and_offset(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Like every list of the API (``{"items", "total"}`` with ``limit``/``offset``): a
    page of the profiles in creation order, the total of all of them."""
    headers = bearer(await make_token(app))
    for name in ("一", "二", "三"):
        created = await client.post("/api/v1/screen-pops", json={"name": name}, headers=headers)
        assert created.status_code == 201, created.text
    page = await client.get("/api/v1/screen-pops?limit=1&offset=1", headers=headers)
    assert page.status_code == 200, page.text
    assert [p["name"] for p in page.json()["items"]] == ["二"]
    assert page.json()["total"] == 3
    everything = await client.get("/api/v1/screen-pops", headers=headers)
    assert [p["name"] for p in everything.json()["items"]] == ["一", "二", "三"]
    past_the_end = await client.get("/api/v1/screen-pops?offset=3", headers=headers)
    assert past_the_end.json() == {"items": [], "total": 3}
    refused = await client.get("/api/v1/screen-pops?limit=0", headers=headers)
    assert refused.status_code == 422
    assert [d["loc"] for d in refused.json()["detail"]] == [["query", "limit"]]
