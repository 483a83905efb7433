"""Clickjacking: no other site may frame callbridge's pages; the Open CTI softphone
(/agent/opencti) may be framed by Salesforce's domains and the origins an admin adds with
CALLBRIDGE_SOFTPHONE_FRAME_ANCESTORS. (The softphone framed by another origin, in
Chromium: tests/agent_desktop/test_softphone_browser.py.)"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from callbridge.app import create_app
from callbridge.settings import Settings
from tests.helpers import bearer, make_token, make_user, sign_in

SALESFORCE = (
    "https://*.lightning.force.com https://*.my.salesforce.com "
    "https://*.force.com https://*.salesforce.com"
)


def _framing(response: httpx.Response) -> tuple[str | None, str | None]:
    return (
        response.headers.get("content-security-policy"),
        response.headers.get("x-frame-options"),
    )


async def test_pages_may_be_framed_by_callbridge_only(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Before signing in: the sign-in page.
    login = await client.get("/login")
    assert login.status_code == 200
    assert _framing(login) == ("frame-ancestors 'self'", "SAMEORIGIN")
    await make_user(app)
    await make_user(app, username="sato", role="agent", extension="201")
    assert (await sign_in(client)).status_code == 303
    for path in ("/", "/screen-pops", "/call-actions", "/settings", "/screen-pops/999"):
        response = await client.get(path, headers={"Accept": "text/html"})
        assert response.headers["content-type"].startswith("text/html"), path
        assert _framing(response) == ("frame-ancestors 'self'", "SAMEORIGIN"), path
    # The agent console.
    client.cookies.clear()
    assert (await sign_in(client, "sato")).status_code == 303
    console = await client.get("/agent")
    assert console.status_code == 200
    assert _framing(console) == ("frame-ancestors 'self'", "SAMEORIGIN")
    # The Open CTI softphone: Salesforce frames it (no X-Frame-Options, which cannot
    # name several origins).
    softphone = await client.get("/agent/opencti")
    assert softphone.status_code == 200
    assert _framing(softphone) == (f"frame-ancestors 'self' {SALESFORCE}", None)
    # JSON is not a page: nothing added.
    api = await client.get("/api/v1/screen-pops", headers=bearer(await make_token(app)))
    assert api.status_code == 200
    assert _framing(api) == (None, None)


async def test_other_origins_may_frame_the_softphone_by_setting(settings: Settings) -> None:
    allowed = Settings(
        **{
            **settings.model_dump(),
            "softphone_frame_ancestors": "https://crm.example.jp,  http://10.0.0.5:8080 https://*.example.com",
        }
    )
    assert allowed.softphone_frame_ancestors == (
        "https://crm.example.jp http://10.0.0.5:8080 https://*.example.com"
    )
    app = create_app(allowed)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        softphone = await client.get("/agent/opencti")
        login = await client.get("/login")
    assert _framing(softphone) == (
        f"frame-ancestors 'self' {SALESFORCE} "
        "https://crm.example.jp http://10.0.0.5:8080 https://*.example.com",
        None,
    )
    # Only the softphone: the other pages stay callbridge's own.
    assert _framing(login) == ("frame-ancestors 'self'", "SAMEORIGIN")


@pytest.mark.parametrize(
    "value",
    ["crm.example.jp", "https://a.example.jp; script-src *", "https://a.example.jp/path", "*"],
)
def test_a_setting_that_is_not_an_origin_is_refused(settings: Settings, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**{**settings.model_dump(), "softphone_frame_ancestors": value})
    assert "softphone_frame_ancestors" in str(raised.value)
    assert "is not an origin: write https://host, https://*.domain or http://host:port" in str(
        raised.value
    )
