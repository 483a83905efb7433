"""Loads shared by everyone who asks while one is under way, for values a process keeps
from the database (a token found valid, a compiled IVR, the system settings).

A busy PBX sends tens of requests in the same millisecond: when the kept value is too old
they wait for one load instead of each asking the database. Better still, a kept value
is loaded again in the background while it can still be used (``refresh``), so that a
steady stream of requests never waits for the database at all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SharedLoads(Generic[K, V]):
    """At most one load under way per key."""

    def __init__(self) -> None:
        self._under_way: dict[K, asyncio.Future[V]] = {}
        # Every load not yet ended, forgotten ones too: ``quiet`` waits for them all.
        self._running: set[asyncio.Future[V]] = set()

    def start(self, key: K, load: Callable[[], Coroutine[Any, Any, V]]) -> asyncio.Future[V]:
        """The load under way for ``key``, or a new one. It runs as a task of its own: a
        caller that goes away (a PBX hanging up) does not cancel the others' load."""
        under_way = self._under_way.get(key)
        if under_way is None:
            under_way = asyncio.ensure_future(load())
            self._under_way[key] = under_way
            self._running.add(under_way)
            under_way.add_done_callback(partial(self._done, key))
        return under_way

    async def wait(self, key: K, load: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The result of the load under way for ``key`` (started when there is none)."""
        return await asyncio.shield(self.start(key, load))

    def refresh(self, key: K, load: Callable[[], Coroutine[Any, Any, V]]) -> None:
        """Load again without waiting. A failure is not lost: the value kept meanwhile
        grows too old to use, and the next caller's own load meets it."""
        self.start(key, load)

    def stale(
        self,
        key: K,
        age: float | None,
        limit: float,
        load: Callable[[], Coroutine[Any, Any, V]],
    ) -> Awaitable[V] | None:
        """The policy for a value kept ``age`` seconds (``None``: nothing usable kept) and
        usable for ``limit``: ``None`` when the kept value is to be used as it is — having
        started ``load`` in the background from half ``limit`` —, else the load to wait for."""
        if age is not None and age < limit:
            if age >= limit / 2:
                self.refresh(key, load)
            return None
        return self.wait(key, load)

    async def quiet(self) -> None:
        """Returns when the loads under way now have finished, however they ended: also
        those ``forget`` let go, which still use the database."""
        await asyncio.gather(*self._running, return_exceptions=True)

    def forget(self, key: K) -> None:
        """A load under way may have read what is now out of date: the next one starts
        afresh."""
        self._under_way.pop(key, None)

    def _done(self, key: K, done: asyncio.Future[V]) -> None:
        self._running.discard(done)
        if self._under_way.get(key) is done:
            del self._under_way[key]
        if not done.cancelled():
            done.exception()  # retrieved: a background load's failure is not an error log
