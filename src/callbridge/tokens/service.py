from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.errors import NotFound
from callbridge.kit.crypto import sha256_hex
from callbridge.messages import Message, define
from callbridge.models import ApiToken
from callbridge.tokens.schemas import TokenCreate

define({"not_found.token": "token {id} does not exist"})

_PREFIX_LENGTH = 10


def _new_raw_token(scope: str) -> str:
    # The scope in the token helps people and secret scanners recognise it.
    return f"cb{scope[0]}_{secrets.token_urlsafe(32)}"


async def create_token(
    session: AsyncSession, data: TokenCreate, actor: str, created_by_id: int | None = None
) -> tuple[ApiToken, str]:
    raw = _new_raw_token(data.scope)
    token = ApiToken(
        name=data.name,
        scope=data.scope,
        token_hash=sha256_hex(raw),
        prefix=raw[:_PREFIX_LENGTH],
        created_by_id=created_by_id,
    )
    session.add(token)
    await session.flush()
    record_audit(session, actor, "token.create", data.name, scope=data.scope)
    return token, raw


async def list_tokens(
    session: AsyncSession, limit: int = 500, offset: int = 0
) -> tuple[list[ApiToken], int]:
    total = await session.scalar(select(func.count()).select_from(ApiToken)) or 0
    rows = await session.scalars(
        select(ApiToken)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def get_token_or_404(session: AsyncSession, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(Message("not_found.token", id=token_id))
    return token


async def revoke_token(session: AsyncSession, token: ApiToken, actor: str) -> None:
    await session.delete(token)
    record_audit(session, actor, "token.revoke", token.name, scope=token.scope)
