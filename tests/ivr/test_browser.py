"""The IVR pages in a real browser: seed 000 against the sandbox, the simulator run with
htmx, what the caller hears and where the call goes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.sandbox import (
    demo_account_fields,
    running_sandbox,
)
from callbridge.sandbox.server import SandboxHandle
from callbridge.settings import Settings
from callbridge.tokens.schemas import TokenCreate
from callbridge.tokens.service import create_token
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user
from tests.helpers import bearer
from tests.ivr.seeds import seed_000_ivr

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


async def _admin_token(settings: Settings) -> str:
    """An administrator and an admin token, straight into the live server's database."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await create_user(
                session,
                UserCreate(username="admin", password="correct horse", role="admin"),
                "test",
            )
            _token, raw = await create_token(
                session, TokenCreate(name="admin", scope="admin"), "test"
            )
            await session.commit()
            return raw
    finally:
        await engine.dispose()


def test_seed_000_in_the_simulator(
    settings: Settings, live_server, browser, sandbox: SandboxHandle
) -> None:
    # Playwright's sync API owns this thread's event loop: prepare in a thread of its own.
    with ThreadPoolExecutor(1) as executor:
        admin = bearer(executor.submit(asyncio.run, _admin_token(settings)).result())
    base = live_server.base_url
    account = httpx.post(
        f"{base}/api/v1/oauth-accounts",
        json=demo_account_fields(sandbox.login_url, "Sandbox"),
        headers=admin,
    ).json()
    httpx.post(f"{base}/api/v1/oauth-accounts/{account['id']}/connect", headers=admin)
    created = httpx.post(f"{base}/api/v1/ivrs", json=seed_000_ivr(account["id"]), headers=admin)
    assert created.status_code == 201, created.text
    ivr_id = created.json()["id"]

    page = browser.new_page(locale="en-US")
    page.goto(f"{base}/login?next=/ivrs")
    page.fill("#f-username", "admin")
    page.fill("#f-password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ivrs")
    page.click("text=seed000")
    page.wait_for_url(f"{base}/ivrs/{ivr_id}")
    assert "Read ¥ as a backslash" in page.inner_text("#responses")

    page.fill("#t-tel", "07075373713")
    page.click("#t-run")
    page.wait_for_selector("#simulator")
    assert page.inner_text("[data-testid=guidance]").startswith(
        "TTS CDF 株式会社様、お電話ありがとうございます。"
    )
    assert page.inner_text("[data-testid=transfer]") == "→ Call center: support"
    checks = page.inner_text("#checks")
    assert "Priority 1 — did not match" in checks and "Priority 2 — matched" in checks

    page.fill("#t-tel", "0120999999")
    page.click("#t-run")
    page.wait_for_function(
        "document.querySelector('#checks').innerText.includes('Priority 1 — matched')"
    )
    assert page.inner_text("[data-testid=guidance]").startswith("TTS お電話ありがとうございます。")
    page.close()
