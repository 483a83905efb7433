"""The Open CTI softphone's sign-in (DESIGN §12.1).

``/agent/opencti`` runs in Salesforce's iframe, a different site: browsers do not send
callbridge's ``SameSite=Lax`` session cookie there, and loosening that cookie would
expose the whole admin UI to cross-site requests. Instead the signed-in agent gets a
one-time pairing code on ``/agent`` (first-party, cookie session) and types it into the
softphone, which trades it for a token of its own: a session of kind ``softphone``,
kept in the iframe's storage and sent as ``Authorization: Bearer``. Only the agent
endpoints the softphone uses accept it (the stream, call notes, the card's click, its
own sign-out); the UI's cookie and the rest of the API never do.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.auth.deps import AdminAccess, AdminUser, CsrfChecked
from callbridge.auth.sessions import SOFTPHONE, end_session, end_sessions, start_session
from callbridge.db.session import SessionDep
from callbridge.errors import CallbridgeError, FieldError, Unauthorized
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define
from callbridge.models import LoginFailure, SoftphonePairingCode, User
from callbridge.runtime import get_runtime
from callbridge.users.service import get_user_or_404

CODE_MINUTES = 5
# Letters and digits an agent cannot misread (no 0/O, 1/I); 10 of them are 50 bits.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
# Wrong codes counted per client address, with the sign-in's failures table and window.
_FAILURE_NAME = "(softphone code)"
_FAILURE_FACTOR = 4

define(
    {
        "softphone_code_refused": (
            "This code is unknown, expired or already used: get a new code on the agent "
            "console (/agent)."
        ),
        "softphone_code_throttled": (
            "Too many wrong codes from this address: wait {minutes} minutes and try again."
        ),
    }
)


class TooManyAttempts(CallbridgeError):
    status_code = 429


def normalize(code: str) -> str:
    """What the agent typed, as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def shown(code: str) -> str:
    """The code as the console shows it: two groups of five."""
    return f"{code[:5]}-{code[5:]}"


async def new_code(session: AsyncSession, user: User) -> tuple[str, datetime]:
    """A new pairing code for the agent (their earlier unused one stops working), and
    when it expires."""
    now = utcnow()
    await session.execute(
        delete(SoftphonePairingCode).where(
            or_(SoftphonePairingCode.user_id == user.id, SoftphonePairingCode.expires_at <= now)
        )
    )
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    expires_at = now + timedelta(minutes=CODE_MINUTES)
    session.add(
        SoftphonePairingCode(
            code_hash=sha256_hex(code), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    record_audit(session, f"user:{user.username}", "softphone.code", user.username)
    return shown(code), expires_at


async def trade_code(
    session: AsyncSession, code: str, hours: int
) -> tuple[str, User, datetime] | None:
    """The softphone token for a valid code (which is used up), its user and expiry;
    None for a code that is unknown, expired, used, or whose user was deactivated."""
    now = utcnow()
    found = await session.scalar(
        select(SoftphonePairingCode).where(
            SoftphonePairingCode.code_hash == sha256_hex(normalize(code))
        )
    )
    if found is None or found.expires_at <= now:
        return None
    # Single use: of two requests racing with the same code, one deletes it.
    used = await session.execute(
        delete(SoftphonePairingCode).where(SoftphonePairingCode.id == found.id)
    )
    if getattr(used, "rowcount", 0) != 1:
        return None
    user = await session.get(User, found.user_id)
    if user is None or not user.is_active:
        return None
    raw = await start_session(session, user, hours, kind=SOFTPHONE)
    record_audit(session, f"user:{user.username}", "softphone.sign_in", user.username)
    return raw, user, now + timedelta(hours=hours)


async def _wrong_codes(session: AsyncSession, client_ip: str, minutes: int) -> int:
    since = utcnow() - timedelta(minutes=minutes)
    count = await session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(
            LoginFailure.username == _FAILURE_NAME,
            LoginFailure.client_ip == client_ip,
            LoginFailure.at > since,
        )
    )
    return int(count or 0)


# ---- API -------------------------------------------------------------------------------

api = APIRouter(tags=["agent"])


class PairingCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class SoftphoneToken(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    display_name: str
    extension: str | None


class Revoked(BaseModel):
    revoked: int


@api.post("/api/v1/agent/softphone/token", status_code=201, operation_id="softphone_sign_in")
async def softphone_sign_in(
    request: Request, session: SessionDep, data: PairingCode
) -> SoftphoneToken:
    """Trades a pairing code from the agent console for a softphone token. Not
    authenticated by a cookie (the code is the credential), so there is no CSRF to
    forge. Wrong codes are counted per address; too many answer 429."""
    settings = get_runtime(request).settings
    ip = request.client.host if request.client else "unknown"
    minutes = settings.login_lockout_minutes
    if await _wrong_codes(session, ip, minutes) >= settings.login_max_failures * _FAILURE_FACTOR:
        raise TooManyAttempts(Message("softphone_code_throttled", minutes=minutes))
    traded = await trade_code(session, data.code, settings.session_hours)
    if traded is None:
        session.add(LoginFailure(username=_FAILURE_NAME, client_ip=ip))
        record_audit(session, f"anonymous@{ip}", "softphone.sign_in_failure")
        # Kept although the answer is an error: the count is what stops guessing.
        await session.commit()
        raise FieldError("code", Message("softphone_code_refused"))
    raw, user, expires_at = traded
    return SoftphoneToken(
        token=raw,
        expires_at=expires_at,
        username=user.username,
        display_name=user.display_name,
        extension=user.extension or user.agent_id,
    )


@api.delete("/api/v1/agent/softphone/token", status_code=204, operation_id="softphone_sign_out")
async def softphone_sign_out(request: Request, session: SessionDep) -> Response:
    """The softphone's sign-out button: its token stops working (bearer: the token)."""
    raw = softphone_bearer(request)
    if raw is None:
        raise Unauthorized("send the softphone's token: 'Authorization: Bearer <token>'")
    await end_session(session, raw, SOFTPHONE)
    return Response(status_code=204)


@api.delete("/api/v1/users/{user_id}/softphone-tokens", operation_id="revoke_softphone_tokens")
async def revoke_softphone_tokens(
    session: SessionDep, principal: AdminAccess, user_id: int
) -> Revoked:
    """An administrator signs out every softphone of the user (their UI sessions stay)."""
    target = await get_user_or_404(session, user_id)
    revoked = await end_sessions(session, target.id, SOFTPHONE)
    record_audit(session, principal.label, "softphone.revoke", target.username, revoked=revoked)
    return Revoked(revoked=revoked)


def softphone_bearer(request: Request) -> str | None:
    """The softphone's token from ``Authorization: Bearer``; None without the header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <softphone token>'")
    return value.strip()


# ---- the admin's user page ---------------------------------------------------------------

pages = APIRouter(include_in_schema=False)


@pages.post("/users/{user_id}/softphone-tokens/revoke", dependencies=[CsrfChecked])
async def revoke_softphones_page(session: SessionDep, user: AdminUser, user_id: int) -> Response:
    target = await get_user_or_404(session, user_id)
    revoked = await end_sessions(session, target.id, SOFTPHONE)
    record_audit(
        session, f"user:{user.username}", "softphone.revoke", target.username, revoked=revoked
    )
    return RedirectResponse(f"/users/{user_id}/edit?softphones_revoked={revoked}", 303)
