"""What a request's save path needs from the database: that its OAuth accounts exist, and
which ``RESPONSE_`` names the other features put on a call (for the "not produced"
warnings). Features register a provider of the names they produce; none imports another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.messages import Message
from callbridge.models.oauth_account import OAuthAccount
from callbridge.requests.compiler import Finding

NameProvider = Callable[[AsyncSession], Awaitable[set[str]]]
_providers: dict[str, NameProvider] = {}


def register_names(feature: str, provider: NameProvider) -> None:
    """``provider`` returns every bare name (without ``RESPONSE_``) ``feature`` can put on
    a call; registering again replaces it."""
    _providers[feature] = provider


async def names_from_others(session: AsyncSession, feature: str) -> set[str]:
    """The names every feature but ``feature`` can put on a call."""
    names: set[str] = set()
    for name, provider in _providers.items():
        if name != feature:
            names.update(await provider(session))
    return names


async def oauth_account_ids(session: AsyncSession) -> list[int]:
    return [int(i) for i in await session.scalars(select(OAuthAccount.id))]


async def oauth_accounts(session: AsyncSession) -> list[OAuthAccount]:
    """The accounts a request's form offers, by name."""
    return list(await session.scalars(select(OAuthAccount).order_by(OAuthAccount.name)))


async def missing_accounts(
    session: AsyncSession, accounts: Iterable[tuple[str, Any]]
) -> list[Finding]:
    """An error for each ``(field, account id)`` whose OAuth account does not exist."""
    found = []
    for where, account_id in accounts:
        if account_id is None:
            continue
        exists = await session.scalar(
            select(OAuthAccount.id).where(OAuthAccount.id == int(account_id))
        )
        if exists is None:
            found.append(Finding(where, Message("account_unknown", id=account_id), None))
    return found
