"""The PostgreSQL connection budget of ``serve``: every pool and listener of a process is
counted, the processes of one ``serve`` stay within 80 connections unless the operator
sets the sizes, and a process never opens more than it is said to."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from callbridge.agent_desktop.pops import get_hub
from callbridge.app import create_app
from callbridge.calls.store import call_store
from callbridge.cli import _describe_connections, _share_connections, plan_processes
from callbridge.db.connections import (
    APPLICATION_NAME,
    SHARED_CONNECTIONS,
    ProcessConnections,
    Role,
    call_store_pool_sizes,
    describe,
    process_roles,
    share_connections,
    worst_case,
)
from callbridge.settings import Settings
from tests.conftest import TEST_SECRET, _truncate_all
from tests.helpers import bearer, make_token

UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"


def _settings(**values: object) -> Settings:
    return Settings(database_url=UNREACHABLE, _env_file=None, **values)  # type: ignore[call-arg]


def _shared(web: int, dispatchers: int, **given: object) -> dict[Role, Settings]:
    """The settings the processes of such a ``serve`` run with, by role."""
    roles = process_roles(web, dispatchers, "all")
    shares = share_connections(_settings(**given), roles)
    return {role: _settings(**given, **shares[role]) for role in shares}


# (web, dispatchers): 1 process; 2 web (--role web); 2 cores; 3 cores; 6 cores.
PLANS = [(1, 0), (2, 0), (2, 1), (3, 2), (6, 3)]


@pytest.mark.parametrize(("web", "dispatchers"), PLANS)
def test_the_processes_of_one_serve_stay_within_the_budget(web: int, dispatchers: int) -> None:
    settings_of = _shared(web, dispatchers)
    roles = process_roles(web, dispatchers, "all")
    each = [ProcessConnections.of(settings_of[role], role) for role in roles]
    sqlalchemy = sum(p.pool_size + p.max_overflow for p in each)
    store = sum(p.call_store + p.bookkeeping for p in each)
    listening = sum(p.listeners for p in each)
    assert len(each) == web + dispatchers
    assert sqlalchemy + store + listening == worst_case(settings_of, roles) <= SHARED_CONNECTIONS
    assert all(min(p.pool_size, p.call_store, p.bookkeeping, p.listeners) >= 1 for p in each)
    # The budget is used, not left idle.
    assert worst_case(settings_of, roles) > SHARED_CONNECTIONS - 3 * len(each)


def test_three_processes_of_two_cores() -> None:
    """A dispatcher process gets twice a web process's share."""
    web, dispatchers = plan_processes("auto", "all", "postgresql", 2)  # type: ignore[misc]
    settings_of = _shared(web, dispatchers)
    roles = process_roles(web, dispatchers, "all")
    assert describe(settings_of, roles) == (
        "database connections per web process: 7+3 SQLAlchemy, 6+3 call store, 1 listener; "
        "per dispatcher process: 14+6 SQLAlchemy, 13+6 call store, 1 listener; "
        "at most 80 in all"
    )


@pytest.mark.parametrize("processes", range(2, 21))
def test_up_to_twenty_processes_fit(processes: int) -> None:
    for dispatchers in (0, processes // 3, processes // 2):
        web = processes - dispatchers
        roles = process_roles(web, dispatchers, "all")
        assert worst_case(_shared(web, dispatchers), roles) <= SHARED_CONNECTIONS


def test_sizes_the_operator_set_are_kept() -> None:
    shares = share_connections(_settings(database_pool_size=30), ["web", "web", "worker"])
    for role in ("web", "worker"):
        assert set(shares[role]) == {"database_max_overflow", "database_call_store_pool_size"}
    settings_of = _shared(2, 1, database_pool_size=30, database_call_store_pool_size=12)
    assert ProcessConnections.of(settings_of["web"], "web").describe() == (
        "30+3 SQLAlchemy, 12+6 call store, 1 listener"
    )


def test_one_process_keeps_its_defaults() -> None:
    """``--workers 1`` (and SQLite) is not split: the sizes are the settings' defaults."""
    settings = _settings()
    assert call_store_pool_sizes(settings) == (20, 10)
    assert describe({"all": settings}, ["all"]) == (
        "database connections: 20+30 SQLAlchemy, 20+10 call store, 2 listeners; at most 82 in all"
    )
    assert ProcessConnections.of(settings, "web").listeners == 1
    assert call_store_pool_sizes(_settings(database_pool_size=5)) == (5, 2)
    assert call_store_pool_sizes(_settings(database_pool_size=1)) == (2, 2)
    assert call_store_pool_sizes(_settings(database_call_store_pool_size=1)) == (1, 1)


def test_serve_shares_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Web processes build their settings from the environment; dispatcher processes
    from it and their own sizes."""
    monkeypatch.setenv("CALLBRIDGE_DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("CALLBRIDGE_DATABASE_MAX_OVERFLOW", "3")
    for name in ("POOL_SIZE", "CALL_STORE_POOL_SIZE"):
        # Recorded, so what serve writes into the environment is undone after the test.
        monkeypatch.setenv(f"CALLBRIDGE_DATABASE_{name}", "1")
        monkeypatch.delenv(f"CALLBRIDGE_DATABASE_{name}")
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    settings_of, dispatcher_sizes = _share_connections(base, ["web", "web", "worker"])
    web = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (web.database_pool_size, web.database_max_overflow) == (7, 3)
    assert web.database_call_store_pool_size == 6
    assert dispatcher_sizes == {"database_pool_size": 14, "database_call_store_pool_size": 13}
    worker = settings_of["worker"]
    assert (worker.database_pool_size, worker.database_max_overflow) == (14, 3)


def test_start_up_line_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The line says the worst case; more than PostgreSQL's default (the server cannot be
    asked here) is a warning naming the settings."""
    roles: list[Role] = ["web", "web", "worker"]
    with caplog.at_level(logging.INFO, logger="callbridge"):
        line = _describe_connections(_shared(2, 1), roles)
    assert line.endswith("; at most 80 in all")
    assert not caplog.records
    with caplog.at_level(logging.INFO, logger="callbridge"):
        line = _describe_connections(_shared(2, 1, database_pool_size=40), roles)
    assert line.endswith("at most 172 in all")
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "172 database connections, more than PostgreSQL's default max_connections (100)" in (
        warning.getMessage()
    )
    assert "CALLBRIDGE_DATABASE_CALL_STORE_POOL_SIZE" in warning.getMessage()


# ---- PostgreSQL: what one process really opens -------------------------------------------


async def _callbridge_connections(runtime: object, peak: list[int], stop: asyncio.Event) -> None:
    """The most connections named callbridge open in this database, every 10 ms (this
    sampling connection is not one of them)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(runtime.settings.resolved_database_url)  # type: ignore[attr-defined]
    connection = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        while not stop.is_set():
            seen = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = $1",
                APPLICATION_NAME,
            )
            peak.append(int(seen))
            await asyncio.sleep(0.01)
    finally:
        await connection.close()


@pytest.fixture
def dispatcher_of_two_cores(postgres_url: str, tmp_path: Path) -> Settings:
    """The dispatcher process of the default three on two cores (two web, one
    dispatcher): the largest share."""
    _truncate_all(postgres_url)
    given = {
        "data_dir": tmp_path / "data",
        "database_url": postgres_url,
        "secret_key": TEST_SECRET,
        "_env_file": None,
    }
    base = Settings(**given)  # type: ignore[arg-type]
    shares = share_connections(base, ["web", "web", "worker"])
    return Settings(**given, **shares["worker"])  # type: ignore[arg-type]


@pytest.mark.postgres
async def test_a_process_never_opens_more_than_it_is_said_to(
    dispatcher_of_two_cores: Settings,
) -> None:
    """A process with the dispatcher's default share under load: call events posted at
    once, and more sessions and call-store statements at a time than its pools hold.
    Its connections (application_name callbridge) reach what the start-up line says and
    never more."""
    settings = dispatcher_of_two_cores
    # One process doing everything (role all): both listeners, both pools of each kind.
    most = ProcessConnections.of(settings, "all")
    assert most.describe() == "14+6 SQLAlchemy, 13+6 call store, 2 listeners"
    application = create_app(settings, role="all")
    runtime = application.state.runtime
    async with application.router.lifespan_context(application):
        for _ in range(500):  # both listeners are up (at most 5 s)
            if runtime.extras["dispatcher"].listening and get_hub(runtime).listening:
                break
            await asyncio.sleep(0.01)
        token = await make_token(application, scope="pbx")
        peak: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_callbridge_connections(runtime, peak, stop))
        store = call_store(runtime)

        async def session_sleep() -> None:
            async with runtime.sessionmaker() as session:
                await session.execute(text("SELECT pg_sleep(0.3)"))

        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            async def event(n: int) -> None:
                answer = await http.post(
                    "/api/v1/call-events",
                    json={"call_id": f"7.{n}", "event": "incoming", "tel": "0312345678"},
                    headers=bearer(token),
                )
                assert answer.status_code == 202, answer.text

            await asyncio.gather(
                *(event(n) for n in range(200)),
                *(session_sleep() for _ in range(3 * (most.pool_size + most.max_overflow))),
                *(store._fetch("SELECT pg_sleep(0.3)", durable=True) for _ in range(30)),  # type: ignore[attr-defined]
                *(store._fetch("SELECT pg_sleep(0.3)") for _ in range(30)),  # type: ignore[attr-defined]
            )
        stop.set()
        await sampler
    assert max(peak) == most.total == 41
