"""The dashboard in Chromium with data: every chart is drawn (bars, lines with points),
in both languages; a screenshot of each is kept in test-results/dashboard/."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from callbridge.app import create_app
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.settings import Settings
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user
from tests.monitoring.test_dashboard import seed_activity
from tests.servers import running_server

pytestmark = pytest.mark.browser
SCREENS = Path(__file__).resolve().parents[2] / "test-results" / "dashboard"


async def _seed(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            await create_user(
                session, UserCreate(username="admin", password="correct horse", role="admin"), "t"
            )
            await session.commit()
        await seed_activity(sessionmaker)
    finally:
        await engine.dispose()


def test_every_chart_is_drawn_in_chromium(settings: Settings, browser: Any) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _seed(settings)).result()
    SCREENS.mkdir(parents=True, exist_ok=True)
    with running_server(create_app(settings)) as server:
        for language, title in (("ja", "1 時間ごとの通話数"), ("en", "Calls per hour")):
            context = browser.new_context(
                locale="ja-JP" if language == "ja" else "en-US",
                viewport={"width": 1280, "height": 900},
            )
            page = context.new_page()
            page.goto(server.base_url + "/login")
            page.fill("#f-username", "admin")
            page.fill("#f-password", "correct horse")
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(server.base_url + "/")
            assert page.locator("#chart-calls h2 span").inner_text() == title
            drawn = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('svg.chart')].map(
                    svg => [svg.dataset.chart, {
                      width: svg.getBoundingClientRect().width,
                      bars: [...svg.querySelectorAll('rect.bar')].filter(
                        r => r.getBBox().width > 0 && r.getBBox().height > 0).length,
                      points: [...svg.querySelectorAll('polyline.series')].map(
                        l => l.points.numberOfItems),
                    }]))"""
            )
            assert set(drawn) == {
                "calls",
                "crm_requests",
                "crm_latency",
                "rule_errors",
                "ivr",
                "ivr_outcomes",
                "screen_pops",
                "api_usage",
                "history",
            }
            assert all(chart["width"] > 300 for chart in drawn.values()), drawn
            assert drawn["calls"]["bars"] == 2  # inbound and outbound, stacked in one hour
            assert drawn["crm_requests"]["points"] == [144, 144]
            # Latency points only where there were requests (one 10-minute slot).
            assert drawn["crm_latency"]["points"] == [1, 1]
            assert drawn["rule_errors"]["bars"] == 1 and drawn["api_usage"]["bars"] == 1
            assert drawn["ivr"]["points"] == [144, 1]
            assert drawn["ivr_outcomes"]["bars"] == 2  # matched and no match
            page.screenshot(path=str(SCREENS / f"dashboard-{language}.png"), full_page=True)
            with page.expect_navigation():
                page.click("#chart-rule_errors svg a")
            assert "/executions?rule=call_action%3A" in page.url
            assert page.locator("#execution-results tbody tr").count() == 4
            page.go_back()
            with page.expect_navigation():
                page.click("#chart-ivr_outcomes svg a:nth-of-type(2)")
            assert "/executions?outcome=no_match" in page.url
            assert page.locator("#execution-results tbody tr").count() == 1
            assert page.locator("#f-outcome").input_value() == "no_match"
            context.close()
