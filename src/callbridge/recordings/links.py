"""Playback links: ``{SVADDR}monitor_link/{ID}``, and in the ``signed`` mode the same link
carrying an expiry and an HMAC signature (pure, no I/O).

The signing key is derived from the process secret key and a *generation* number kept
in the database; rotating the generation revokes every link signed before. The link
names the generation it was signed with (``kid``), so a revoked link can be told apart
from a forged one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from urllib.parse import quote

from callbridge.kit.crypto import derive_key

MONITOR_PATH = "monitor_link/"
SIGNED_PARAMS = ("exp", "kid", "sig")


@dataclass(frozen=True)
class LinkKey:
    generation: int
    secret: bytes


class LinkStatus(Enum):
    ABSENT = "absent"  # no signature in the link
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"  # signed with an older key generation
    INVALID = "invalid"  # tampered with, or not signed by this server


def derive_link_key(secret_key: str, generation: int) -> LinkKey:
    return LinkKey(generation, derive_key(secret_key, f"monitor-link:{generation}"))


def monitor_link(svaddr: str, call_ref: str) -> str:
    """The unsigned playback link of a call (``url`` and ``admin`` modes)."""
    return f"{svaddr.rstrip('/')}/{MONITOR_PATH}{quote(call_ref, safe='')}"


def _signature(key: LinkKey, call_ref: str, expires: int) -> str:
    message = f"{call_ref}\n{expires}".encode()
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_query(call_ref: str, key: LinkKey, expires_at: datetime) -> dict[str, str]:
    expires = int(expires_at.timestamp())
    return {
        "exp": str(expires),
        "kid": str(key.generation),
        "sig": _signature(key, call_ref, expires),
    }


def sign_monitor_link(svaddr: str, call_ref: str, key: LinkKey, expires_at: datetime) -> str:
    """``{SVADDR}monitor_link/{ID}?exp=…&kid=…&sig=…``: playable by anyone holding it
    until ``expires_at`` or until the key is rotated."""
    query = signed_query(call_ref, key, expires_at)
    return f"{monitor_link(svaddr, call_ref)}?" + "&".join(
        f"{name}={query[name]}" for name in SIGNED_PARAMS
    )


@dataclass(frozen=True)
class MonitorLinkMaker:
    """Makes the playback link of a call as agents should get it; the value of the
    template function ``MONITOR_LINK({ID})``. Pure once built (``service.
    monitor_link_maker`` loads the mode, ``{SVADDR}`` and the current key)."""

    svaddr: str
    mode: str  # "url" | "admin" | "signed"
    key: LinkKey | None  # the current key, for "signed"
    lifetime: timedelta  # of signed links

    def expires_at(self, now: datetime) -> datetime | None:
        return now + self.lifetime if self.mode == "signed" else None

    def __call__(self, call_ref: str, now: datetime) -> str:
        if self.mode != "signed" or self.key is None:
            return monitor_link(self.svaddr, call_ref)
        return sign_monitor_link(self.svaddr, call_ref, self.key, now + self.lifetime)


def check_signed_link(
    call_ref: str, params: Mapping[str, str], key: LinkKey, now: datetime
) -> LinkStatus:
    if not any(name in params for name in SIGNED_PARAMS):
        return LinkStatus.ABSENT
    raw_expires, raw_kid, signature = (params.get(name, "") for name in SIGNED_PARAMS)
    if not raw_expires.isdigit() or not raw_kid.isdigit() or not signature:
        return LinkStatus.INVALID
    generation = int(raw_kid)
    if generation != key.generation:
        return LinkStatus.REVOKED if generation < key.generation else LinkStatus.INVALID
    if not hmac.compare_digest(_signature(key, call_ref, int(raw_expires)), signature):
        return LinkStatus.INVALID
    if int(raw_expires) <= now.timestamp():
        return LinkStatus.EXPIRED
    return LinkStatus.VALID
