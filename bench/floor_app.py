"""The floor of the IVR benchmark: the seed 000 dip on callbridge's own stack, nothing else.

A bare ASGI function served by uvicorn with its defaults (httptools, uvloop), calling the
CRM with aiohttp: read the JSON body, send the SOSL search by the caller's number, answer
from the two response settings — the same work as bench/nodered/flows.json, with no
framework, no authentication, no limits, no log, no metrics. What it costs per request is
what any callbridge invocation costs before callbridge does anything of its own
(``bench_ivr.py --floor`` measures it in the same rounds).

Run by bench_ivr.py: ``python -m uvicorn floor_app:app --port N`` with SANDBOX_URL and
SANDBOX_TOKEN in the environment.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

import aiohttp

_NAME = re.compile(r'"Name":"(.*)",')
_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            else:
                assert _session is not None
                await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _session is not None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    invocation = json.loads(body)
    tel = invocation.get("tel", "")
    search = f"FIND {{{tel}}} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"
    url = f"{os.environ['SANDBOX_URL']}/services/data/v45.0/search?q={quote(search, safe='')}"
    token = os.environ["SANDBOX_TOKEN"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with _session.get(url, headers=headers) as response:
        status, text = response.status, await response.text()
    guidance = None
    if status == 200 and '"searchRecords":[]' in text:
        guidance = {"type": "tts", "text": "お電話ありがとうございます。"}
    elif status == 200 and (match := _NAME.search(text)):
        guidance = {"type": "tts", "text": f"{match[1]}様、お電話ありがとうございます。"}
    answer = json.dumps(
        {
            "call_id": invocation.get("call_id"),
            "outcome": "matched" if guidance else "unmatched",
            "guidance": guidance,
            "transfer": {"kind": "callcenter", "target": "support"},
            "variables": {},
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
