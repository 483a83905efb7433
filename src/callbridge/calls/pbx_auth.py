"""The PBX's bearer token on the ingest path, checked without a database round trip per
event: a token found valid is remembered for a few seconds (a revoked token stops
working within that time). Answers exactly like ``PbxAccess``: 401 without or with an
unknown token, 403 with a token of another scope."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from callbridge.auth.deps import token_for
from callbridge.errors import Forbidden, Unauthorized
from callbridge.kit.crypto import sha256_hex
from callbridge.runtime import get_runtime

REMEMBER_SECONDS = 5.0
_MAX_REMEMBERED = 1000
_KEY = "calls.pbx_tokens"


async def pbx_token(request: Request) -> str:
    """The token's name (for logs); raises 401/403 as the JSON API does everywhere."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    runtime = get_runtime(request)
    remembered: dict[str, tuple[float, str, str]] = runtime.extras.setdefault(_KEY, {})
    digest = sha256_hex(raw)
    now = time.monotonic()
    hit = remembered.get(digest)
    if hit is None or hit[0] < now:
        async with runtime.sessionmaker() as session:
            token = await token_for(session, raw)  # also records when it was last used
            await session.commit()
        if token is None:
            remembered.pop(digest, None)
            raise Unauthorized("invalid API token")
        if len(remembered) >= _MAX_REMEMBERED:
            remembered.clear()
        hit = remembered[digest] = (now + REMEMBER_SECONDS, token.scope, token.name)
    if hit[1] != "pbx":
        raise Forbidden("this endpoint needs a token with scope 'pbx'")
    return hit[2]


PbxToken = Annotated[str, Depends(pbx_token)]
