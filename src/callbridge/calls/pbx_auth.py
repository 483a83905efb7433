"""The PBX's bearer token on the ingest path, checked without a database round trip per
event: a token found valid is remembered for a few seconds. Revoking it in this process
forgets it at once; other processes stop accepting it within ``REMEMBER_SECONDS``.
Answers exactly like ``PbxAccess``: 401 without or with an unknown token, 403 with a
token of another scope."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event

from callbridge.auth.deps import token_for
from callbridge.errors import Forbidden, Unauthorized
from callbridge.kit.crypto import sha256_hex
from callbridge.models import ApiToken
from callbridge.runtime import get_runtime

REMEMBER_SECONDS = 5.0
_MAX_REMEMBERED = 1000
# token hash → (database, valid until, scope, name)
_Remembered = tuple[str, float, str, str]
_REMEMBERED: dict[str, _Remembered] = {}
# token hash → the check under way: requests arriving meanwhile wait for it instead of
# each asking the database (a busy PBX sends tens of requests in the same millisecond).
_CHECKING: dict[str, asyncio.Future[_Remembered | None]] = {}


@event.listens_for(ApiToken, "after_delete")
def _forget_revoked(_mapper: Any, _connection: Any, token: ApiToken) -> None:
    _REMEMBERED.pop(token.token_hash, None)


async def pbx_token(request: Request) -> str:
    """The token's name (for logs); raises 401/403 as the JSON API does everywhere."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    database = get_runtime(request).settings.resolved_database_url
    digest = sha256_hex(raw)
    now = time.monotonic()
    hit = _REMEMBERED.get(digest)
    if hit is None or hit[0] != database or hit[1] < now:
        key = f"{database} {digest}"
        checking = _CHECKING.get(key)
        if checking is None:
            # A task of its own: a PBX that hangs up does not cancel the others' check.
            checking = asyncio.ensure_future(_check(request, raw, digest, database))
            _CHECKING[key] = checking
            checking.add_done_callback(lambda _: _CHECKING.pop(key, None))
        hit = await asyncio.shield(checking)
        if hit is None:
            raise Unauthorized("invalid API token")
    if hit[2] != "pbx":
        raise Forbidden("this endpoint needs a token with scope 'pbx'")
    return hit[3]


async def _check(request: Request, raw: str, digest: str, database: str) -> _Remembered | None:
    async with get_runtime(request).sessionmaker() as session:
        token = await token_for(session, raw)  # also records when it was last used
        await session.commit()
    if token is None:
        _REMEMBERED.pop(digest, None)
        return None
    if len(_REMEMBERED) >= _MAX_REMEMBERED:
        _REMEMBERED.clear()
    hit = (database, time.monotonic() + REMEMBER_SECONDS, token.scope, token.name)
    _REMEMBERED[digest] = hit
    return hit


PbxToken = Annotated[str, Depends(pbx_token)]
