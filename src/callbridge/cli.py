"""The ``callbridge`` command (DESIGN.md §3.7)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.errors import CallbridgeError
from callbridge.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

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


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    role: Annotated[
        str, typer.Option(help="all: web and worker; web: HTTP only; worker: dispatcher only.")
    ] = "all",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes sharing the port (with --role web; more dispatchers are "
            "more processes started with --role worker).",
        ),
    ] = 1,
) -> None:
    """Migrate the database, then serve the web UI, the API and the dispatcher."""
    import uvicorn

    from callbridge.app import create_app
    from callbridge.ops.logging import configure_logging

    if role not in ("all", "web", "worker"):
        raise _fail("--role must be all, web or worker")
    if workers > 1 and role != "web":
        raise _fail(
            "--workers needs --role web: dispatchers scale as processes of their own "
            "(callbridge serve --role worker), one per core"
        )
    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings.log_format, settings.log_level)
    _migrate(settings)
    checked_role: Literal["all", "web", "worker"] = role  # type: ignore[assignment]
    application = create_app(settings, role=checked_role)
    logging.getLogger("callbridge").info(
        "callbridge serving on http://%s:%s/ (role %s, database %s)",
        settings.host,
        settings.port,
        role,
        settings.database_kind,
    )
    if workers > 1:
        # Each process builds its own app from the same settings (the environment).
        os.environ["CALLBRIDGE_HOST"] = settings.host
        os.environ["CALLBRIDGE_PORT"] = str(settings.port)
        uvicorn.run(
            "callbridge.cli:web_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            proxy_headers=True,
            timeout_graceful_shutdown=30,
        )
        return
    _freeze_startup_objects()
    if role == "worker":
        # A worker has no public HTTP: it listens on loopback for health checks only.
        uvicorn.run(
            application,
            host="127.0.0.1",
            port=settings.port,
            log_config=None,
            timeout_graceful_shutdown=30,
        )
        return
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )


def _freeze_startup_objects() -> None:
    """What was built so far (modules, the app, its routes and templates) lives as long as
    the process: keep the cyclic garbage collector from walking it again and again."""
    gc.collect()
    gc.freeze()


def web_app() -> FastAPI:
    """The app of one web process of ``serve --workers N`` (settings from the environment,
    the database already migrated by the parent)."""
    from callbridge.app import create_app
    from callbridge.ops.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    application = create_app(settings, role="web")
    _freeze_startup_objects()
    return application


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
    output.write_text(text, encoding="utf-8")
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
