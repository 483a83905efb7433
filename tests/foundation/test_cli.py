"""The CLI as a user runs it: a real process, exit codes, what goes to stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


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
