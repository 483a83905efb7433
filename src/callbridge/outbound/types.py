"""The values that go in and out of the outbound path: requests, auth, retry policy, results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from callbridge.messages import Message, english
from callbridge.outbound.redaction import RequestView, headers_dict

ErrorKind = Literal["timeout", "connect", "http_status", "auth", "limit", "request", "unavailable"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024


# ---- auth --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoAuth:
    """Send no credentials."""


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic with a username and a (decrypted) password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """A fixed bearer token (``Authorization: Bearer <token>``)."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuthAuth:
    """The current access token of a stored OAuth account, refreshed when it expires."""

    account_id: int


Auth = NoAuth | BasicAuth | BearerAuth | OAuthAuth
NO_AUTH = NoAuth()


# ---- retries -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed attempt is repeated (DESIGN.md §6).

    Idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, and PATCH to one Salesforce
    record) are repeated after a timeout, a network failure, a 5xx, a 429 or
    ``REQUEST_LIMIT_EXCEEDED``. Any other request (POST) is repeated only when it
    cannot have reached the server (connection refused, DNS failure, connect timeout)
    unless ``retry_non_idempotent`` opts in. Delays grow exponentially from
    ``base_delay`` up to ``max_delay``, with jitter; a ``Retry-After`` answer is waited
    for when it is at most ``max_retry_after`` seconds, otherwise the result is returned.
    The 401-refresh-and-repeat of OAuth requests is not a retry: it happens once
    whatever the policy says.
    """

    max_attempts: int = 3
    retry_non_idempotent: bool = False
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    NONE: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")


RetryPolicy.NONE = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()


# ---- request -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One request to a CRM, fully expanded (templates are applied by the caller).

    ``timeout`` bounds each attempt as a whole (connect, send, wait, read). ``deadline``
    bounds the whole ``send`` — attempts, backoff, token refresh, waiting for a slot —
    as an absolute time on the event loop's clock (``deadline_after(seconds)``); an IVR
    passes the deadline of its whole invocation with ``retry=RetryPolicy.NONE``.
    """

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    body: str | bytes | None = None
    timeout: float = DEFAULT_TIMEOUT
    auth: Auth = NO_AUTH
    retry: RetryPolicy = DEFAULT_RETRY
    deadline: float | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # The call event this request is for: while the CRM's circuit is open, only the
    # event chosen as its probe may send (see ``outbound.circuits``).
    probe_for: int | None = None


# ---- result ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundError:
    """Why a request did not succeed. ``code`` is the CRM's own error code when it gave
    one (``INVALID_SESSION_ID``, ``REQUEST_LIMIT_EXCEEDED``, ``invalid_grant``, ...)."""

    kind: ErrorKind
    said: Message | str
    code: str | None = None

    @property
    def message(self) -> str:
        """The English text (logs, the API)."""
        return english(self.said)

    def as_dict(self) -> dict[str, Any]:
        """``message`` in English; with a catalogue message (``callbridge.messages``) also
        ``msg``, its id and parameters, so a page can show it in its own language (``code``
        is left to the CRM's own error code, which an execution log adds)."""
        data: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if isinstance(self.said, Message):
            data["msg"] = self.said.to_json()
        return data


@dataclass(frozen=True, slots=True)
class Attempt:
    """One exchange on the wire, for execution logs."""

    number: int
    at: datetime
    status: int | None
    error: OutboundError | None
    elapsed_ms: float
    # How long the path waited before this attempt (backoff, Retry-After).
    waited_ms: float = 0.0
    # This attempt repeats the previous one after an OAuth token refresh.
    after_refresh: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "status": self.status,
            "error": self.error.as_dict() if self.error else None,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "waited_ms": round(self.waited_ms, 3),
            "after_refresh": self.after_refresh,
        }


@dataclass(frozen=True, slots=True)
class OutboundResult:
    """What happened. ``send`` returns one for every expected failure instead of raising.

    ``status``/``headers``/``text`` describe the last response (``None``/empty when no
    response arrived). ``text`` is the body decoded by its charset (UTF-8 by default,
    Shift_JIS/CP932 when that is what it is), empty when ``binary``; ``content`` holds
    the raw bytes. ``error`` is ``None`` for 1xx–3xx answers.
    """

    request: RequestView
    status: int | None
    headers: tuple[tuple[str, str], ...]
    text: str
    content: bytes
    binary: bool
    truncated: bool
    elapsed_ms: float
    error: OutboundError | None
    attempts: tuple[Attempt, ...]
    # The CRM did not process the request (it was not sent, could not connect, or was
    # answered 503, 429 or REQUEST_LIMIT_EXCEEDED, or the token could not be refreshed
    # for a passing reason): repeating it later is safe for every method.
    unprocessed: bool = False

    def __repr__(self) -> str:
        # Bodies and headers stay out of reprs: they may carry what a CRM echoed back.
        return (
            f"OutboundResult(method={self.request.method!r}, status={self.status!r}, "
            f"error={self.error!r}, attempts={len(self.attempts)}, "
            f"elapsed_ms={self.elapsed_ms:.1f})"
        )

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return json.loads(self.text)

    def response_record(self, max_body: int = 64 * 1024) -> dict[str, Any] | None:
        """The response as execution logs store it (DESIGN.md §3.8), secrets masked."""
        if self.status is None:
            return None
        body = self.request.scrub(self.text) if not self.binary else ""
        if self.binary:
            body = f"<{len(self.content)} bytes of binary data>"
        truncated = self.truncated or len(body) > max_body
        return {
            "status": self.status,
            "headers": headers_dict(self.request.scrub_headers(self.headers)),
            "body": body[:max_body],
            "truncated": truncated,
        }
