"""The ``callbridge`` command (DESIGN.md §3.7)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import typer
from pydantic import ValidationError

from callbridge.db.connections import Role, process_roles
from callbridge.errors import CallbridgeError
from callbridge.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession

    from callbridge.runtime import Runtime

T = TypeVar("T")

app = typer.Typer(
    help="callbridge: self-hosted CTI middleware between your PBX and your CRM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
retention_app = typer.Typer(
    help="The retention purge of old calls and recordings.", no_args_is_help=True
)
config_app = typer.Typer(
    help="Configuration as code: export and import one YAML document.", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(retention_app, name="retention")
app.add_typer(config_app, name="config")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"callbridge: {message}", err=True)
    return typer.Exit(code=1)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"setting CALLBRIDGE_{str(first['loc'][0]).upper()}: {first['msg']}") from None


def _migrate(settings: Settings) -> None:
    from callbridge.db.migrate import upgrade_to_head

    settings.ensure_data_dir()
    try:
        upgrade_to_head(settings.resolved_database_url)
    except Exception as exc:
        raise _fail(f"cannot migrate the database: {type(exc).__name__}: {exc}") from None


def _migrate_in_a_child() -> None:
    """``_migrate`` in a process of its own that exits when done: what the migration
    imports (Alembic, the migration scripts) never stays in the processes that serve, nor
    in the supervisor of several (about 60 MB less there)."""
    import subprocess

    # The modules this process finds, the child finds (as multiprocessing's spawn does).
    path = os.pathsep.join(entry for entry in sys.path if entry)
    done = subprocess.run(
        [sys.executable, "-c", "from callbridge.cli import migration_main; migration_main()"],
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    if done.returncode != 0:
        raise typer.Exit(code=1)  # the child said why on standard error


def migration_main() -> None:
    """The process ``serve`` migrates the database in (settings from the environment)."""
    from callbridge.ops.logging import configure_logging

    try:
        settings = _settings()
        configure_logging(settings.log_format, settings.log_level, settings.access_log)
        _migrate(settings)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    role: Annotated[
        str, typer.Option(help="all: web and worker; web: HTTP only; worker: dispatcher only.")
    ] = "all",
    workers: Annotated[
        str,
        typer.Option(
            envvar="CALLBRIDGE_WORKERS",
            help="Web processes sharing the port: auto (one per usable core on PostgreSQL, "
            "one on SQLite) or a number; 1 pins everything to one process. With --role all "
            "and more than one web process, dispatcher processes run beside them (one per "
            "two web processes).",
        ),
    ] = "auto",
) -> None:
    """Migrate the database, then serve the web UI, the API and the dispatcher."""
    import uvicorn

    from callbridge.ops.logging import configure_logging

    if role not in ("all", "web", "worker"):
        raise _fail("--role must be all, web or worker")
    checked_role: Role = role  # type: ignore[assignment]
    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    plan = plan_processes(workers, role, settings.database_kind, usable_cores())
    if isinstance(plan, str):
        raise _fail(plan)
    configure_logging(settings.log_format, settings.log_level, settings.access_log)
    _migrate_in_a_child()
    log = logging.getLogger("callbridge")
    if plan.processes > 1:
        web, dispatchers = plan
        # Each process builds its own app from the same settings (the environment).
        os.environ["CALLBRIDGE_HOST"] = settings.host
        os.environ["CALLBRIDGE_PORT"] = str(settings.port)
        connections = "one SQLite file"
        dispatcher_sizes: dict[str, int] = {}
        if settings.database_kind == "postgresql":
            roles = process_roles(web, dispatchers, checked_role)
            settings_of, dispatcher_sizes = _share_connections(settings, roles)
            connections = _describe_connections(settings_of, roles)
        log.info(
            "callbridge serving on http://%s:%s/ (%d web processes, %d dispatcher processes, "
            "database %s, %s; --workers 1 runs one process)",
            settings.host,
            settings.port,
            web,
            dispatchers,
            settings.database_kind,
            connections,
        )
        _preload_for_forked_processes()
        with _dispatcher_processes(dispatchers, dispatcher_sizes):
            uvicorn.run(
                "callbridge.cli:web_app",
                factory=True,
                workers=web,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=settings.access_log,
                proxy_headers=True,
                timeout_graceful_shutdown=30,
                # A process still importing on a busy machine is not a hung one.
                timeout_worker_healthcheck=60,
            )
        return
    application = _create_app(settings, checked_role)
    log.info(
        "callbridge serving on http://%s:%s/ (one process, role %s, database %s%s)",
        settings.host,
        settings.port,
        role,
        settings.database_kind,
        ", " + _describe_connections({checked_role: settings}, [checked_role])
        if settings.database_kind == "postgresql"
        else "",
    )
    if role == "worker":
        # A worker has no public HTTP: it listens on loopback for health checks only.
        uvicorn.run(
            application,
            host="127.0.0.1",
            port=settings.port,
            log_config=None,
            access_log=settings.access_log,
            timeout_graceful_shutdown=30,
        )
        return
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )


class ProcessPlan(NamedTuple):
    """What ``serve`` starts: web processes (uvicorn workers on the port) and dispatcher
    processes beside them. ``(1, 0)`` and ``(0, 1)`` are one process of role all, web or
    worker as asked."""

    web: int
    dispatchers: int

    @property
    def processes(self) -> int:
        return self.web + self.dispatchers


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity: ``taskset``, container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_processes(workers: str, role: str, database: str, cores: int) -> ProcessPlan | str:
    """The processes of ``serve --workers … --role …``, or why not."""
    if workers.strip().lower() == "auto":
        # SQLite has one writer: more processes only queue for its lock (docs/operations).
        count = cores if database == "postgresql" else 1
    else:
        try:
            count = int(workers)
        except ValueError:
            return f"--workers must be auto or a number, not {workers!r}"
        if count < 1:
            return "--workers must be at least 1"
    if role == "worker":
        if count > 1 and workers.strip().lower() != "auto":
            return (
                "--workers counts web processes: a dispatcher is one process "
                "(start more callbridge serve --role worker processes for more)"
            )
        return ProcessPlan(0, 1)
    if count == 1:
        return ProcessPlan(1, 0)
    if role == "web":
        return ProcessPlan(count, 0)
    return ProcessPlan(count, (count + 1) // 2)


def _share_connections(
    settings: Settings, roles: list[Role]
) -> tuple[dict[Role, Settings], dict[str, int]]:
    """Split the connection budget between the processes (a size given in the
    environment is kept). Web processes read their sizes from the environment; the
    dispatcher processes' sizes (returned) are set in theirs when they start."""
    from callbridge.db.connections import share_connections

    shares = share_connections(settings, roles)
    for name, value in shares.get("web", {}).items():
        os.environ[f"CALLBRIDGE_{name.upper()}"] = str(value)
    dispatcher_sizes = shares.get("worker", {})
    settings_of: dict[Role, Settings] = {
        "web": Settings(),
        "worker": Settings(**dispatcher_sizes),  # type: ignore[arg-type]
    }
    return settings_of, dispatcher_sizes


def _describe_connections(settings_of: dict[Role, Settings], roles: list[Role]) -> str:
    """What each process may open and the worst case in all; a warning is logged when
    that exceeds the server's max_connections (or PostgreSQL's default, 100, when the
    server cannot be asked)."""
    from callbridge.db.connections import (
        POSTGRES_DEFAULT_MAX_CONNECTIONS,
        describe,
        server_max_connections,
        worst_case,
    )

    total = worst_case(settings_of, roles)
    limit = asyncio.run(server_max_connections(settings_of[roles[0]]))
    if total > (limit or POSTGRES_DEFAULT_MAX_CONNECTIONS):
        logging.getLogger("callbridge").warning(
            "callbridge may open %d database connections, more than %s (%d): lower "
            "CALLBRIDGE_DATABASE_POOL_SIZE, CALLBRIDGE_DATABASE_MAX_OVERFLOW or "
            "CALLBRIDGE_DATABASE_CALL_STORE_POOL_SIZE, or the processes (--workers)",
            total,
            "the server's max_connections" if limit else "PostgreSQL's default max_connections",
            limit or POSTGRES_DEFAULT_MAX_CONNECTIONS,
        )
    return describe(settings_of, roles)


def _preload_for_forked_processes() -> None:
    """Make the processes of a ``serve`` of several share their code and start-up data.

    This process (the supervisor) imports what the web and dispatcher processes run —
    callbridge, FastAPI, SQLAlchemy, the drivers, uvicorn's server — then forks them
    instead of starting fresh interpreters: the pages they inherit stay shared until one
    writes to them, and ``gc.freeze()`` keeps the collector from writing to every
    object it walks. Each process still builds its own app, engine, pools and loop after
    the fork (nothing here opens a connection, a thread or a loop). Measured on 2 cores
    (supervisor, 2 web, 1 dispatcher; docs/performance.md §1): PSS added up 345 → 211 MB
    idle. uvicorn's process manager starts its web processes from one module-level
    multiprocessing context, which is spawn; it is given the fork context (a test checks
    that the web processes are forked)."""
    import multiprocessing

    import uvicorn._subprocess
    import uvicorn.lifespan.on
    import uvicorn.protocols.http.httptools_impl
    import uvloop  # noqa: F401  (uvicorn's loop="auto" picks it)

    import callbridge.app
    import callbridge.dispatcher_app  # noqa: F401
    from callbridge.kit.collector import settle_long_lived_objects

    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    settle_long_lived_objects()


@contextmanager
def _dispatcher_processes(count: int, sizes: dict[str, int]) -> Iterator[None]:
    """``count`` dispatcher processes (role worker, with these settings besides the
    environment) for as long as the block runs; one that dies is started again. Stopped
    with SIGTERM (events in flight finish)."""
    import multiprocessing
    import threading

    if count == 0:
        yield
        return
    context = multiprocessing.get_context("fork")  # _preload_for_forked_processes
    stopping = threading.Event()

    def started() -> Any:
        process = context.Process(target=_dispatcher_main, args=(sizes,), daemon=False)
        process.start()
        return process

    processes = [started() for _ in range(count)]

    def watch() -> None:
        while not stopping.wait(1.0):
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping.is_set():
                    logging.getLogger("callbridge").warning(
                        "dispatcher process %s exited (code %s): starting another",
                        process.pid,
                        process.exitcode,
                    )
                    processes[index] = started()

    watcher = threading.Thread(target=watch, name="dispatchers", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stopping.set()
        watcher.join()
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
                process.join()


def _create_app(settings: Settings, role: Role) -> FastAPI:
    """The app of one process of this role. Imported here: a supervisor of several
    processes never builds one, and a dispatcher process builds no web UI (memory)."""
    if role == "worker":
        from callbridge.dispatcher_app import create_dispatcher_app

        return create_dispatcher_app(settings, serving=True)
    from callbridge.app import create_app

    return create_app(settings, role=role, serving=True)


def _dispatcher_main(sizes: dict[str, int]) -> None:
    """A dispatcher process beside the web processes: the app of role worker (its
    lifespan runs the dispatcher) on a loopback port the system picks, unused; ``sizes``
    are its share of the connections (``_share_connections``)."""
    import uvicorn

    from callbridge.ops.logging import configure_logging

    # A dispatcher started again is forked after uvicorn's manager set its handlers.
    _default_signal_handlers()
    for name, value in sizes.items():
        os.environ[f"CALLBRIDGE_{name.upper()}"] = str(value)
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level, settings.access_log)
    application = _create_app(settings, "worker")
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=30,
    )


def web_app() -> FastAPI:
    """The app of one web process of ``serve --workers N`` (settings from the environment,
    the database already migrated by the parent)."""
    from callbridge.ops.logging import configure_logging

    _default_signal_handlers()
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level, settings.access_log)
    application = _create_app(settings, "web")
    return application


def _default_signal_handlers() -> None:
    """A process forked from the supervisor once uvicorn's manager runs there (every web
    process, a dispatcher started again) inherits the handlers the manager set (they
    queue the signal for the manager's loop, which no child runs), so SIGHUP, SIGQUIT or
    SIGUSR1 sent to it would do nothing. It gets the handlers a new interpreter has back;
    uvicorn's server then sets its own for SIGINT and SIGTERM (a graceful stop)."""
    import signal

    from uvicorn.supervisors.multiprocess import SIGNALS

    for number in SIGNALS:
        handler = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
        signal.signal(number, handler)


@app.command()
def migrate() -> None:
    """Apply pending database migrations and exit."""
    settings = _settings()
    _migrate(settings)
    typer.echo(f"database is up to date ({settings.database_kind})", err=True)


async def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from callbridge.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Sign-in name.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.")],
    role: Annotated[str, typer.Option(help="admin, supervisor or agent.")] = "agent",
    agent_id: Annotated[str | None, typer.Option(help="The PBX's agent_id of this person.")] = None,
    display_name: Annotated[str, typer.Option(help="Name shown in the UI.")] = "",
    extension: Annotated[
        str | None, typer.Option(help="The phone extension the person answers on.")
    ] = None,
    salesforce_user_id: Annotated[
        str | None, typer.Option(help="Salesforce user id (005…) owning the history Tasks.")
    ] = None,
) -> None:
    """Create a user (migrates a fresh database first)."""
    from callbridge.users.schemas import UserCreate
    from callbridge.users.service import create_user

    settings = _settings()
    _migrate(settings)
    try:
        data = UserCreate.model_validate(
            {
                "username": username,
                "password": password,
                "role": role,
                "agent_id": agent_id,
                "display_name": display_name,
                "extension": extension,
                "salesforce_user_id": salesforce_user_id,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    try:
        asyncio.run(_with_session(settings, lambda s: create_user(s, data, "cli")))
    except CallbridgeError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"user '{data.username}' created ({data.role})", err=True)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who uses the token, e.g. 'PBX main site'.")],
    scope: Annotated[str, typer.Option(help="pbx or admin.")],
) -> None:
    """Create an API token and print it (only it, once) on standard output."""
    from callbridge.tokens.schemas import TokenCreate
    from callbridge.tokens.service import create_token

    settings = _settings()
    _migrate(settings)
    try:
        data = TokenCreate.model_validate({"name": name, "scope": scope})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"--{first['loc'][0]}: {first['msg']}") from None

    async def work(session: AsyncSession) -> str:
        _token, raw = await create_token(session, data, "cli")
        return raw

    raw = asyncio.run(_with_session(settings, work))
    sys.stdout.write(raw + "\n")


def _cli_runtime(settings: Settings) -> Runtime:
    from callbridge.db.engine import create_engine, create_sessionmaker
    from callbridge.kit.crypto import SecretBox
    from callbridge.runtime import Runtime

    engine = create_engine(settings.resolved_database_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        secrets=SecretBox(settings.load_secret_key(), settings.previous_keys()),
    )


@retention_app.command("run")
def retention_run() -> None:
    """Run the retention purge now and print what it deleted (JSON) on standard output."""
    from callbridge.recordings.retention import run_retention_now
    from callbridge.recordings.schemas import RetentionRun
    from callbridge.recordings.service import get_storage

    settings = _settings()
    _migrate(settings)

    async def work() -> dict[str, int]:
        runtime = _cli_runtime(settings)
        try:
            return await run_retention_now(runtime, "cli")
        finally:
            await get_storage(runtime).close()
            await runtime.engine.dispose()

    try:
        result = asyncio.run(work())
    except CallbridgeError as exc:
        raise _fail(exc.message) from None
    sys.stdout.write(RetentionRun.from_purge(result).model_dump_json() + "\n")


@config_app.command("export")
def config_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Write every configuration as one YAML document (names, not ids; no secrets)."""
    from callbridge.config_io.service import export_document

    settings = _settings()
    _migrate(settings)
    text = asyncio.run(_with_session(settings, export_document))
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"configuration written to {output}", err=True)


@config_app.command("import")
def config_import(
    file: Annotated[str, typer.Argument(help="The YAML document ('-' reads stdin).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the difference; change nothing.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also remove what the document does not hold.")
    ] = False,
) -> None:
    """Apply a document in one transaction (all or nothing) and show the difference."""
    from callbridge.config_io.context import DocumentInvalid
    from callbridge.config_io.report import format_report
    from callbridge.config_io.service import import_document

    try:
        text = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None
    settings = _settings()
    _migrate(settings)
    runtime = _cli_runtime(settings)

    async def work() -> str:
        try:
            async with runtime.sessionmaker() as session:
                report, after_commit = await import_document(
                    session, runtime, text, "cli", dry_run=dry_run, prune=prune
                )
                await session.commit()
            for job in after_commit:
                await job()
            return format_report(report)
        finally:
            await runtime.engine.dispose()

    try:
        sys.stdout.write(asyncio.run(work()))
    except DocumentInvalid as exc:
        for problem in exc.problems:
            typer.echo(f"{problem.loc[0]}: {problem.message}", err=True)
        raise _fail("nothing was changed") from None
    except CallbridgeError as exc:
        raise _fail(exc.message) from None


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    state_file: Annotated[
        Path | None, typer.Option(help="Keep the sandbox's records in this JSON file.")
    ] = None,
) -> None:
    """Run the built-in Salesforce stand-in (OAuth, REST, demo data) for trying callbridge."""
    from callbridge.sandbox import run_sandbox

    run_sandbox(host, port, state_file)


def main() -> None:
    app()
