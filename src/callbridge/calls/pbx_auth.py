"""The PBX's bearer token on the ingest path, checked without a database round trip per
event: a token found valid is remembered for a few seconds, and checked again in the
background from half that age, so a steady stream of events never waits for the database.
Revoking it in this process forgets it at once; other processes stop accepting it within
``REMEMBER_SECONDS``.
Answers exactly like ``PbxAccess``: 401 without or with an unknown token, 403 with a
token of another scope."""

from __future__ import annotations

from functools import partial
from time import monotonic
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event

from callbridge.auth.deps import token_for
from callbridge.errors import Forbidden, Unauthorized
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.loads import SharedLoads
from callbridge.models import ApiToken
from callbridge.runtime import get_runtime

REMEMBER_SECONDS = 5.0
_MAX_REMEMBERED = 1000
# token hash → (database, checked at, scope, name)
_Remembered = tuple[str, float, str, str]
_REMEMBERED: dict[str, _Remembered] = {}
# "database token-hash" → the check under way
_CHECKS: SharedLoads[str, _Remembered | None] = SharedLoads()
# Counts revocations in this process: a check that began before one does not keep what
# it found.
_revocations = 0


@event.listens_for(ApiToken, "after_delete")
def _forget_revoked(_mapper: Any, _connection: Any, token: ApiToken) -> None:
    global _revocations
    _revocations += 1
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
    hit = _REMEMBERED.get(digest)
    age = monotonic() - hit[1] if hit is not None and hit[0] == database else None
    checking = _CHECKS.stale(
        f"{database} {digest}",
        age,
        REMEMBER_SECONDS,
        partial(_check, request, raw, digest, database),
    )
    if checking is not None:
        hit = await checking
    if hit is None:
        raise Unauthorized("invalid API token")
    if hit[2] != "pbx":
        raise Forbidden("this endpoint needs a token with scope 'pbx'")
    return hit[3]


async def settle_checks() -> None:
    """Returns when the token checks under way have ended (before the engine is closed)."""
    await _CHECKS.quiet()


async def _check(request: Request, raw: str, digest: str, database: str) -> _Remembered | None:
    checked_at, revocations = monotonic(), _revocations
    async with get_runtime(request).sessionmaker() as session:
        token = await token_for(session, raw)  # also records when it was last used
        await session.commit()
    if token is None:
        _REMEMBERED.pop(digest, None)
        return None
    hit = (database, checked_at, token.scope, token.name)
    if revocations == _revocations:
        if len(_REMEMBERED) >= _MAX_REMEMBERED:
            _REMEMBERED.clear()
        _REMEMBERED[digest] = hit
    # else a token was revoked while this one was read, maybe this very one: the requests
    # that waited for the check (they arrived before the revocation) pass, and the next
    # one checks again.
    return hit


PbxToken = Annotated[str, Depends(pbx_token)]
