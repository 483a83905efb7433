"""Circuits per CRM, as the outbound path sees them (DESIGN.md §6, "CRM outages lose no
work").

A circuit belongs to an OAuth account (``account:<id>``) or, for other requests, to a
host (``host:https://crm.example.com:443``). Requests the CRM did not process (see
``OutboundResult.unprocessed``) count as failures; ``threshold`` of them in a row in
this process open the circuit for every process (the ``CircuitStore``, a database row).
While a circuit is open, ``Outbound.send`` answers at once without sending — kind
``unavailable``, ``unprocessed`` — except for the request of the one call event the
store chose as the probe; the probe's answer closes the circuit or keeps it open.

The outbound path knows nothing of the database: ``callbridge.circuits`` plugs in the
store, as ``callbridge.oauth_accounts`` plugs in the token source. Which circuits are
open is read from the store every ``refresh_seconds`` (and updated at once by what this
process does), so a check costs a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from callbridge.outbound.types import OAuthAuth, OutboundRequest

logger = logging.getLogger("callbridge.outbound.circuits")

# Failures in a row that open a circuit (DESIGN.md §6).
THRESHOLD = 5


@dataclass(frozen=True, slots=True)
class OpenCircuit:
    key: str
    opened_at: datetime
    last_error: str


class CircuitStore(Protocol):
    async def open_circuits(self) -> dict[str, OpenCircuit]:
        """Every open circuit."""

    async def open(self, key: str, error: str) -> OpenCircuit:
        """Open the circuit (or note one more failure of an open one)."""

    async def is_probe(self, key: str, event_pk: int) -> bool:
        """Whether ``event_pk`` is the event chosen to probe the open circuit."""

    async def probe_sent(self, key: str, event_pk: int, *, recovered: bool, error: str) -> None:
        """The probe's outcome: ``recovered`` closes the circuit and resumes the work
        parked behind it; otherwise it stays open (``error`` is the last error)."""


def circuit_key(request: OutboundRequest) -> str | None:
    """The circuit a request belongs to: its OAuth account, else its URL's host."""
    if isinstance(request.auth, OAuthAuth):
        return f"account:{request.auth.account_id}"
    try:
        parts = urlsplit(request.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return f"host:{parts.scheme}://{parts.hostname.lower()}:{port}"


class CircuitBoard:
    """This process's view of the circuits; see the module docstring."""

    def __init__(
        self,
        store: CircuitStore,
        *,
        threshold: int = THRESHOLD,
        refresh_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.threshold = threshold
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._open: dict[str, OpenCircuit] = {}
        self._in_a_row: dict[str, int] = {}
        # Circuits this process opened, and when: a refresh that read the store just
        # before the opening committed does not forget them.
        self._opened_here: dict[str, float] = {}
        self._opening: set[str] = set()
        # ... and the circuits it closed: a refresh that read the store just before the
        # closing committed does not bring them back.
        self._closed_here: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="circuit-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        found = await self.store.open_circuits()
        recent = self._clock() - 2 * self.refresh_seconds
        for key, at in list(self._opened_here.items()):
            if at < recent:
                del self._opened_here[key]
            elif key not in found and key in self._open:
                found[key] = self._open[key]
        for key, at in list(self._closed_here.items()):
            if at < recent:
                del self._closed_here[key]
            else:
                found.pop(key, None)
        self._open = found

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.warning("could not read the open circuits", exc_info=True)
            await asyncio.sleep(self.refresh_seconds)

    # ---- checks ----------------------------------------------------------------------

    def open_circuit(self, key: str | None) -> OpenCircuit | None:
        return self._open.get(key) if key is not None else None

    @property
    def open_circuits(self) -> dict[str, OpenCircuit]:
        return dict(self._open)

    async def gate(self, key: str | None, request: OutboundRequest) -> OpenCircuit | str:
        """``"send"``; ``"probe"`` when the circuit is open and this request belongs to
        its probe event; else the open circuit (the request must not be sent)."""
        circuit = self.open_circuit(key)
        if circuit is None:
            return "send"
        assert key is not None
        if request.probe_for is None:
            return circuit
        try:
            chosen = await self.store.is_probe(key, request.probe_for)
        except Exception:
            logger.warning("could not read circuit %s", key, exc_info=True)
            chosen = False
        return "probe" if chosen else circuit

    # ---- outcomes --------------------------------------------------------------------

    async def record(
        self,
        key: str | None,
        request: OutboundRequest,
        *,
        probe: bool,
        answered: bool,
        unprocessed: bool,
        error: str,
    ) -> None:
        """Count the outcome of a request that was sent. ``answered``: an HTTP answer
        came back; ``unprocessed``: the CRM did not process it. A probe that got an
        answer the CRM processed (any status but 503/429/limits) closes the circuit."""
        if key is None:
            return
        try:
            if probe:
                assert request.probe_for is not None
                recovered = answered and not unprocessed
                await self.store.probe_sent(
                    key, request.probe_for, recovered=recovered, error=error
                )
                if recovered:
                    self._open.pop(key, None)
                    self._opened_here.pop(key, None)
                    self._closed_here[key] = self._clock()
                    self._in_a_row.pop(key, None)
                    logger.info("circuit %s closed: the probe was answered", key)
                return
            if not unprocessed:
                self._in_a_row.pop(key, None)
                return
            count = self._in_a_row.get(key, 0) + 1
            self._in_a_row[key] = count
            if count >= self.threshold and key not in self._open and key not in self._opening:
                self._opening.add(key)
                try:
                    self._open[key] = await self.store.open(key, error)
                finally:
                    self._opening.discard(key)
                self._opened_here[key] = self._clock()
                self._closed_here.pop(key, None)
                logger.warning("circuit %s opened after %d failures: %s", key, count, error)
        except Exception:
            logger.warning("could not update circuit %s", key, exc_info=True)
