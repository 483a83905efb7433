"""Every page renders, in both languages, on an empty installation and on a full one, after
the retention purge has run (the scheduled purge stores its result on the job; the
Recordings page once crashed reading it). And the purge on demand: the API and the CLI
answer what was deleted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.kit.time import utcnow
from callbridge.models import AuditEntry, Call, PeriodicJob
from callbridge.recordings import retention
from callbridge.settings import Settings
from tests.helpers import bearer, make_token, make_user, sign_in
from tests.pages import Installation, crm_stub, empty_paths, page_routes, populate

# Pages that are not a 200 page for a signed-in administrator, and what they answer.
EXPECTED = {
    "/login": 303,  # signed in already: on to the dashboard
    "/setup": 403,  # the setup link works once, before the first administrator exists
    "/oauth_client/callback": 400,  # without the provider's parameters
    "/agent/callcenter.xml": 409,  # until the public URL is https (Salesforce needs it)
}


def _card(html: str, label: str) -> str:
    match = re.search(rf'<div class="label">{label}</div><div class="value">([^<]*)</div>', html)
    assert match, label
    return match.group(1)


async def _job(app: FastAPI) -> PeriodicJob | None:
    async with app.state.runtime.sessionmaker() as session:
        return await session.get(PeriodicJob, retention.JOB_NAME)


async def _render_every_page(
    app: FastAPI, client: httpx.AsyncClient, paths: dict[str, str], *, empty: bool
) -> None:
    assert sorted(paths) == page_routes(app), "a page is missing from tests/pages.py"
    for language in ("ja", "en"):
        client.cookies.set("cb_lang", language)
        for template, path in paths.items():
            response = await client.get(path)
            expected = EXPECTED.get(template, 200)
            if empty and "{" in template:
                expected = 404  # nothing of that id: the "not found" page
            assert response.status_code == expected, (language, path, response.text[:300])
            if response.is_redirect:
                continue
            assert response.headers["content-type"].startswith("text/html"), path
            assert f'<html lang="{language}"' in response.text, (language, path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        for language in ("ja", "en"):
            anonymous.cookies.set("cb_lang", language)
            signed_out = await anonymous.get("/login")
            assert signed_out.status_code == 200
            assert f'<html lang="{language}"' in signed_out.text


async def test_every_page_after_a_purge_empty(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    admin = bearer(await make_token(app))
    answer = await client.post("/api/v1/retention/run", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "calls_deleted": 0,
        "events_deleted": 0,
        "variables_deleted": 0,
        "executions_deleted": 0,
        "recordings_deleted": 0,
        "bytes_freed": 0,
        "staging_files_deleted": 0,
    }
    job = await _job(app)
    assert job is not None and job.last_result is not None
    assert "error" not in job.last_result
    await _render_every_page(app, client, empty_paths(), empty=True)


async def test_every_page_after_a_purge_full(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    admin = bearer(await make_token(app))
    with crm_stub():
        made: Installation = await populate(client, admin)
    # The scheduled purge, as the worker runs it once the job is due.
    assert await retention.run_retention_if_due(app.state.runtime, "w1") is None
    async with app.state.runtime.sessionmaker() as session:
        job = await session.get(PeriodicJob, retention.JOB_NAME)
        assert job is not None
        job.next_run_at = utcnow()
        await session.commit()
    result = await retention.run_retention_if_due(app.state.runtime, "w1")
    assert result is not None and result["calls"] == 1 and result["events"] == 1
    async with app.state.runtime.sessionmaker() as session:
        left = set(await session.scalars(select(Call.call_id)))
    assert left == {made.call_id}
    await _render_every_page(app, client, made.paths(), empty=False)
    client.cookies.set("cb_lang", "ja")
    page = await client.get("/recordings")
    assert "通話 1 件、録音 0 件を削除" in page.text  # the last purge
    # The next purge is written the same way on the dashboard and on Recordings.
    job = await _job(app)
    assert job is not None
    expected = job.next_run_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
    dashboard = await client.get("/")
    for html in (dashboard.text, page.text):
        assert _card(html, "次回の保持期間削除") == expected


async def test_recordings_page_shows_a_failed_purge(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await sign_in(client)
    async with app.state.runtime.sessionmaker() as session:
        session.add(
            PeriodicJob(
                name=retention.JOB_NAME,
                next_run_at=utcnow(),
                last_finished_at=utcnow(),
                last_result={"error": "OSError: disk full"},
            )
        )
        await session.commit()
    client.cookies.set("cb_lang", "en")
    page = await client.get("/recordings")
    assert page.status_code == 200
    assert "failed: OSError: disk full" in page.text


async def test_run_retention_api_answers_what_was_deleted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await sign_in(client)
    admin = bearer(await make_token(app))
    with crm_stub():
        made = await populate(client, admin)
    pbx_only = bearer(await make_token(app, scope="pbx", name="pbx-2"))
    assert (await client.post("/api/v1/retention/run", headers=pbx_only)).status_code == 403
    answer = await client.post("/api/v1/retention/run", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "calls_deleted": 1,
        "events_deleted": 1,
        "variables_deleted": 0,
        "executions_deleted": 0,
        "recordings_deleted": 0,
        "bytes_freed": 0,
        "staging_files_deleted": 0,
    }
    async with app.state.runtime.sessionmaker() as session:
        assert set(await session.scalars(select(Call.call_id))) == {made.call_id}
        audit = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.purge"))
        )
    assert [entry.actor for entry in audit] == ["token:test"]
    # Done: the next scheduled purge is one interval away.
    job = await _job(app)
    assert job is not None and job.lease_owner is None
    interval = app.state.runtime.settings.retention_interval_minutes * 60
    assert abs((job.next_run_at - utcnow()).total_seconds() - interval) < 60


async def test_a_running_purge_is_not_started_twice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = bearer(await make_token(app))
    runtime = app.state.runtime
    from callbridge.recordings import repository

    async with runtime.sessionmaker() as session:
        await repository.ensure_job(session, retention.JOB_NAME, utcnow())
        assert await repository.claim_job(
            session,
            retention.JOB_NAME,
            "other-worker",
            utcnow(),
            utcnow() + retention.LEASE,
        )
        await session.commit()
    answer = await client.post("/api/v1/retention/run", headers=admin)
    assert answer.status_code == 409
    assert answer.json() == {
        "detail": "A retention purge is already running; try again when it has finished."
    }


async def test_recordings_page_button_runs_the_purge(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from tests.helpers import csrf_from

    await make_user(app)
    await sign_in(client)
    client.cookies.set("cb_lang", "ja")
    page = await client.get("/recordings")
    assert "今すぐ削除を実行" in page.text
    done = await client.post("/recordings/retention/run", data={"csrf_token": csrf_from(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/recordings?purged=1"
    after = await client.get(done.headers["location"])
    assert "保存期間を過ぎたデータの削除を実行しました。" in after.text
    assert "通話 0 件、録音 0 件を削除" in after.text


async def test_cli_retention_run(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    pbx = bearer(await make_token(app, scope="pbx", name="pbx"))
    long_ago = (utcnow() - timedelta(days=400)).isoformat()
    for call_id in ("old-1", "old-2"):
        stored = await client.post(
            "/api/v1/call-events",
            json={"call_id": call_id, "event": "incoming", "occurred_at": long_ago},
            headers=pbx,
        )
        assert stored.status_code == 202, stored.text
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
    environment.update(
        CALLBRIDGE_DATA_DIR=str(settings.data_dir),
        CALLBRIDGE_DATABASE_URL=settings.resolved_database_url,
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "callbridge", "retention", "run"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "calls_deleted": 2,
        "events_deleted": 2,
        "variables_deleted": 0,
        "executions_deleted": 0,
        "recordings_deleted": 0,
        "bytes_freed": 0,
        "staging_files_deleted": 0,
    }
    async with app.state.runtime.sessionmaker() as session:
        assert list(await session.scalars(select(Call.call_id))) == []
        audit = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.purge"))
        )
    assert [entry.actor for entry in audit] == ["cli"]
