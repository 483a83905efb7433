"""What the outbound path needs from stored OAuth accounts, and what it keeps per account.

The outbound path knows nothing of the database: ``callbridge.oauth_accounts`` plugs in
a ``TokenSource`` that loads an account's current token and refreshes it. The path
keeps, per account and per process, the last loaded token (re-read after
``account_cache_seconds`` or when told to forget it), the admission of its requests
(``limits.AccountGate``), the one
refresh in flight, and the API usage Salesforce reported last.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from callbridge.outbound.limits import DEFAULT_LIMITS, AccountGate, AccountLimits

AccountStatus = Literal["not_connected", "connected", "needs_reauthorization", "error"]

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class AccountToken:
    """An account's credentials as the outbound path uses them (decrypted, in memory)."""

    account_id: int
    name: str
    status: AccountStatus
    status_detail: str = ""
    access_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"
    instance_url: str | None = None
    # Increases with every new access token; a refresh names the version it found stale.
    version: int = 0
    expires_at: datetime | None = None
    limits: AccountLimits = DEFAULT_LIMITS

    @property
    def usable(self) -> bool:
        return self.access_token is not None and self.status != "needs_reauthorization"


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    """For templates and screen pops: ``{OAUTH_INSTANCE_URL}`` and the current token."""

    instance_url: str | None
    access_token: str = field(repr=False)
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """Salesforce's ``Sforce-Limit-Info: api-usage=used/allowed`` (rolling 24 hours)."""

    used: int
    allowed: int
    at: datetime

    @classmethod
    def parse(cls, header: str | None, at: datetime) -> ApiUsage | None:
        if not header:
            return None
        match = _LIMIT_INFO.search(header)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)), at)


class TokenRefreshError(Exception):
    """A refresh failed. ``reauthorize``: the provider refused the grant (``invalid_grant``)
    and the account is now marked ``needs_reauthorization``; no further refresh is tried
    until an admin reconnects it."""

    def __init__(self, message: str, *, reauthorize: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reauthorize = reauthorize
        self.code = code


class TokenSource(Protocol):
    async def load(self, account_id: int) -> AccountToken | None:
        """The account's current token as stored, or None when it does not exist."""

    async def refresh(self, account_id: int, stale_version: int) -> AccountToken:
        """A new access token. When the stored version is already newer than
        ``stale_version`` (another process refreshed), that one is returned instead.
        Raises ``TokenRefreshError``."""

    async def save_usage(self, account_id: int, usage: ApiUsage) -> None:
        """Persist the last reported API usage (called at most once a minute per account)."""


@dataclass
class AccountState:
    """Per-account, per-process state of the outbound path."""

    account_id: int
    gate: AccountGate
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    token: AccountToken | None = None
    loaded_at: float = float("-inf")
    # After a refresh failed for a transient reason, none is tried before this time.
    cooldown_until: float = float("-inf")
    cooldown: float = 0.0
    last_refresh_error: str = ""
    # The last refresh failed for a passing reason (the provider unreachable or
    # unavailable), not because the grant was refused: the CRM did not process it.
    last_refresh_transient: bool = False
    usage: ApiUsage | None = None
    usage_saved_at: float = float("-inf")
