"""SharedLoads: one load per key for everyone who asks while it is under way."""

from __future__ import annotations

import asyncio
import gc

import pytest

from callbridge.kit.loads import SharedLoads


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("database unreachable")
        return self.calls


async def test_callers_asking_meanwhile_share_one_load() -> None:
    loads: SharedLoads[str, int] = SharedLoads()
    loader = Loader()
    waiting = [asyncio.ensure_future(loads.wait("k", loader)) for _ in range(5)]
    loads.refresh("k", loader)
    await asyncio.sleep(0)
    loader.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert loader.calls == 1
    assert await loads.wait("k", loader) == 2  # finished: the next ask loads again


async def test_a_caller_that_goes_away_does_not_cancel_the_others_load() -> None:
    loads: SharedLoads[str, int] = SharedLoads()
    loader = Loader()
    leaving = asyncio.ensure_future(loads.wait("k", loader))
    staying = asyncio.ensure_future(loads.wait("k", loader))
    await asyncio.sleep(0)
    leaving.cancel()
    loader.gate.set()
    assert await staying == 1
    assert leaving.cancelled()


async def test_a_background_failure_is_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loads: SharedLoads[str, int] = SharedLoads()
    loader = Loader()
    loader.fail = True
    loader.gate.set()
    loads.refresh("k", loader)
    await loads.quiet()
    gc.collect()  # an unretrieved exception is reported when its task is collected
    assert "never retrieved" not in caplog.text
    with pytest.raises(ConnectionError):
        await loads.wait("k", loader)  # the next caller's own load meets the failure


async def test_forget_lets_the_next_ask_start_afresh() -> None:
    loads: SharedLoads[str, int] = SharedLoads()
    loader = Loader()
    first = loads.start("k", loader)
    loads.forget("k")
    second = loads.start("k", loader)
    assert first is not second
    loader.gate.set()
    await asyncio.gather(first, second)
    assert loader.calls == 2


async def test_quiet_also_waits_for_a_forgotten_load() -> None:
    """A forgotten load still runs (and uses the database): shutdown waits for it before
    the engine is closed."""
    loads: SharedLoads[str, int] = SharedLoads()
    loader = Loader()
    forgotten = loads.start("k", loader)
    loads.forget("k")
    quieting = asyncio.ensure_future(loads.quiet())
    await asyncio.sleep(0.01)
    assert not quieting.done()
    loader.gate.set()
    await asyncio.wait_for(quieting, 5)
    assert forgotten.done()
