"""What each process of ``serve`` imports and builds (docs/performance.md §1): the
supervisor of several preloads what they run but no Alembic, a web process no Alembic, a
dispatcher process no web UI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from callbridge.dispatcher_app import create_dispatcher_app
from callbridge.settings import Settings


def _imported_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after ``code``."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")},
            "CALLBRIDGE_DATA_DIR": str(tmp_path),
        },
        timeout=120,
    )
    return set(done.stdout.split())


def test_the_supervisor_of_several_processes_preloads_them_but_not_the_migration_tool(
    tmp_path: Path,
) -> None:
    """What ``serve --workers N`` runs in its supervisor before forking the processes:
    their code (shared with them), never Alembic (the migration runs in a child that
    exits)."""
    settings_only = _imported_after(
        "import multiprocessing, uvicorn\n"
        "from callbridge import cli\n"
        "from callbridge.ops.logging import configure_logging\n"
        "cli._settings()",
        tmp_path,
    )
    assert "callbridge.cli" in settings_only
    assert not {m for m in settings_only if m.split(".")[0] in ("sqlalchemy", "fastapi")}
    preloaded = _imported_after(
        "from callbridge import cli\ncli._preload_for_forked_processes()", tmp_path
    )
    assert {"callbridge.app", "callbridge.dispatcher_app", "sqlalchemy", "uvloop"} <= preloaded
    assert not {m for m in preloaded if m.split(".")[0] in ("alembic", "httpx", "rich")}


def test_a_web_process_imports_no_migration_tool_nor_a_second_http_client(
    tmp_path: Path,
) -> None:
    modules = _imported_after(
        "from callbridge import cli\ncli._create_app(cli._settings(), 'web')", tmp_path
    )
    assert "callbridge.admin.rendering" in modules
    # httpx2 is the HTTP client; httpx would bring its command line (rich, pygments).
    assert not {m for m in modules if m.split(".")[0] in ("alembic", "httpx", "rich")}


def test_a_dispatcher_process_builds_no_web_ui(tmp_path: Path) -> None:
    modules = _imported_after(
        "from callbridge import cli\ncli._create_app(cli._settings(), 'worker')", tmp_path
    )
    assert "callbridge.calls.dispatcher" in modules
    unused = {"callbridge.app", "callbridge.admin.rendering", "callbridge.config_io.service"}
    assert not modules & unused
    assert not {m for m in modules if m.split(".")[0] in ("alembic", "jinja2", "httpx")}


async def test_the_dispatcher_app_answers_health_checks_only(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        secret_key="k" * 32,
        _env_file=None,  # type: ignore[call-arg]
    )
    application = create_dispatcher_app(settings)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/metrics")).status_code == 200
        for path in ("/api/v1/users", "/openapi.json", "/login", "/docs"):
            assert (await http.get(path)).status_code == 404, path
    await application.state.runtime.engine.dispose()
