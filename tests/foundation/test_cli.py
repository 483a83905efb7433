"""The CLI as a user runs it: a real process, exit codes, what goes to stdout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from callbridge.cli import plan_processes


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
    environment.update({"CALLBRIDGE_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "callbridge", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_tokens_create_prints_only_the_token(data_dir: Path) -> None:
    result = _run(["tokens", "create", "--name", "PBX", "--scope", "pbx"], data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("cbp_")
    assert (data_dir / "callbridge.db").exists()


def test_users_create_and_its_errors(data_dir: Path) -> None:
    ok = _run(
        ["users", "create", "--username", "admin", "--password", "long enough", "--role", "admin"],
        data_dir,
    )
    assert ok.returncode == 0, ok.stderr
    duplicate = _run(
        ["users", "create", "--username", "admin", "--password", "long enough", "--role", "admin"],
        data_dir,
    )
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "callbridge: username 'admin' is already taken"
    bad_role = _run(
        ["users", "create", "--username", "x", "--password", "long enough", "--role", "king"],
        data_dir,
    )
    assert bad_role.returncode == 1
    assert bad_role.stderr.startswith("callbridge: --role:")
    assert len(bad_role.stderr.strip().splitlines()) == 1


def test_bad_setting_is_one_line(data_dir: Path) -> None:
    result = _run(["migrate"], data_dir, CALLBRIDGE_RETENTION_DAYS="-3")
    assert result.returncode == 1
    assert result.stderr.startswith("callbridge: setting CALLBRIDGE_RETENTION_DAYS")


def test_unreachable_database_is_one_line(data_dir: Path) -> None:
    result = _run(
        ["migrate"],
        data_dir,
        CALLBRIDGE_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("callbridge: cannot migrate the database")
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_for_every_command(data_dir: Path) -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["migrate", "--help"],
        ["users", "create", "--help"],
        ["tokens", "create", "--help"],
        ["sandbox", "--help"],
    ):
        result = _run(args, data_dir)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("workers", "role", "database", "cores", "plan"),
    [
        ("auto", "all", "postgresql", 2, (2, 1)),
        ("auto", "all", "postgresql", 8, (8, 4)),
        ("auto", "all", "postgresql", 1, (1, 0)),
        ("auto", "all", "sqlite", 8, (1, 0)),
        ("auto", "web", "postgresql", 4, (4, 0)),
        ("auto", "worker", "postgresql", 4, (0, 1)),
        ("1", "all", "postgresql", 8, (1, 0)),
        ("3", "all", "sqlite", 1, (3, 2)),
        ("3", "web", "postgresql", 1, (3, 0)),
    ],
)
def test_process_plan(
    workers: str, role: str, database: str, cores: int, plan: tuple[int, int]
) -> None:
    assert plan_processes(workers, role, database, cores) == plan


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "many"], "--workers must be auto or a number, not 'many'"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--role", "worker", "--workers", "2"], "--workers counts web processes"),
    ],
)
def test_bad_workers_are_refused(data_dir: Path, args: list[str], message: str) -> None:
    result = _run(["serve", *args], data_dir)
    assert result.returncode == 1
    assert message in result.stderr


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _soon(condition: Callable[[], bool], seconds: float = 60) -> bool:
    """Whether ``condition`` holds within ``seconds`` (asked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _catches(pid: int, number: int) -> bool:
    """Whether a process has a handler for signal ``number`` (``SigCgt`` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    raise AssertionError(f"no SigCgt for {pid}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_serve_with_two_web_processes_and_a_dispatcher(data_dir: Path) -> None:
    """``--workers 2``: two web processes answer on one port, each with its own app, and
    a dispatcher process runs beside them, all three forked from the supervisor; a token
    made by the CLI works on both; a
    call event is accepted (and processed at once with wait=true); a process killed is
    forked again; SIGTERM stops them all."""
    import signal

    import httpx

    from tests.servers import free_port

    token = _run(["tokens", "create", "--name", "PBX", "--scope", "pbx"], data_dir).stdout.strip()
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
    environment.update({"CALLBRIDGE_DATA_DIR": str(data_dir), "CALLBRIDGE_LOG_LEVEL": "WARNING"})
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callbridge",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            for _ in range(600):  # until the port answers (at most 60 s)
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                try:
                    server.wait(0.1)
                    break  # exited
                except subprocess.TimeoutExpired:
                    pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            # Forked from the supervisor, which preloaded what they run (shared pages):
            # the same command line as it, no interpreter of their own.
            command = Path(f"/proc/{server.pid}/cmdline").read_bytes()
            processes = _children(server.pid)
            assert len(processes) == 3  # two web processes, one dispatcher
            assert all(Path(f"/proc/{pid}/cmdline").read_bytes() == command for pid in processes)
            # None keeps the supervisor's handler for SIGHUP (its manager's): the signals
            # uvicorn's server does not handle act as in a new interpreter.
            # (A process resets them as it starts: one may still be starting.)
            assert _soon(lambda: not any(_catches(pid, signal.SIGHUP) for pid in processes))
            assert _catches(server.pid, signal.SIGHUP)
            # A process that dies is forked again (the web processes by uvicorn's
            # manager, the dispatcher by callbridge's watcher).
            for pid in processes:
                os.kill(pid, signal.SIGKILL)
            for _ in range(600):  # at most 60 s
                replaced = set(_children(server.pid)) - set(processes)
                if len(replaced) == 3:
                    break
                time.sleep(0.1)
            assert len(replaced) == 3, server.stderr.read() if server.stderr else ""
            assert all(Path(f"/proc/{pid}/cmdline").read_bytes() == command for pid in replaced)
            assert _soon(lambda: not any(_catches(pid, signal.SIGHUP) for pid in replaced))
            for _ in range(600):  # until a new web process answers
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            for _ in range(20):
                answer = httpx.post(
                    f"{base}/api/v1/ivr/unknown/invoke",
                    json={"call_id": "1.1"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 404
            event = httpx.post(
                f"{base}/api/v1/call-events?wait=true",
                json={"call_id": "9.1", "event": "incoming", "tel": "0312345678"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            assert event.status_code == 200, event.text  # processed (no rules configured)
            assert event.json()["status"] == "processed"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
