"""CPU per request of the PBX's hot endpoints through callbridge's middleware stack: the
lean path (callbridge.hot_routes) against FastAPI's router.

Run: ``python bench/bench_hot_routes.py`` (a few seconds; SQLite in a temporary data
directory, callbridge's defaults otherwise).

Each request goes through the application's whole middleware stack, called directly
(no sockets, no uvicorn), for ``POST /api/v1/call-events`` and ``POST
/api/v1/ivr/{key}/invoke`` without a token: the answer is the same 401 on both paths and
neither the database nor a CRM is involved, so what differs is only the routing, the
request wrapping and FastAPI's dependency solving that the lean path skips. The figure
is process CPU time per request (less disturbed by a busy machine than wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

from fastapi import FastAPI

BODY = b'{"call_id":"c-1","tel":"0312345678"}'
PATHS = ("/api/v1/call-events", "/api/v1/ivr/seed000/invoke")


async def request(app: FastAPI, stack: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"callbridge"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "app": app,
        "state": {},
    }
    given = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await stack(scope, receive, send)
    return statuses[0]


async def measure(requests: int) -> None:
    from callbridge.app import create_app

    app = create_app()
    stacks = {
        "lean path": app.build_middleware_stack(),
        "FastAPI router": FastAPI.build_middleware_stack(app),
    }
    for _ in range(2):  # twice, interleaved: the second round is the one to read
        for label, stack in stacks.items():
            for path in PATHS:
                assert await request(app, stack, path) == 401
                started = time.process_time()
                for _ in range(requests):
                    await request(app, stack, path)
                cpu = (time.process_time() - started) / requests * 1e6
                print(f"{label:<15} {path:<28} {cpu:7.1f} µs CPU per request", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per path and round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["CALLBRIDGE_DATA_DIR"] = data_dir
        os.environ.pop("CALLBRIDGE_DATABASE_URL", None)
        asyncio.run(measure(args.requests))


if __name__ == "__main__":
    main()
