"""``callbridge config export`` and ``callbridge config import`` on the command line."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from callbridge.cli import app
from tests.config_io.test_export_import import HAND_WRITTEN
from tests.conftest import TEST_SECRET


def run(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "CALLBRIDGE_DATABASE_URL": database_url,
        "CALLBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CALLBRIDGE_SECRET_KEY": TEST_SECRET,
    }
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_import_dry_run_then_import_then_export(database_url: str, tmp_path: Path) -> None:
    document = tmp_path / "callbridge.yaml"
    document.write_text(HAND_WRITTEN, encoding="utf-8")

    code, out, _err = run(database_url, tmp_path, "config", "import", str(document), "--dry-run")
    assert code == 0, _err
    lines = out.splitlines()
    assert lines[:5] == [
        "+ oauth_accounts: Salesforce",
        "+ call_actions: disconnect #1",
        "+ call_actions: queue #1",
        "+ call_actions: queue #2",
        "+ ivrs: seed000",
    ]
    assert "! ivrs[0].headers: 「なし」 (none) was read as empty." in lines
    assert lines[-1] == "7 added, 0 changed, 0 removed, 0 unchanged: dry run, nothing was changed"
    code, out, _err = run(database_url, tmp_path, "config", "export")
    assert yaml.safe_load(out) == {
        "version": 1,
        "oauth_accounts": [],
        "call_actions": [],
        "ivrs": [],
        "history_links": [],
        "screen_pops": [],
        "settings": {},
    }

    code, out, _err = run(database_url, tmp_path, "config", "import", str(document))
    assert code == 0 and out.splitlines()[-1] == "7 added, 0 changed, 0 removed, 0 unchanged"
    exported = tmp_path / "exported.yaml"
    code, _out, err = run(database_url, tmp_path, "config", "export", "--output", str(exported))
    assert code == 0 and err == f"configuration written to {exported}\n"
    data = yaml.safe_load(exported.read_text(encoding="utf-8"))
    assert [r["memo"] for r in data["call_actions"]] == [
        "録音再生URLを付与",
        "取引先責任者を検索",
        "ケースを作成",
    ]

    # A change shown field by field, then applied.
    data["call_actions"][1]["timeout_seconds"] = 30
    document.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    code, out, _err = run(database_url, tmp_path, "config", "import", str(document))
    lines = out.splitlines()
    assert lines[:2] == ["~ call_actions: queue #1", "    timeout_seconds: 10 → 30"]
    # The rule's warnings, as when it is saved on its page.
    assert "! call_actions[1].url: Encoded 5 space(s) in the URL as %20." in lines
    assert lines[-1] == "0 added, 1 changed, 0 removed, 6 unchanged"


def test_a_bad_document_changes_nothing_and_says_where(database_url: str, tmp_path: Path) -> None:
    document = tmp_path / "bad.yaml"
    document.write_text(
        "call_actions:\n  - event: ringing\n    url: https://x.example.com/\n", encoding="utf-8"
    )
    code, out, err = run(database_url, tmp_path, "config", "import", str(document))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "call_actions[0].event: Input should be 'incoming', 'queue', 'answer', 'disconnect' "
        "or 'outgoing'",
        "callbridge: nothing was changed",
    ]
    code, _out, err = run(database_url, tmp_path, "config", "import", str(tmp_path / "missing"))
    missing = tmp_path / "missing"
    assert code == 1 and err == f"callbridge: cannot read {missing}: No such file or directory\n"
