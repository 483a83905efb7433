"""The agent's journey in Chromium: click the link from Salesforce, sign in, come back to
the recording, and the audio element knows its duration and seeks (HTTP Range)."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.models import Call, CallEvent
from callbridge.settings import Settings
from callbridge.tokens.schemas import TokenCreate
from callbridge.tokens.service import create_token
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user
from tests.recordings.support import wav_bytes

pytestmark = pytest.mark.browser

CALL = "1700000000.42"


async def _prepare(settings: Settings) -> str:
    """An agent who handled the call, and a PBX token (straight into the database the
    live server uses)."""
    from callbridge.kit.time import utcnow

    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await create_user(
                session,
                UserCreate(
                    username="suzuki",
                    password="correct horse",
                    role="agent",
                    agent_id="1001",
                    display_name="鈴木",
                ),
                "test",
            )
            _token, raw = await create_token(session, TokenCreate(name="pbx", scope="pbx"), "test")
            now = utcnow()
            call = Call(
                call_id=CALL,
                unique_id="u-42",
                tel="07075373713",
                called="0312345678",
                started_at=now,
                ended_at=now,
            )
            session.add(call)
            await session.flush()
            session.add(
                CallEvent(
                    call_pk=call.id,
                    event="answer",
                    occurred_at=now,
                    agent_id="1001",
                    payload={},
                    status="done",
                    due_at=now,
                )
            )
            await session.commit()
            return raw
    finally:
        await engine.dispose()


def test_agent_plays_and_seeks_in_chromium(settings: Settings, live_server, browser) -> None:
    # Playwright's sync API owns this thread's event loop: prepare in a thread of its own.
    with ThreadPoolExecutor(1) as executor:
        token = executor.submit(asyncio.run, _prepare(settings)).result()
    audio = wav_bytes(3.0, rate=8000)
    uploaded = httpx.put(
        f"{live_server.base_url}/api/v1/calls/{CALL}/recording",
        content=audio,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "audio/wav"},
    )
    assert uploaded.status_code == 201, uploaded.text

    page = browser.new_page(locale="ja-JP", extra_http_headers={"Accept-Language": "ja"})
    # The link as Salesforce's WavUrlImg__c formula builds it, with B_UniqueId__c.
    page.goto(f"{live_server.base_url}/monitor_link/u-42")
    page.wait_for_url(re.compile(r".*/login\?next=%2Fmonitor_link%2Fu-42$"))
    page.fill("#f-username", "suzuki")
    page.fill("#f-password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.base_url}/monitor_link/u-42")
    assert page.inner_text("h1") == "通話録音"
    assert "07075373713" in page.inner_text("[data-testid=caller]")
    assert page.inner_text("[data-testid=agents]") == "鈴木 (1001)"

    page.wait_for_function("document.querySelector('#player').readyState >= 1")
    duration = page.evaluate("document.querySelector('#player').duration")
    assert duration == pytest.approx(3.0, abs=0.05)
    seekable_end = page.evaluate("document.querySelector('#player').seekable.end(0)")
    assert seekable_end == pytest.approx(3.0, abs=0.05)
    position = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const player = document.querySelector('#player');
            player.addEventListener('seeked', () => resolve(player.currentTime), {once: true});
            player.addEventListener('error', () => reject(player.error.message), {once: true});
            player.currentTime = 2.25;
        })"""
    )
    assert position == pytest.approx(2.25, abs=0.05)
    download = page.get_attribute("[data-testid=download]", "href")
    assert download == "/monitor_link/u-42/audio?download=1"
    page.close()
