"""A token source held in memory, for unit tests of the outbound path."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from callbridge.outbound import AccountToken, ApiUsage, Outbound, TokenRefreshError


class MemoryTokenSource:
    def __init__(self, token: AccountToken | None, *, new_token: str = "fresh-token") -> None:
        self.token = token
        self.new_token = new_token
        self.loads = 0
        self.refreshes = 0
        self.refresh_error: TokenRefreshError | None = None
        self.usage: list[ApiUsage] = []
        self.refresh_gate: asyncio.Event | None = None

    async def load(self, account_id: int) -> AccountToken | None:
        self.loads += 1
        return self.token

    async def refresh(self, account_id: int, stale_version: int) -> AccountToken:
        self.refreshes += 1
        if self.refresh_gate is not None:
            await self.refresh_gate.wait()
        else:
            await asyncio.sleep(0)
        assert self.token is not None
        if self.refresh_error is not None:
            if self.refresh_error.reauthorize:
                self.token = replace(
                    self.token,
                    status="needs_reauthorization",
                    access_token=None,
                    status_detail=self.refresh_error.message,
                )
            raise self.refresh_error
        self.token = replace(
            self.token,
            access_token=f"{self.new_token}-{self.refreshes}",
            version=self.token.version + 1,
            status="connected",
        )
        return self.token

    async def save_usage(self, account_id: int, usage: ApiUsage) -> None:
        self.usage.append(usage)


def connected(
    token: str = "old-token", instance: str = "https://acme.my.salesforce.com", **kwargs: object
) -> AccountToken:
    return AccountToken(
        account_id=1,
        name="acme",
        status="connected",
        access_token=token,
        instance_url=instance,
        version=1,
        **kwargs,
    )  # type: ignore[arg-type]


class Sleeps:
    """An injectable sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_outbound(source: MemoryTokenSource | None = None, **kwargs: object) -> Outbound:
    kwargs.setdefault("sleep", Sleeps())
    return Outbound(token_source=source, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
