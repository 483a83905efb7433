"""docs/ivr.md's example, read from the document itself: the IVR settings and response
settings as its tables print them, pasted into callbridge, answer the PBX exactly what the
document says (over real sockets, against the sandbox Salesforce)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callbridge.sandbox import running_sandbox
from callbridge.sandbox.server import SandboxHandle
from tests.helpers import bearer, make_token
from tests.ivr.test_e2e import connect_sandbox
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "ivr.md"
SECTIONS = {
    "ja": "### 例: マニュアル（API連携IVR 設定例）をそのまま設定する",
    "en": "### Example: the manual's API-linked IVR, pasted verbatim",
}
GUIDANCE = {"音声合成": "tts", "TTS": "tts"}
TRANSFER = {"コールセンター": "callcenter", "call center": "callcenter"}


def _section(language: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTIONS[language])
    end = text.find("\n#", start + 1)
    return text[start:end]


def _cell(text: str) -> str:
    text = text.strip()
    return text[1:-1] if text.startswith("`") and text.endswith("`") else text


def _table(section: str, first_header: str) -> list[list[str]]:
    lines = section[section.index(f"| {first_header} |") :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([_cell(c) for c in line.strip().strip("|").split(" | ")])
    return rows


def ivr_from_doc(language: str, account_id: int) -> dict[str, Any]:
    section = _section(language)
    settings = dict((row[0], row[1]) for row in _table(_section("ja"), "項目"))
    responses = [
        {
            "priority": int(priority),
            "response_code": code,
            "response_pattern": pattern,
            "extract_pattern": extraction,
            "guidance": {"type": GUIDANCE[kind], "text": text},
            "transfer": {"kind": TRANSFER[transfer], "target": target},
        }
        for priority, code, pattern, extraction, kind, text, transfer, target in _table(
            section, "優先順位" if language == "ja" else "priority"
        )
    ]
    assert settings["メソッド"] == "GET" and settings["受付ダイヤル最大桁数"].startswith("0")
    return {
        "key": f"doc-{language}",
        "auth_type": "oauth",
        "oauth_account_id": account_id,
        "url": settings["URL"],
        "method": settings["メソッド"],
        "max_digits": 0,
        "on_error": {"guidance": None, "transfer": {"kind": "end_rule"}},
        "responses": responses,
    }


def expected_answer(language: str) -> dict[str, Any]:
    block = re.search(r"```json\n(.*?)\n```", _section(language), re.S)
    assert block is not None
    answer: dict[str, Any] = json.loads(block.group(1))
    return answer


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


@pytest.fixture
async def http(live_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        yield client


async def test_the_documented_example_answers_as_documented(
    app: FastAPI, http: httpx.AsyncClient, sandbox: SandboxHandle
) -> None:
    admin = bearer(await make_token(app, "admin"))
    pbx = bearer(await make_token(app, "pbx", name="pbx"))
    account = await connect_sandbox(http, admin, sandbox)
    for language in ("ja", "en"):
        fields = ivr_from_doc(language, account)
        saved = await http.post("/api/v1/ivrs", json=fields, headers=admin)
        assert saved.status_code == 201, saved.text
        # The manual's 「なし」 cells are read as empty, and the admin is told so.
        notes = [w["message"] for w in saved.json()["warnings"]]
        assert notes.count("「なし」 (none) was read as empty.") == 2
        expected = expected_answer(language)
        answer = await http.post(
            f"/api/v1/ivr/{fields['key']}/invoke",
            json={"call_id": expected["call_id"], "tel": "07075373713"},
            headers=pbx,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
