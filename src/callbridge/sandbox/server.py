"""Running the sandbox: as the ``callbridge sandbox`` command, or in-process for tests."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from callbridge.sandbox.app import create_sandbox_app
from callbridge.sandbox.demo import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
)
from callbridge.sandbox.knobs import Knobs
from callbridge.sandbox.middleware import SleepFunction
from callbridge.sandbox.state import RecordedRequest, SandboxState

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
STARTUP_TIMEOUT_SECONDS = 10.0


def _banner(base: str, state_file: Path | None) -> str:
    lines = [
        f"Sandbox Salesforce on {base}",
        f"  login URL and instance URL: {base}",
        f"  client_id:      {DEMO_CLIENT_ID}",
        f"  client_secret:  {DEMO_CLIENT_SECRET}",
        f"  username:       {DEMO_USERNAME}",
        f"  password:       {DEMO_PASSWORD}  (password grant: append {DEMO_SECURITY_TOKEN})",
        f"  control panel:  {base}/_sandbox",
        f"  state file:     {state_file}" if state_file else "  state: in memory only",
    ]
    return "\n".join(lines) + "\n"


async def serve_sandbox(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, state_file: Path | None = None
) -> None:
    """Serve the sandbox until interrupted; with ``state_file`` the org survives restarts."""
    state = SandboxState.open(state_file) if state_file is not None else SandboxState()
    app = create_sandbox_app(state)
    config = uvicorn.Config(
        app, host=host, port=port, ws="none", lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    shown_host = f"[{host}]" if ":" in host else host
    sys.stderr.write(_banner(f"http://{shown_host}:{port}", state_file))
    try:
        await server.serve()
    finally:
        if state_file is not None:
            state.save()


def run_sandbox(host: str, port: int, state_file: Path | None) -> None:
    """Block serving the sandbox (the ``callbridge sandbox`` command)."""
    asyncio.run(serve_sandbox(host, port, state_file))


@dataclass
class SandboxHandle:
    """A sandbox running in the background: where it listens and what it holds."""

    base_url: str
    state: SandboxState
    app: FastAPI

    @property
    def knobs(self) -> Knobs:
        return self.state.knobs

    @property
    def login_url(self) -> str:
        return self.base_url

    @property
    def instance_url(self) -> str:
        return self.base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def token(self, client_id: str | None = None, username: str | None = None) -> str:
        """A valid access token for the demo app and user (or the ones named)."""
        return self.state.issue_token(client_id, username)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (REST and OAuth), oldest first."""
        return self.state.request_log()

    def rest_requests(self) -> list[RecordedRequest]:
        return self.state.request_log("rest")


@contextmanager
def running_sandbox(
    state: SandboxState | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    sleep: SleepFunction | None = None,
    public_url: str | None = None,
) -> Iterator[SandboxHandle]:
    """Serve the sandbox on a loopback port in a background thread for the ``with`` block.

    Port 0 picks a free port; the handle's ``base_url`` says which.
    """
    state = state if state is not None else SandboxState()
    app = create_sandbox_app(state, sleep=sleep or asyncio.sleep, public_url=public_url)
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # protocol says TCP, and without it every small answer waits for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    actual_port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="off",
        server_header=False,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(server.serve(sockets=[listener]))
        except BaseException as error:  # reported to the starting thread
            failure.append(error)

    thread = threading.Thread(target=serve, name="sandbox-salesforce", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT_SECONDS)
            listener.close()
            raise RuntimeError("the sandbox Salesforce did not start") from (
                failure[0] if failure else None
            )
        time.sleep(0.005)
    shown_host = f"[{host}]" if ":" in host else host
    try:
        yield SandboxHandle(f"http://{shown_host}:{actual_port}", state, app)
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for requests that hang on purpose
        thread.join(STARTUP_TIMEOUT_SECONDS)
        listener.close()
