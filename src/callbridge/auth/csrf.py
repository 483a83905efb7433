"""CSRF protection for browser requests (double-submit cookie, compared in constant time).

Every state-changing form carries ``csrf_token``; htmx and fetch requests send the
``X-CSRF-Token`` header. API calls authenticated by a bearer token need neither: a
browser never adds that header by itself.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from callbridge.kit.crypto import new_token

CSRF_COOKIE = "cb_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token_for(request: Request) -> str:
    """The request's token; a new one is made (and set as a cookie by the middleware)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = new_token(24)
        request.state.new_csrf = token
    return str(token)


def csrf_valid(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie, submitted)
