"""A state file keeps the demo org across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from callbridge.sandbox import SandboxState, create_sandbox_app
from tests.helpers import FakeClock

from .conftest import BASE_URL


async def test_changes_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sandbox" / "state.json"
    first = SandboxState.open(path, clock=clock)
    assert path.exists()
    token = first.issue_token()
    app = create_sandbox_app(first)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http:
        created = await http.post(
            "/services/data/v45.0/sobjects/Account",
            headers={"Authorization": f"Bearer {token}"},
            json={"Name": "再起動テスト株式会社", "Phone": "052-000-1111"},
        )
    assert created.status_code == 201

    second = SandboxState.open(path, clock=clock)

    found = second.find(created.json()["id"])
    assert found is not None and found[1]["Name"] == "再起動テスト株式会社"
    assert second.valid_access_token(token) is not None
    assert second.api_usage == 1
    account_type = second.schema.get("Account")
    assert account_type is not None
    assert second.new_id(account_type) not in {r["Id"] for r in second.records["Account"].values()}


def test_state_file_is_written_atomically_as_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SandboxState.open(path)
    state.register_user("x@example.jp", "pw")
    state.save()

    data = json.loads(path.read_text(encoding="utf-8"))

    assert data["format"] == 1
    assert any(u["username"] == "x@example.jp" for u in data["users"])
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": 99}', encoding="utf-8")

    with pytest.raises(ValueError, match="format"):
        SandboxState.open(path)


def test_save_needs_a_path() -> None:
    with pytest.raises(ValueError, match="state file"):
        SandboxState(demo=False).save()
