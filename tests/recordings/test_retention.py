"""Retention: exactly what is older than retention_days goes (calls, events, variables,
executions, recordings and their files); one worker at a time runs the job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from callbridge.kit.time import utcnow
from callbridge.models import (
    AuditEntry,
    Call,
    CallEvent,
    CallVariable,
    Execution,
    PeriodicJob,
    Recording,
)
from callbridge.recordings import retention
from tests.helpers import make_token
from tests.recordings.support import add_call, set_settings, stored_files, upload, wav_bytes


async def _add_history(app, call_pk: int) -> None:
    async with app.state.runtime.sessionmaker() as session:
        event_pk = await session.scalar(select(CallEvent.id).where(CallEvent.call_pk == call_pk))
        session.add(CallVariable(call_pk=call_pk, name="RESPONSE_ID", value="001", source="t"))
        session.add(
            Execution(
                call_pk=call_pk,
                event_pk=event_pk,
                source="call_action",
                request={"method": "GET", "url": "http://x/"},
                response=None,
                extracted={},
            )
        )
        await session.commit()


async def _count(app, model) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _call_ids(app) -> set[str]:
    async with app.state.runtime.sessionmaker() as session:
        return set(await session.scalars(select(Call.call_id)))


async def _recording_ids(app) -> set[str]:
    async with app.state.runtime.sessionmaker() as session:
        return set(await session.scalars(select(Recording.call_id)))


async def test_purges_exactly_what_is_old(app, client: httpx.AsyncClient) -> None:
    await set_settings(app, retention_days=30)
    token = await make_token(app, scope="pbx")
    now = utcnow()
    cutoff = now - timedelta(days=30)
    ages = {f"old-{i}": cutoff - timedelta(days=i, seconds=1) for i in range(5)}
    ages["young"] = cutoff + timedelta(days=1)
    ages["boundary"] = cutoff  # exactly retention_days old: kept
    for call_id, started in ages.items():
        call_pk = await add_call(app, call_id, agents=("1001", "1002"), started_at=started)
        await _add_history(app, call_pk)
        assert (await upload(client, token, call_id, wav_bytes(0.1))).status_code == 201
    # Recordings whose call never arrived: judged by their upload time.
    for call_id in ("orphan-old", "orphan-young"):
        assert (await upload(client, token, call_id, wav_bytes(0.1))).status_code == 201
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(Recording)
            .where(Recording.call_id == "orphan-old")
            .values(created_at=cutoff - timedelta(hours=1))
        )
        await session.commit()
    assert len(stored_files(app)) == 9

    result = await retention.purge_expired(app.state.runtime, now=now, batch_size=2)

    assert result["calls"] == 5
    assert result["events"] == 10
    assert result["variables"] == 5
    assert result["executions"] == 5
    assert result["recordings"] == 6
    assert result["bytes"] == 6 * len(wav_bytes(0.1))
    assert await _call_ids(app) == {"young", "boundary"}
    assert await _recording_ids(app) == {"young", "boundary", "orphan-young"}
    assert await _count(app, CallEvent) == 4
    assert await _count(app, CallVariable) == 2
    assert await _count(app, Execution) == 2
    assert len(stored_files(app)) == 3
    async with app.state.runtime.sessionmaker() as session:
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.purge"))
        ).one()
    assert entry.details["calls"] == 5
    # A second run finds nothing and leaves no audit entry.
    again = await retention.purge_expired(app.state.runtime, now=now, batch_size=2)
    assert not any(again.values())


async def test_purged_link_shows_the_file_does_not_exist(app, client: httpx.AsyncClient) -> None:
    from tests.helpers import make_user, sign_in

    await set_settings(app, retention_days=1)
    token = await make_token(app, scope="pbx")
    await add_call(app, "expired", started_at=utcnow() - timedelta(days=2))
    await upload(client, token, "expired", wav_bytes(0.1))
    await retention.purge_expired(app.state.runtime)
    await make_user(app)
    await sign_in(client)
    page = await client.get("/monitor_link/expired", headers={"Accept-Language": "ja"})
    assert page.status_code == 404
    assert "ファイルが存在しません" in page.text
    assert "1 日" in page.text


async def _make_due(app) -> None:
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(PeriodicJob)
            .where(PeriodicJob.name == retention.JOB_NAME)
            .values(next_run_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def test_one_worker_at_a_time(app) -> None:
    runtime = app.state.runtime
    # A new database: the first purge waits a while after the first worker starts.
    assert await retention.run_retention_if_due(runtime, "w1") is None
    await _make_due(app)
    results = await asyncio.gather(
        retention.run_retention_if_due(runtime, "w1"),
        retention.run_retention_if_due(runtime, "w2"),
        retention.run_retention_if_due(runtime, "w3"),
    )
    assert sum(result is not None for result in results) == 1
    async with runtime.sessionmaker() as session:
        job = await session.get(PeriodicJob, retention.JOB_NAME)
        assert job is not None
        assert job.lease_owner is None
        interval = timedelta(minutes=runtime.settings.retention_interval_minutes)
        assert job.next_run_at > utcnow() + interval - timedelta(minutes=1)
        assert job.last_result is not None and job.last_result["calls"] == 0
    # Not due again before the interval.
    assert await retention.run_retention_if_due(runtime, "w2") is None


async def test_a_crashed_workers_lease_expires(app) -> None:
    runtime = app.state.runtime
    assert await retention.run_retention_if_due(runtime, "w1") is None  # creates the row
    async with runtime.sessionmaker() as session:
        await session.execute(
            update(PeriodicJob)
            .where(PeriodicJob.name == retention.JOB_NAME)
            .values(
                next_run_at=utcnow() - timedelta(minutes=1),
                lease_owner="crashed",
                lease_expires_at=utcnow() + timedelta(minutes=1),
            )
        )
        await session.commit()
    assert await retention.run_retention_if_due(runtime, "w2") is None
    later = utcnow() + timedelta(minutes=2)
    assert await retention.run_retention_if_due(runtime, "w2", now=later) is not None
    assert await retention.seconds_until_due(runtime) > 60


async def test_the_job_runs_in_the_worker_role_only(settings) -> None:
    from callbridge.app import create_app

    def retention_tasks() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "callbridge-retention"]

    for role, expected in (("web", 0), ("worker", 1), ("all", 1)):
        application = create_app(settings, role=role)  # type: ignore[arg-type]
        async with application.router.lifespan_context(application):
            assert len(retention_tasks()) == expected, role
        assert not [t for t in retention_tasks() if not t.done()]


async def test_history_rows_are_kept_at_most_180_days(app) -> None:
    """DESIGN §11.5: history rows follow the retention setting, at most 180 days: with
    calls kept a year, a call of 200 days ago keeps its events and recording but loses
    its 連携通話履歴 row; one of 100 days keeps both; with 90 days, rows go with calls."""
    from callbridge.models import HistoryLink, HistoryRow
    from tests.history.test_api import _account

    await set_settings(app, retention_days=365)
    now = utcnow()
    account_id = await _account(app, "salesforce")
    ages = {"d100": 100, "d200": 200, "d400": 400}
    async with app.state.runtime.sessionmaker() as session:
        link = HistoryLink(name="窓口", oauth_account_id=account_id, objects=[])
        session.add(link)
        await session.commit()
        link_id = link.id
    for call_id, days in ages.items():
        started = now - timedelta(days=days)
        call_pk = await add_call(app, call_id, agents=("1001",), started_at=started)
        async with app.state.runtime.sessionmaker() as session:
            session.add(
                HistoryRow(
                    link_id=link_id,
                    call_pk=call_pk,
                    call_id=call_id,
                    started_at=started,
                    ended_at=started + timedelta(seconds=95),
                    state="synced",
                    task_ids=["00T000000000001AAA"],
                )
            )
            await session.commit()

    result = await retention.purge_expired(app.state.runtime, now=now, batch_size=1)

    assert result["calls"] == 1 and result["history_rows"] == 2
    assert await _call_ids(app) == {"d100", "d200"}
    async with app.state.runtime.sessionmaker() as session:
        assert set(await session.scalars(select(HistoryRow.call_id))) == {"d100"}
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.purge"))
        ).one()
    assert entry.details["history_rows"] == 2
    assert entry.details["history_cutoff"] == (now - timedelta(days=180)).isoformat()
    # At 90 days (the default) the rows simply go with their calls.
    await set_settings(app, retention_days=90)
    later = await retention.purge_expired(app.state.runtime, now=now)
    assert later["calls"] == 2 and later["history_rows"] == 1
    assert await _count(app, HistoryRow) == 0
