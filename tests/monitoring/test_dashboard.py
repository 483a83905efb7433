"""The dashboard's charts: folded per minute in SQL, drawn as SVG, each linking to the
list behind it, in English and Japanese."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.kit.time import utcnow
from callbridge.models import CallAction, OAuthAccount, OpsRollup, OpsRollupHour
from callbridge.models.call import Call, Execution
from callbridge.monitoring import rollup
from callbridge.monitoring.dashboard import percentile
from tests.helpers import bearer, make_token, make_user, sign_in


async def seed_activity(sessionmaker: Any) -> int:
    """An hour ago: 3 inbound and 1 outbound call, 10 requests of one rule (4 failed,
    latencies 80–900 ms), 2 IVR answers (one matched, one no match, 150 ms each); an
    account at 12,000 of 15,000 API calls. Returns the rule's id."""
    now = utcnow()
    async with sessionmaker() as session:
        rule = CallAction(event="queue", url="https://crm.example.com/case", memo="ケースを作成")
        account = OAuthAccount(
            name="Salesforce 本番",
            provider="salesforce",
            grant_type="authorization_code",
            client_id="x",
            api_usage_used=12000,
            api_usage_allowed=15000,
            api_usage_at=now,
        )
        session.add_all([rule, account])
        calls = [
            Call(call_id=f"c{i}", direction="inbound" if i < 3 else "outbound") for i in range(4)
        ]
        for call in calls:
            call.started_at = now - timedelta(minutes=60)
        session.add_all(calls)
        await session.flush()
        for i in range(10):
            session.add(
                Execution(
                    call_pk=calls[i % 4].id,
                    source="call_action",
                    rule_id=rule.id,
                    label="ケースを作成",
                    request={"method": "POST", "url": "https://crm.example.com/case"},
                    response={"status": 503 if i < 4 else 201},
                    error={"kind": "http_status", "message": "503"} if i < 4 else None,
                    duration_ms=80.0 + 90 * i,
                    at=now - timedelta(minutes=58),
                )
            )
        for i in range(2):
            session.add(
                Execution(
                    call_pk=calls[0].id,
                    source="ivr",
                    rule_id=1,
                    label="IVR main",
                    request={"method": "GET", "url": "https://crm.example.com/search"},
                    response={"status": 200},
                    duration_ms=150.0,
                    outcome=("matched", "no_match")[i],
                    at=now - timedelta(minutes=57),
                )
            )
        await session.commit()
        return rule.id


def test_percentiles_come_from_the_histogram() -> None:
    # 50 ms bucket: 2, 100 ms: 1, 200 ms: 1 … the p50 of 4 is in the first bucket.
    assert percentile([2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.5) == 50.0
    assert percentile([2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.99) == 200.0
    assert percentile([0] * 12, 0.5) is None


async def test_the_dashboard_draws_every_chart_from_the_rollup(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rule_id = await seed_activity(app.state.runtime.sessionmaker)
    await make_user(app)
    await sign_in(client)
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    charts = ("calls", "crm_requests", "crm_latency", "rule_errors", "ivr", "ivr_outcomes")
    for chart in (*charts, "api_usage"):
        assert f'data-chart="{chart}"' in html, chart
    # Folded once, by minute, kind and key.
    async with app.state.runtime.sessionmaker() as session:
        totals = dict(
            (
                await session.execute(
                    select(OpsRollup.kind, func.sum(OpsRollup.count)).group_by(OpsRollup.kind)
                )
            ).all()
        )
    assert totals == {"call": 4, "call_action": 10, "ivr": 2, "ivr_outcome": 2}
    calls_svg = re.search(r'data-chart="calls".*?</svg>', html).group(0)
    assert calls_svg.count('<rect class="bar" data-series="Inbound"') == 1
    assert " Inbound: 3</title>" in calls_svg and " Outbound: 1</title>" in calls_svg
    errors_svg = re.search(r'data-chart="rule_errors".*?</svg>', html).group(0)
    assert f'href="/executions?rule=call_action%3A{rule_id}&amp;error_kind=any&amp;from=' in (
        errors_svg
    )
    assert ">ケースを作成</text>" in errors_svg and ">4 / 10</text>" in errors_svg
    assert ">12,000 / 15,000</text>" in html
    # IVR answers by outcome: a bar each, count and answer time, linking to the answers.
    outcomes_svg = re.search(r'data-chart="ivr_outcomes".*?</svg>', html).group(0)
    assert outcomes_svg.count('class="bar"') == 2
    assert '<a href="/executions?outcome=no_match&amp;from=' in outcomes_svg
    assert ">no match</text>" in outcomes_svg and ">1 · 200 / 200 ms</text>" in outcomes_svg
    assert "No history rows waiting." in html
    # The CRM requests chart links to the call-action requests, the IVR chart to the IVR's.
    for chart, found in (("crm_requests", "10 requests found."), ("ivr", "2 requests found.")):
        block = re.search(rf'id="chart-{chart}">.*?</section>', html, re.S)
        assert block is not None, chart
        link = re.search(r'href="(/executions\?rule=[a-z_]+&amp;from=[0-9-]+)"', block.group(0))
        assert link is not None, chart
        listed = await client.get(link.group(1).replace("&amp;", "&"))
        assert listed.status_code == 200 and found in listed.text, (chart, link.group(1))
    # A second view folds nothing new and shows the same.
    again = await client.get("/?range=7d")
    assert again.status_code == 200 and 'data-chart="crm_latency"' in again.text
    japanese = await client.get("/", headers={"Accept-Language": "ja"})
    assert "1 時間ごとの通話数" in japanese.text
    assert "ルール・IVR・画面ポップアップ別のエラー" in japanese.text
    assert "結果別の IVR 応答数と応答時間（ミリ秒、p50 / p99）" in japanese.text


async def test_folding_twice_counts_each_minute_once(app: FastAPI) -> None:
    await seed_activity(app.state.runtime.sessionmaker)
    async with app.state.runtime.sessionmaker() as session:
        # Totals older than the charts show are dropped by the next fold. The first fold
        # sums again every hour from the one its first minute falls in, minutes of that hour
        # before it included: the old minute lies in the hour before, whatever the clock.
        first = rollup.now_minute() - rollup.LAG_MINUTES - rollup.FIRST_DAYS * 1440
        old = (first // 60 - 1) * 60
        session.add(OpsRollup(minute=old, kind="call", key="inbound", count=99))
        session.add(OpsRollupHour(hour=old // 60 - 24 * 40, kind="call", key="", count=99))
        await session.commit()
    async with app.state.runtime.sessionmaker() as session:
        assert await rollup.fold(session) is True
    async with app.state.runtime.sessionmaker() as session:
        assert await rollup.fold(session) is True
        minutes = await session.scalar(select(func.sum(OpsRollup.count)))
        hours = await session.scalar(select(func.sum(OpsRollupHour.count)))
    assert minutes == hours == 18


async def test_the_call_cards_count_the_last_24_hours(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    now = utcnow()
    async with app.state.runtime.sessionmaker() as session:
        # (minutes ago, errors, still has work): 3 calls in the last 24 hours, of which
        # one finished with errors; one with errors still has work (not counted yet);
        # one with errors is 25 hours old (not counted at all).
        shapes = [(10, 0, False), (60, 2, False), (120, 1, True), (25 * 60, 1, False)]
        for number, (minutes, errors, due) in enumerate(shapes):
            call = Call(call_id=f"card-{number}", direction="inbound", error_count=errors)
            call.started_at = now - timedelta(minutes=minutes)
            call.due_at = now + timedelta(hours=1) if due else None
            session.add(call)
        await session.commit()
    await make_user(app)
    await sign_in(client)
    english = (await client.get("/")).text
    japanese = (await client.get("/", headers={"Accept-Language": "ja"})).text

    def card(html: str, label: str) -> str:
        found = re.search(
            rf'<div class="label">{re.escape(label)}</div><div class="value">([^<]*)</div>', html
        )
        assert found is not None, label
        return found.group(1)

    assert card(english, "Calls in the last 24 hours") == "3"
    assert card(english, "Calls with errors (24 hours)") == "1"
    assert card(japanese, "過去24時間の通話") == "3"
    assert card(japanese, "エラーのあった通話 (24時間)") == "1"


async def test_screen_pop_requests_are_charted_and_searched(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A screen pop's server accesses are executions of source ``screen_pop``: folded into
    their own kind (key: the profile), charted, and found by the execution search."""
    from callbridge.models import ScreenPopProfile

    now = utcnow()
    async with app.state.runtime.sessionmaker() as session:
        profile = ScreenPopProfile(name="他社CRM", anonymous_label="非通知")
        call = Call(call_id="pop-1", direction="inbound")
        call.started_at = now - timedelta(minutes=60)
        session.add_all([profile, call])
        await session.flush()
        for i in range(3):
            session.add(
                Execution(
                    call_pk=call.id,
                    source="screen_pop",
                    rule_id=profile.id,
                    label="他社CRM: search",
                    event="incoming",
                    request={"method": "GET", "url": "https://crm.example.com/find?tel=0312"},
                    response={"status": 500 if i == 0 else 200},
                    error={"kind": "http_status", "message": "500"} if i == 0 else None,
                    duration_ms=120.0,
                    at=now - timedelta(minutes=58),
                )
            )
        await session.commit()
        profile_id = profile.id
    await make_user(app)
    await sign_in(client)
    page = await client.get("/")
    assert page.status_code == 200
    async with app.state.runtime.sessionmaker() as session:
        folded = (
            await session.execute(
                select(OpsRollup.key, func.sum(OpsRollup.count), func.sum(OpsRollup.errors))
                .where(OpsRollup.kind == "screen_pop")
                .group_by(OpsRollup.key)
            )
        ).all()
    assert [tuple(row) for row in folded] == [(str(profile_id), 3, 1)]
    block = re.search(r'id="chart-screen_pops">.*?</section>', page.text, re.S)
    assert block is not None
    assert "Screen-pop requests per minute and time (ms, p99)" in block.group(0)
    link = re.search(r'href="(/executions\?rule=screen_pop&amp;from=[0-9-]+)"', block.group(0))
    assert link is not None
    listed = await client.get(link.group(1).replace("&amp;", "&"))
    assert listed.status_code == 200
    assert "3 requests found." in listed.text and "他社CRM: search" in listed.text
    assert '<option value="screen_pop" selected>Every screen-pop profile</option>' in listed.text
    assert f'<option value="screen_pop:{profile_id}">Screen pop · 他社CRM</option>' in listed.text
    one = await client.get(
        "/executions", params={"rule": f"screen_pop:{profile_id}", "error_kind": "any"}
    )
    assert "1 requests found." in one.text
    japanese = await client.get(
        "/executions", params={"rule": "screen_pop"}, headers={"Accept-Language": "ja"}
    )
    assert '<option value="screen_pop" selected>すべての画面ポップアップ設定</option>' in (
        japanese.text
    )
    assert f'<option value="screen_pop:{profile_id}">画面ポップアップ · 他社CRM</option>' in (
        japanese.text
    )
    assert "コールアクション、IVR、画面ポップアップが通話のために送ったすべてのリクエスト" in (
        japanese.text
    )
    home = await client.get("/", headers={"Accept-Language": "ja"})
    assert "1 分あたりの画面ポップアップのリクエスト数と所要時間（ミリ秒、p99）" in home.text
    # The API's filter: source screen_pop (and the profile's id as rule_id).
    token = bearer(await make_token(app))
    found = await client.get(
        "/api/v1/executions", params={"source": "screen_pop", "rule_id": profile_id}, headers=token
    )
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 3
    assert {item["source"] for item in found.json()["items"]} == {"screen_pop"}


async def test_errors_by_rule_include_ivrs_and_screen_pops(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The errors chart ranks the rules', IVRs' and screen-pop profiles' failed requests
    together, each bar named in the reader's language and linking to its executions."""
    rule_id = await seed_activity(app.state.runtime.sessionmaker)
    api = bearer(await make_token(app))
    created = await client.post("/api/v1/screen-pops", json={"name": "受付"}, headers=api)
    assert created.status_code == 201, created.text
    profile_id = created.json()["id"]
    now = utcnow()
    async with app.state.runtime.sessionmaker() as session:
        call = Call(call_id="pop-1", direction="inbound")
        call.started_at = now - timedelta(minutes=60)
        session.add(call)
        await session.flush()
        for source, rule, failures in (("screen_pop", profile_id, 5), ("ivr", 77, 2)):
            for _ in range(failures):
                session.add(
                    Execution(
                        call_pk=call.id,
                        source=source,
                        rule_id=rule,
                        label="検索",
                        request={"method": "GET", "url": "https://crm.example.com/search"},
                        response=None,
                        error={"kind": "timeout", "message": "no answer"},
                        duration_ms=300.0,
                        at=now - timedelta(minutes=57),
                    )
                )
        await session.commit()
    await make_user(app)
    await sign_in(client)

    def bars(html: str) -> list[tuple[str, str, str]]:
        svg = re.search(r'data-chart="rule_errors".*?</svg>', html, re.S)
        assert svg is not None
        return re.findall(
            r'<a href="/executions\?rule=([a-z_]+%3A\d+)&amp;error_kind=any&amp;from=[0-9-]+">'
            r".*?>([^<>]+)</text>.*?>(\d+ / \d+)</text>",
            svg.group(0),
            re.S,
        )

    english = await client.get("/", headers={"Accept-Language": "en"})
    assert "Errors by rule, IVR and screen pop" in english.text
    assert bars(english.text) == [
        (f"screen_pop%3A{profile_id}", "Screen pop · 受付", "5 / 5"),
        (f"call_action%3A{rule_id}", "ケースを作成", "4 / 10"),
        ("ivr%3A77", "IVR #77", "2 / 2"),
    ]
    japanese = await client.get("/", headers={"Accept-Language": "ja"})
    assert "ルール・IVR・画面ポップアップ別のエラー" in japanese.text
    assert [label for _, label, _ in bars(japanese.text)] == [
        "画面ポップアップ · 受付",
        "ケースを作成",
        "IVR #77",
    ]
    # The chart's link lists every failed execution, whatever sent it.
    block = re.search(r'id="chart-rule_errors">.*?</section>', japanese.text, re.S)
    assert block is not None
    assert re.search(r'href="/executions\?error_kind=any&amp;from=[0-9-]+"', block.group(0))
