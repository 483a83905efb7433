"""Shared fixtures: every database test runs on SQLite and on PostgreSQL (DESIGN.md §9).

PostgreSQL comes from CALLBRIDGE_TEST_DATABASE_URL. Without it the PostgreSQL variants
are skipped with the reason printed, except under CI (CI=true), where that is a failure.
Each test gets an empty, fully migrated database: a copy of a migrated SQLite file, or
the migrated PostgreSQL database with every table emptied.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import text

from callbridge.app import create_app
from callbridge.auth import passwords
from callbridge.db.migrate import upgrade_to_head
from callbridge.settings import Settings

PG_ENV = "CALLBRIDGE_TEST_DATABASE_URL"
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_SECRET = "test-secret-key-not-for-production"

# callbridge hashes passwords with Argon2id at argon2-cffi's defaults (64 MiB, 3 passes):
# about 0.15 s per hash or check on a 2-core machine, and the suite creates and signs in
# users hundreds of times. Tests in this process hash with the library's profile made for
# tests; servers the tests start as processes of their own keep the real parameters.
passwords._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
passwords._DUMMY_HASH = passwords._hasher.hash("callbridge-dummy-password")


def pytest_sessionstart(session: pytest.Session) -> None:
    if UNDER_CI and not os.environ.get(PG_ENV):
        raise pytest.UsageError(f"CI=true but {PG_ENV} is not set: PostgreSQL tests cannot run")


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is loaded by now (modules, the app's code) lives as long as the run: keep the
    # collector from walking it again at every full collection.
    gc.collect()
    gc.freeze()


_TESTS_RUN = itertools.count(1)


@pytest.fixture(autouse=True)
def _no_collector_pause_inside_a_test() -> Iterator[None]:
    """The runner's heap grows to hundreds of thousands of objects over the suite, and a
    full collection of it takes up to half a second: a timing assertion (an IVR's answer
    within its timeout + 50 ms) must not see the test runner's own pauses. So collection
    runs between tests: the young generations after each, everything every 20th."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(2 if next(_TESTS_RUN) % 20 == 0 else 1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "callbridge.db"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    return path


def reset_postgres_schema(url: str) -> None:
    """An empty ``public`` schema (no tables, no migrations applied)."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def reset() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(reset())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL variants skipped")
    try:
        reset_postgres_schema(url)
    except Exception as exc:
        message = f"PostgreSQL at {PG_ENV} is unusable: {type(exc).__name__}: {exc}"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    upgrade_to_head(url)
    yield url


def _truncate_all(url: str) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def truncate() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
                names = ", ".join(f'"{name}"' for (name,) in rows)
                # A connection an earlier test left inside a transaction would hold its
                # locks for ever: fail with PostgreSQL's message rather than hang.
                await connection.execute(text("SET LOCAL lock_timeout = '30s'"))
                if names:
                    await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await engine.dispose()

    asyncio.run(truncate())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "callbridge.db"
        shutil.copyfile(sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_all(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=TEST_SECRET,
        public_url=None,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        ivr_log = application.state.runtime.extras["ivr"].writer
        yield application
    # Every IVR invocation of the test was stored (a failure is only logged in production).
    assert ivr_log.failed == 0, "IVR invocation logs could not be stored"


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def live_server(settings: Settings) -> Iterator[object]:
    """The real callbridge app served by uvicorn on a loopback port."""
    from tests.servers import running_server

    with running_server(create_app(settings)) as server:
        yield server


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (missing Chromium fails under CI)."""
    if not Path(CHROMIUM).exists():
        if UNDER_CI:
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()
