"""Run real servers on loopback ports for end-to-end and browser tests.

``running_server(app)`` starts uvicorn in a thread of its own (with its own event loop)
on a free port of 127.0.0.1 and stops it on exit; the app's lifespan runs as in
production.

Create a fresh app for it (``create_app(settings)``), not the ``app`` fixture: database
connections belong to the event loop that opened them, and this server runs its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class RunningServer:
    base_url: str
    port: int
    server: uvicorn.Server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(app: ASGIApp, port: int | None = None) -> Iterator[RunningServer]:
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # readiness wait, not a timing assumption
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.005)
    try:
        yield RunningServer(base_url=f"http://127.0.0.1:{port}", port=port, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
