"""Stored OAuth accounts as the outbound path's ``TokenSource``: load, refresh, usage.

Each call opens its own database session (it runs inside whatever request or job made
the CRM request, not in its transaction). On PostgreSQL a refresh holds the account's
row lock while it talks to the provider, so processes refresh one at a time and a
process that finds a newer token than the one that failed uses it. SQLite has one
writer anyway; there the read is finished before the provider is called.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls.writes import serialized_writes
from callbridge.kit.crypto import SecretDecryptionError
from callbridge.models import OAuthAccount
from callbridge.oauth_accounts import protocol, repository, service
from callbridge.outbound import AccountToken, ApiUsage, TokenRefreshError
from callbridge.runtime import Runtime


class DatabaseTokenSource:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def load(self, account_id: int) -> AccountToken | None:
        async with self._runtime.sessionmaker() as session:
            account = await repository.get_account(session, account_id)
            if account is None:
                return None
            return service.account_token(account, self._runtime.secrets)

    async def refresh(self, account_id: int, stale_version: int) -> AccountToken:
        runtime = self._runtime
        async with runtime.sessionmaker() as session:
            account = await repository.get_account(session, account_id, for_update=True)
            if account is None:
                raise TokenRefreshError(
                    f"OAuth account {account_id} was deleted",
                    reauthorize=True,
                    code="account_missing",
                )
            current = service.account_token(account, runtime.secrets)
            if account.token_version != stale_version and current.usable:
                return current
            if account.status == "needs_reauthorization":
                raise TokenRefreshError(
                    account.status_detail or "needs re-authorisation",
                    reauthorize=True,
                    code="needs_reauthorization",
                )
            if account.status == "not_connected":
                raise TokenRefreshError(
                    "the account is not connected", reauthorize=False, code="not_connected"
                )
            try:
                config = service.provider_config(account, runtime.secrets)
                refresh_token = (
                    runtime.secrets.decrypt(account.refresh_token_enc)
                    if account.refresh_token_enc
                    else None
                )
            except SecretDecryptionError as exc:
                return await self._give_up(session, account_id, str(exc))
            if runtime.database_kind == "sqlite":
                await session.rollback()
            try:
                tokens = await protocol.refresh(config, refresh_token)
            except protocol.ProviderFailure as failure:
                if failure.kind == "reauthorize":
                    return await self._give_up(session, account_id, failure.message, failure.code)
                raise TokenRefreshError(
                    failure.message, reauthorize=False, code=failure.code
                ) from failure
            async with serialized_writes(runtime):
                account = await self._reload(session, account_id)
                try:
                    service.store_tokens(account, tokens, runtime)
                except protocol.ProviderFailure as failure:
                    raise TokenRefreshError(
                        failure.message, reauthorize=False, code=failure.code
                    ) from failure
                token = service.account_token(account, runtime.secrets)
                await session.commit()
            return token

    async def _reload(self, session: AsyncSession, account_id: int) -> OAuthAccount:
        account = await repository.get_account(session, account_id, for_update=True)
        if account is None:
            raise TokenRefreshError(
                f"OAuth account {account_id} was deleted", reauthorize=True, code="account_missing"
            )
        return account

    async def _give_up(
        self, session: AsyncSession, account_id: int, message: str, code: str | None = None
    ) -> AccountToken:
        """Mark the account ``needs_reauthorization`` and raise: no refresh until an admin
        reconnects it."""
        async with serialized_writes(self._runtime):
            account = await self._reload(session, account_id)
            service.mark_reauthorization(account, message)
            await session.commit()
        raise TokenRefreshError(message, reauthorize=True, code=code or "invalid_grant")

    async def save_usage(self, account_id: int, usage: ApiUsage) -> None:
        async with serialized_writes(self._runtime), self._runtime.sessionmaker() as session:
            await repository.save_usage(session, account_id, usage.used, usage.allowed, usage.at)
            await session.commit()
