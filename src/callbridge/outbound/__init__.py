"""The one HTTP path from callbridge to CRMs: call actions, IVRs, tests and later features
all send through it, so auth, retries, token refresh, limits and redaction live here once.

Public API (everything else in this package is private)::

    from callbridge.outbound import (
        Outbound, get_outbound, deadline_after,
        OutboundRequest, OutboundResult, OutboundError, Attempt, RequestView,
        NoAuth, BasicAuth, BearerAuth, OAuthAuth, NO_AUTH,
        RetryPolicy, DEFAULT_RETRY,
        OAuthCredentials, ApiUsage, AccountLimits, DEFAULT_LIMITS,
    )

    outbound = get_outbound(request)          # or get_outbound(runtime)
    base = await outbound.instance_url(account_id)      # {OAUTH_INSTANCE_URL} / {SFAPI}
    result = await outbound.send(OutboundRequest(
        method="GET",
        url=f"{base}/services/data/v62.0/query?q=...",
        headers=[("Accept", "application/json")],
        body=None,                            # str (sent as UTF-8) or bytes
        timeout=10,                           # seconds, per attempt
        auth=OAuthAuth(account_id),           # NoAuth() / BasicAuth(u, p) / BearerAuth(t)
        retry=RetryPolicy(retry_non_idempotent=rule_opted_in),
    ))
    result.status, result.text, result.error          # error: None or kind + message
    result.request.as_dict()                  # for logs and the UI: secrets masked
    result.response_record()                  # {status, headers, body, truncated}, masked
    [a.as_dict() for a in result.attempts]    # every exchange on the wire

IVRs use ``retry=RetryPolicy.NONE`` and ``deadline=deadline_after(ivr_timeout)``: the
whole ``send`` (slot wait, token refresh, the one repeat after a 401) then ends by that
time on the event loop's clock, and the result says ``timeout`` if it did not finish.

Behaviour, in short (docs/outbound.md has the details):

- ``send`` never raises for what a CRM, the network or stored credentials can do; the
  result's ``error.kind`` is ``timeout``, ``connect``, ``http_status`` (>= 400),
  ``auth`` (401, or an OAuth account that is not usable), ``limit`` (429 or
  ``REQUEST_LIMIT_EXCEEDED``) or ``request`` (the request itself is invalid: bad URL,
  credentials over plain ``http://`` to another machine).
- OAuth: the account's token is cached per process; a 401 makes one refresh for all
  concurrent requests of that account, then the request is repeated once. A refresh
  refused with ``invalid_grant`` marks the account ``needs_reauthorization``; from then
  on requests fail at once with ``auth`` and the provider is not asked again until an
  admin reconnects. An account's requests start as its limits allow (``limits``:
  long requests counted against a per-org limit, a pause after Salesforce's
  ``ConcurrentPerOrgLongTxn`` refusal, a generous safety cap on all requests in flight).
  ``Sforce-Limit-Info`` is recorded (``api_usage``).
- Retries follow ``RetryPolicy`` (DESIGN.md §6), with backoff, jitter and
  ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import HTTPConnection

from callbridge.outbound.accounts import (
    AccountStatus,
    AccountToken,
    ApiUsage,
    OAuthCredentials,
    TokenRefreshError,
    TokenSource,
)
from callbridge.outbound.circuits import CircuitBoard, CircuitStore, OpenCircuit, circuit_key
from callbridge.outbound.client import Outbound, deadline_after, is_loopback_host
from callbridge.outbound.limits import DEFAULT_LIMITS, AccountLimits
from callbridge.outbound.redaction import RequestView
from callbridge.outbound.types import (
    DEFAULT_RETRY,
    NO_AUTH,
    Attempt,
    Auth,
    BasicAuth,
    BearerAuth,
    ErrorKind,
    NoAuth,
    OAuthAuth,
    OutboundError,
    OutboundRequest,
    OutboundResult,
    RetryPolicy,
)
from callbridge.runtime import Runtime

EXTRAS_KEY = "outbound"


def get_outbound(source: Runtime | HTTPConnection) -> Outbound:
    """The process's ``Outbound`` (created in the app lifespan)."""
    runtime = source if isinstance(source, Runtime) else source.app.state.runtime
    outbound = runtime.extras.get(EXTRAS_KEY)
    if not isinstance(outbound, Outbound):
        raise RuntimeError("the outbound client is not running (is the app lifespan active?)")
    return outbound


__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY",
    "EXTRAS_KEY",
    "NO_AUTH",
    "AccountLimits",
    "AccountStatus",
    "AccountToken",
    "ApiUsage",
    "Attempt",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "CircuitBoard",
    "CircuitStore",
    "ErrorKind",
    "NoAuth",
    "OAuthAuth",
    "OAuthCredentials",
    "OpenCircuit",
    "Outbound",
    "OutboundError",
    "OutboundRequest",
    "OutboundResult",
    "RequestView",
    "RetryPolicy",
    "TokenRefreshError",
    "TokenSource",
    "circuit_key",
    "deadline_after",
    "get_outbound",
    "is_loopback_host",
    "outbound_lifespan",
]


@asynccontextmanager
async def outbound_lifespan(
    runtime: Runtime,
    token_source: TokenSource | None = None,
    circuit_store: CircuitStore | None = None,
) -> AsyncIterator[Outbound]:
    """Create the process's ``Outbound`` (settings from ``runtime``), publish it in
    ``runtime.extras``, and close its connections at shutdown. With a ``circuit_store``
    the circuits per CRM apply (``outbound.circuits``)."""
    outbound = Outbound(
        token_source=token_source,
        circuit_store=circuit_store,
        allow_insecure_http=runtime.settings.allow_insecure_http,
    )
    runtime.extras[EXTRAS_KEY] = outbound
    if outbound.circuits is not None:
        outbound.circuits.start()
    try:
        yield outbound
    finally:
        runtime.extras.pop(EXTRAS_KEY, None)
        await outbound.aclose()
