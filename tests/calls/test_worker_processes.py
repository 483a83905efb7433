"""Worker processes on PostgreSQL over real sockets with the sandbox: two workers share
1,000 calls (every call's events in order, none twice); a worker killed with SIGKILL
loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from callbridge.app import create_app
from callbridge.call_actions.schemas import CallActionCreate
from callbridge.call_actions.service import create_rule
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import SecretBox
from callbridge.models.call import CallEvent
from callbridge.sandbox import SandboxHandle, running_sandbox
from callbridge.settings import Settings
from tests.conftest import TEST_SECRET, _truncate_all
from tests.helpers import bearer, make_token
from tests.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


@pytest.fixture
def pg_settings(postgres_url: str, tmp_path: Path) -> Settings:
    _truncate_all(postgres_url)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        secret_key=TEST_SECRET,
        database_pool_size=8,
        database_max_overflow=8,  # the test server is shared
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


class Workers:
    """``callbridge serve --role worker`` processes."""

    def __init__(self, settings: Settings, tmp: Path, **env: str) -> None:
        self.settings = settings
        self.tmp = tmp
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "CALLBRIDGE_DATABASE_URL": str(self.settings.database_url),
            "CALLBRIDGE_SECRET_KEY": TEST_SECRET,
            "CALLBRIDGE_DATA_DIR": str(self.tmp / f"worker{len(self.processes)}"),
            "CALLBRIDGE_LOG_LEVEL": "WARNING",
            "CALLBRIDGE_DATABASE_POOL_SIZE": "8",
            "CALLBRIDGE_DATABASE_MAX_OVERFLOW": "8",
            **self.env,
        }
        log = (self.tmp / f"worker{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callbridge",
                "serve",
                "--role",
                "worker",
                "--port",
                str(free_port()),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def add_rules(settings: Settings, sandbox: SandboxHandle) -> None:
    """One request per event that names the call and the event, so the sandbox's log
    shows the order each call's events were processed in."""
    engine = create_engine(str(settings.database_url))
    secrets = SecretBox(TEST_SECRET)
    try:
        async with create_sessionmaker(engine)() as session:
            for event in ("queue", "disconnect"):
                await create_rule(
                    session,
                    CallActionCreate(
                        event=event,
                        auth_type="bearer",
                        bearer_token=sandbox.token(),
                        url=sandbox.base_url + "/services/data/v62.0/query?q=SELECT Id FROM "
                        "Account WHERE Name = '{ID} {EVENT}'",
                    ),
                    secrets,
                    "test",
                )
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture
async def ingest(pg_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A web-only callbridge (no worker of its own) for the PBX's deliveries."""
    app = create_app(pg_settings, role="web")
    async with app.router.lifespan_context(app):
        headers = bearer(await make_token(app, scope="pbx"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cb") as client:
            yield client, headers


async def finished(settings: Settings, expected: int, seconds: float) -> list[Any]:
    engine = create_engine(str(settings.database_url))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while True:
            async with create_sessionmaker(engine)() as session:
                done = await session.scalar(
                    select(func.count()).select_from(CallEvent).where(CallEvent.status == "done")
                )
                if done == expected:
                    rows = await session.execute(
                        select(CallEvent.id, CallEvent.attempts, CallEvent.worker)
                    )
                    return list(rows)
            assert loop.time() < deadline, f"{done} of {expected} events processed"
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def processed_order(sandbox: SandboxHandle) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {}
    for request in sandbox.rest_requests():
        q = request.query_param("q") or ""
        name = q.rsplit("= '", 1)[-1].rstrip("'")
        call_id, _space, event = name.partition(" ")
        order.setdefault(call_id, []).append(event)
    return order


async def test_two_workers_process_1000_calls_in_order_and_once(
    pg_settings: Settings, sandbox: SandboxHandle, ingest: Any, tmp_path: Path
) -> None:
    await add_rules(pg_settings, sandbox)
    workers = Workers(pg_settings, tmp_path, CALLBRIDGE_WORKER_CONCURRENCY="40")
    workers.start()
    workers.start()
    client, headers = ingest
    try:

        async def one_call(n: int) -> None:
            for event in ("queue", "disconnect"):
                answer = await client.post(
                    "/api/v1/call-events",
                    headers=headers,
                    json={"event": event, "call_id": f"c{n:04d}", "event_id": f"{n}-{event}"},
                )
                assert answer.status_code == 202, answer.text

        for start in range(0, 1000, 50):
            await asyncio.gather(*(one_call(n) for n in range(start, start + 50)))
        # A bound, not a timing: the test ends as soon as all are processed (tens of
        # seconds); a machine busy with other work may need several times that.
        rows = await finished(pg_settings, 2000, seconds=300)
    finally:
        workers.stop()
    assert all(attempts == 1 for _pk, attempts, _worker in rows)
    assert len({worker.rsplit(":", 1)[0] for _pk, _a, worker in rows}) == 2  # both worked
    order = processed_order(sandbox)
    assert len(order) == 1000
    assert all(events == ["queue", "disconnect"] for events in order.values())


async def test_a_worker_killed_with_sigkill_loses_nothing(
    pg_settings: Settings, sandbox: SandboxHandle, ingest: Any, tmp_path: Path
) -> None:
    await add_rules(pg_settings, sandbox)
    sandbox.knobs.latency_ms = 200  # requests are in flight when the worker dies
    workers = Workers(
        pg_settings, tmp_path, CALLBRIDGE_LEASE_SECONDS="5", CALLBRIDGE_DISPATCH_POLL_SECONDS="0.5"
    )
    victim = workers.start()
    client, headers = ingest
    try:
        for n in range(20):
            answer = await client.post(
                "/api/v1/call-events", headers=headers, json={"event": "queue", "call_id": f"k{n}"}
            )
            assert answer.status_code == 202
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(sandbox.rest_requests()) < 3:  # the victim is busy
            assert loop.time() < deadline and victim.poll() is None
            await asyncio.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        workers.start()  # the survivor takes over once the victim's leases expire
        rows = await finished(pg_settings, 20, seconds=60)
    finally:
        workers.stop()
    resumed = [pk for pk, attempts, _w in rows if attempts == 2]
    assert resumed, "the events the victim held were taken over"
    order = processed_order(sandbox)
    assert sorted(order) == sorted(f"k{n}" for n in range(20))
