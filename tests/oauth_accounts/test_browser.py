"""The authorization-code flow as an admin lives it, in Chromium: create the account,
Connect, approve on the sandbox's consent page, come back connected."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from callbridge.app import create_app
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.sandbox import DEMO_PASSWORD, SandboxHandle
from callbridge.settings import Settings
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user
from tests.servers import free_port, running_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def seed_admin(settings: Settings) -> None:
    async def seed() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                await create_user(
                    session,
                    UserCreate(username="admin", password="correct horse", role="admin"),
                    "test",
                )
                await session.commit()
        finally:
            await engine.dispose()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, seed()).result()


def test_connect_salesforce_account_in_chromium(
    settings: Settings, browser, sandbox: SandboxHandle
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    live_settings = settings.model_copy(update={"public_url": base + "/"})
    seed_admin(live_settings)
    callback = f"{base}/oauth_client/callback"
    sandbox.state.register_connected_app(
        "3MVG9.browser.test", "browser-secret", name="callbridge CTI", callback_urls=[callback]
    )

    with running_server(create_app(live_settings), port=port):
        page = browser.new_page(locale="en-US")
        page.goto(base + "/login")
        page.fill("#f-username", "admin")
        page.fill("#f-password", "correct horse")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")

        page.click("nav >> text=OAuth accounts")
        page.click("text=New OAuth account")
        assert callback in page.inner_text("main")
        page.fill("#f-name", "Salesforce sandbox")
        page.select_option("#f-provider", "salesforce")
        # Only the fields of the chosen provider and grant are shown.
        assert not page.is_visible("#f-token_url")
        page.select_option("#f-grant_type", "password")
        assert page.is_visible("#f-username")
        page.select_option("#f-grant_type", "authorization_code")
        assert not page.is_visible("#f-username")
        page.select_option("#f-login_choice", "custom")
        page.fill("#f-login_url", sandbox.login_url)
        page.fill("#f-client_id", "3MVG9.browser.test")
        page.fill("#f-client_secret", "browser-secret")
        page.fill("#f-scope", "api refresh_token")
        page.click("#save")
        page.wait_for_url(re.compile(r".*/oauth-accounts/\d+\?saved=1$"))
        assert page.get_attribute("#status [data-status]", "data-status") == "not_connected"
        assert page.inner_text("#callback-url") == callback

        page.click("#connect")
        page.wait_for_url(re.compile(re.escape(sandbox.base_url) + r"/services/oauth2/authorize.*"))
        assert "Allow Access?" in page.inner_text("h1")
        assert "callbridge CTI" in page.inner_text("main")
        page.fill("#password", DEMO_PASSWORD)
        page.click("#oaapprove")

        page.wait_for_url(re.compile(r".*/oauth-accounts/\d+\?connected=1$"))
        assert "Connected: callbridge can now call the API" in page.inner_text("main")
        assert page.get_attribute("#status [data-status]", "data-status") == "connected"
        assert sandbox.instance_url in page.inner_text("#status")

        page.click("#test")
        assert "Test succeeded" in page.inner_text("#test-report")
        assert "demo@callbridge.sandbox" in page.inner_text("#test-report")

        page.click("nav >> text=OAuth accounts")
        assert page.inner_text("td [data-status]") == "connected"
        page.close()
