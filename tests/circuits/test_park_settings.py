"""CALLBRIDGE_PARK_HOURS: a bad value stops the start with one line (issue 22, bad
input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.test_cli import _run


@pytest.mark.parametrize("value", ["abc", "0"])
def test_a_bad_park_hours_is_one_line_at_start(tmp_path: Path, value: str) -> None:
    result = _run(["serve"], tmp_path, CALLBRIDGE_PARK_HOURS=value)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("callbridge: setting CALLBRIDGE_PARK_HOURS: ")
