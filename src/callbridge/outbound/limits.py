"""How many requests an account may have on the wire: Salesforce-shaped limits.

Salesforce limits concurrency only for long-running requests: at most 25 per org (5 on
Developer Edition) may run for 20 seconds or longer; more are refused with
``REQUEST_LIMIT_EXCEEDED`` "ConcurrentPerOrgLongTxn Limit exceeded.". Short requests have
no concurrency limit. So a blanket cap on requests in flight only throttles a healthy
org (20 in flight at 150 ms is 133 requests/s), and does nothing useful when the org
slows down. ``AccountGate`` instead, per account and per process:

- counts the requests that have been on the wire longer than ``long_after`` seconds
  (5 by default: such a request is on its way to becoming a long one) and lets no new
  request start while ``long_request_limit`` of them are in flight;
- after an answer ``ConcurrentPerOrgLongTxn`` starts no new request for a pause
  (1 s, doubling up to 30 s while the refusals go on; ended by the next answer that is
  not that refusal);
- keeps a generous safety cap on all requests in flight (``max_in_flight``), for
  generic CRMs that fall over under many parallel requests.

Requests that cannot start wait in arrival order (an IVR request's deadline still
holds). The limits come with the account (``AccountToken.limits``), so an admin's change
applies with the account's next load.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

LONG_AFTER_SECONDS = 5.0
PAUSE_FIRST = 1.0
PAUSE_MAX = 30.0
LONG_TXN_MARKER = "ConcurrentPerOrgLongTxn"


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """An account's limits (stored with the OAuth account, edited in the UI and API)."""

    # Requests of this account in flight at once, per process: a safety cap.
    max_in_flight: int = 1000
    # Requests in flight longer than ``LONG_AFTER_SECONDS`` at once (0: no limit).
    long_request_limit: int = 25


DEFAULT_LIMITS = AccountLimits()


def is_long_txn_refusal(code: str | None, message: str) -> bool:
    """Salesforce refused the request because too many long requests were running."""
    return code == "REQUEST_LIMIT_EXCEEDED" and LONG_TXN_MARKER in message


class AccountGate:
    """Admission of one account's requests in one process (see the module docstring)."""

    __slots__ = (
        "_clock",
        "_long_after",
        "_sleep",
        "_waiters",
        "in_flight",
        "long",
        "pause",
        "paused_until",
    )

    def __init__(
        self,
        *,
        long_after: float = LONG_AFTER_SECONDS,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._long_after = long_after
        self._clock = clock
        self._sleep = sleep
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.in_flight = 0
        self.long = 0
        self.pause = 0.0
        self.paused_until = float("-inf")

    def _room(self, limits: AccountLimits) -> bool:
        if self.in_flight >= limits.max_in_flight:
            return False
        return limits.long_request_limit == 0 or self.long < limits.long_request_limit

    async def acquire(self, limits: AccountLimits) -> Slot:
        """Wait until a request of this account may start; the slot must be released."""
        wait = self.paused_until - self._clock()
        if wait > 0:
            await self._sleep(wait)
        queued = False
        while True:
            if (queued or not self._waiters) and self._room(limits):
                break
            waiter = asyncio.get_running_loop().create_future()
            if queued:
                self._waiters.appendleft(waiter)  # keep its place in line
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # it was woken: pass the turn on
                raise
            queued = True
        self.in_flight += 1
        if self._waiters and self._room(limits):
            self._wake()  # room for more (a limit was raised)
        slot = Slot(self)
        if limits.long_request_limit:
            slot.timer = asyncio.get_running_loop().call_later(self._long_after, slot.became_long)
        return slot

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def answered(self, refused_long_txn: bool) -> None:
        """After an answer: a ``ConcurrentPerOrgLongTxn`` refusal pauses the account (the
        pause doubles while refusals go on); any other answer ends the backoff."""
        if not refused_long_txn:
            self.pause = 0.0
            return
        now = self._clock()
        if now < self.paused_until:
            return  # refusals of requests sent before the pause began
        self.pause = min(PAUSE_MAX, self.pause * 2) if self.pause else PAUSE_FIRST
        self.paused_until = now + self.pause


class Slot:
    """One request's place among an account's requests in flight."""

    __slots__ = ("gate", "is_long", "timer")

    def __init__(self, gate: AccountGate) -> None:
        self.gate = gate
        self.is_long = False
        self.timer: asyncio.TimerHandle | None = None

    def became_long(self) -> None:
        self.is_long = True
        self.gate.long += 1

    def release(self) -> None:
        gate = self.gate
        if self.timer is not None:
            self.timer.cancel()
        if self.is_long:
            gate.long -= 1
        gate.in_flight -= 1
        gate._wake()
