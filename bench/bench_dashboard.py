"""Benchmark of the dashboard with 1,000,000 executions stored (prints figures; not a test).

Run: python bench/bench_dashboard.py [--executions N] [--views N] [--database FILE]
       [--postgres URL]
(``--database``: a file an earlier run filled, kept to measure again without refilling;
``--postgres``: measure on that PostgreSQL database instead, migrated and filled with the
rows of the SQLite file when its execution table is empty)

A migrated SQLite database gets N executions (default 1,000,000) spread over the last 7
days across 5 rules and 200,000 calls (10 % of the calls
and of the requests failed, latencies 20 ms–3 s), written with
sqlite3's executemany. Then the app (in this process, httpx over ASGI, signed in as an
administrator) answers the dashboard:

1. The first view folds the 7 days into per-minute totals (a one-time cost: later views
   fold only the minutes since the last one).
2. Then ``--views`` views of ``/`` (24 hours) and of ``/?range=7d``: p50 and p99 of the
   whole answer (target: <= 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from callbridge.app import create_app
from callbridge.db.migrate import upgrade_to_head
from callbridge.monitoring.dashboard import RANGES, build_charts
from callbridge.settings import Settings
from callbridge.users import repository as user_repository
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user

PASSWORD = "bench password"
RULES = 5


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def fill(path: Path, executions: int) -> None:
    random.seed(7)
    now = datetime.now(UTC)
    calls = max(executions // 5, 1)
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO call_action (id, event, execution_order, enabled, condition_code, "
            "condition_pattern, auth_type, basic_username, url, method, headers, body, "
            "timeout_seconds, extract_pattern, json_extractions, retry_non_idempotent, "
            "stop_on_failure, memo, created_at, updated_at) VALUES (?, 'queue', ?, 1, '', '', "
            "'none', '', 'https://crm.example.com/x', 'POST', '', '', 10, '', '', 0, 0, ?, ?, ?)",
            [(i, i, f"rule {i}", _stamp(now), _stamp(now)) for i in range(1, RULES + 1)],
        )
        call_rows = []
        for i in range(1, calls + 1):
            started = now - timedelta(seconds=random.uniform(0, 7 * 86400))
            call_rows.append(
                (
                    i,
                    f"bench-{i}",
                    "inbound" if i % 4 else "outbound",
                    _stamp(started),
                    _stamp(started),
                    _stamp(started),
                    1 if i % 10 == 0 else 0,
                )
            )
        connection.executemany(
            "INSERT INTO call (id, call_id, direction, started_at, created_at, updated_at, "
            "event_count, error_count) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
            call_rows,
        )
        request = json.dumps({"method": "POST", "url": "https://crm.example.com/x"})
        ok = json.dumps({"status": 201, "headers": {}, "body": "{}", "truncated": False})
        failed = json.dumps({"status": 503, "headers": {}, "body": "", "truncated": False})
        error = json.dumps({"kind": "http_status", "message": "the CRM answered 503"})
        batch = []
        for i in range(executions):
            bad = random.random() < 0.1
            at = now - timedelta(seconds=random.uniform(0, 7 * 86400))
            batch.append(
                (
                    random.randint(1, calls),
                    "call_action",
                    random.randint(1, RULES),
                    "rule",
                    "queue",
                    request,
                    failed if bad else ok,
                    random.uniform(20, 3000),
                    error if bad else None,
                    _stamp(at),
                )
            )
            if len(batch) == 50_000 or i == executions - 1:
                connection.executemany(
                    "INSERT INTO execution (call_pk, source, rule_id, label, event, attempt, "
                    "request, response, duration_ms, extracted, error, attempts, notes, at) "
                    "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, '{}', ?, '[]', '[]', ?)",
                    batch,
                )
                batch = []
    connection.close()


# The tables the fill writes, the columns it gives, and those holding times or booleans.
COPIED = {
    "call_action": (
        "id, event, execution_order, enabled, condition_code, condition_pattern, auth_type, "
        "basic_username, url, method, headers, body, timeout_seconds, extract_pattern, "
        "json_extractions, retry_non_idempotent, stop_on_failure, memo, created_at, updated_at"
    ),
    "call": "id, call_id, direction, started_at, created_at, updated_at, event_count, error_count",
    "execution": (
        "call_pk, source, rule_id, label, event, attempt, request, response, duration_ms, "
        "extracted, error, attempts, notes, at"
    ),
}
TIMES = {"started_at", "created_at", "updated_at", "at"}
BOOLEANS = {"enabled", "retry_non_idempotent", "stop_on_failure"}


async def copy_to_postgres(path: Path, url: str) -> None:
    """The SQLite file's rows into the migrated PostgreSQL database (COPY), unless it
    holds executions already."""
    import asyncpg  # the PostgreSQL driver the app uses

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        if await connection.fetchval("SELECT count(*) FROM execution"):
            return
        source = sqlite3.connect(path)
        for table, columns in COPIED.items():
            names = [name.strip() for name in columns.split(",")]

            def value(name: str, raw: object) -> object:
                if raw is not None and name in TIMES:
                    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
                return bool(raw) if name in BOOLEANS else raw

            cursor = source.execute(f"SELECT {columns} FROM {table}")
            while rows := cursor.fetchmany(50_000):
                records = [
                    tuple(value(n, v) for n, v in zip(names, row, strict=True)) for row in rows
                ]
                await connection.copy_records_to_table(table, records=records, columns=names)
        for table in ("call", "call_action", "execution"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await connection.execute("ANALYZE")
        source.close()
    finally:
        await connection.close()


async def measure(settings: Settings, views: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.runtime.sessionmaker() as session:
            if await user_repository.count_users(session) == 0:
                await create_user(
                    session,
                    UserCreate(username="admin", password=PASSWORD, role="admin"),  # type: ignore[arg-type]
                    "bench",
                )
                await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            page = await client.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            await client.post(
                "/login",
                data={"username": "admin", "password": PASSWORD, "csrf_token": csrf.group(1)},
            )
            started = time.perf_counter()
            first = await client.get("/?range=7d")
            assert first.status_code == 200, first.status_code
            print(
                f"first view (folds what is new): {1000 * (time.perf_counter() - started):.0f} ms"
            )
            for path in ("/", "/?range=7d"):
                times = []
                for _ in range(views):
                    started = time.perf_counter()
                    answer = await client.get(path)
                    times.append(1000 * (time.perf_counter() - started))
                    assert answer.status_code == 200
                times.sort()
                p99 = times[min(int(len(times) * 0.99), len(times) - 1)]
                print(
                    f"{path:12} p50 {statistics.median(times):6.1f} ms   p99 {p99:6.1f} ms   "
                    f"({views} views)"
                )
        # The chart section alone (the page also counts calls for the cards above it).
        for chosen in RANGES:
            times = []
            for _ in range(views):
                started = time.perf_counter()
                async with app.state.runtime.sessionmaker() as session:
                    await build_charts(session, chosen, "Asia/Tokyo", str)
                times.append(1000 * (time.perf_counter() - started))
            times.sort()
            p99 = times[min(int(len(times) * 0.99), len(times) - 1)]
            print(f"charts {chosen:5} p50 {statistics.median(times):6.1f} ms   p99 {p99:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--database", type=Path, default=None)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cb-dashboard-"))
    path = args.database or folder / "callbridge.db"
    if args.database is None:
        upgrade_to_head(f"sqlite+aiosqlite:///{path}")
        started = time.perf_counter()
        fill(path, args.executions)
        print(f"{args.executions:,} executions written in {time.perf_counter() - started:.0f} s")
        print(f"(kept in {path})")
    url = f"sqlite+aiosqlite:///{path}"
    if args.postgres:
        started = time.perf_counter()
        upgrade_to_head(args.postgres)
        asyncio.run(copy_to_postgres(path, args.postgres))
        print(f"PostgreSQL ready in {time.perf_counter() - started:.0f} s")
        url = args.postgres
    settings = Settings(
        data_dir=folder / "data",
        database_url=url,
        secret_key="bench-secret-key",
        _env_file=None,  # type: ignore[call-arg]
    )
    asyncio.run(measure(settings, args.views))


if __name__ == "__main__":
    main()
