"""``Outbound``: the one HTTP client of callbridge towards CRMs (see the package docstring)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

import httpx2

import callbridge
from callbridge.kit.time import utcnow
from callbridge.messages import Message, as_message, define, joined
from callbridge.outbound.accounts import (
    AccountState,
    AccountToken,
    ApiUsage,
    OAuthCredentials,
    TokenRefreshError,
    TokenSource,
)
from callbridge.outbound.body import decode_body, provider_error
from callbridge.outbound.circuits import CircuitBoard, CircuitStore, OpenCircuit, circuit_key
from callbridge.outbound.limits import LONG_AFTER_SECONDS, AccountGate, is_long_txn_refusal
from callbridge.outbound.redaction import RequestView
from callbridge.outbound.retry import backoff_delay, is_idempotent, parse_retry_after
from callbridge.outbound.transport import AiohttpWire, WireAnswer, WireError, WireRequest
from callbridge.outbound.types import (
    Attempt,
    BasicAuth,
    BearerAuth,
    OAuthAuth,
    OutboundError,
    OutboundRequest,
    OutboundResult,
    RetryPolicy,
)

logger = logging.getLogger("callbridge.outbound")


class Wire(Protocol):
    """What carries one exchange (``AiohttpWire``; tests and benchmarks pass their own)."""

    async def exchange(self, request: WireRequest) -> WireAnswer: ...

    async def aclose(self) -> None: ...


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Refresh a token whose expiry is known this long before it runs out.
_EXPIRY_SKEW = 60.0
_USAGE_SAVE_INTERVAL = 60.0
_REFRESH_COOLDOWN_FIRST = 5.0
_REFRESH_COOLDOWN_MAX = 60.0


@lru_cache(maxsize=1024)
def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deadline_after(seconds: float) -> float:
    """An absolute deadline for ``OutboundRequest.deadline``, ``seconds`` from now."""
    return asyncio.get_running_loop().time() + seconds


# The first of two sends the wire made (transport.py): listed as an attempt of its own.
define(
    {
        "kept_alive_unanswered": (
            "network failure: the server closed the kept-alive connection without answering; "
            "sent again at once on a new connection"
        ),
        "refresh_failed.recently": (
            "refreshing the token failed moments ago ({detail}); the next attempt is made shortly"
        ),
        "refresh_failed.no_source": "no token source is configured",
        "refresh_failed": "refreshing the token failed: {detail}",
        "deadline_passed": "the deadline passed before the CRM answered",
        "request_invalid.method": "unsupported HTTP method '{method}'",
        "request_invalid.url": "invalid URL: {detail}",
        "request_invalid.not_absolute": (
            "the URL must be absolute and start with https:// or http://"
        ),
        "request_invalid.insecure": (
            "credentials are never sent over plain http:// except to this machine: use "
            "https://, or set CALLBRIDGE_ALLOW_INSECURE_HTTP=true for a trusted network"
        ),
        "request_invalid.timeout": "the timeout must be positive",
        "account_missing": "OAuth account {id} does not exist",
        "not_connected": (
            "OAuth account '{name}' is not connected: connect it on the OAuth accounts page"
        ),
        "request_invalid.unsendable": "the request cannot be sent: {detail}",
        "timeout": "no complete answer within {seconds} s",
        "timeout.connect": "could not connect within the time limit ({detail})",
        "timeout.detail": "no complete answer within {seconds} s ({detail})",
        "connect_failed": "could not connect: {detail}",
        "network_failure": "network failure: {detail}",
        "needs_reauthorization": (
            "OAuth account '{name}' needs to be reconnected: the provider refused its "
            "refresh{detail}. An administrator must click Connect on the OAuth accounts page"
        ),
        "needs_reauthorization.detail": " ({detail})",
    }
)

_UNANSWERED = OutboundError("connect", Message("kept_alive_unanswered"))


class _Exchange:
    """The outcome of one attempt on the wire."""

    __slots__ = (
        "body",
        "error",
        "headers",
        "refresh_transient",
        "repeated_after_ms",
        "response_status",
        "sent",
        "truncated",
    )

    def __init__(self) -> None:
        self.response_status: int | None = None
        self.headers: tuple[tuple[str, str], ...] = ()
        self.body = b""
        self.truncated = False
        self.error: OutboundError | None = None
        # False when the failure happened before the request could reach the server.
        self.sent = True
        # The wire sent the request twice (a kept-alive connection closed unanswered):
        # how long the first send took.
        self.repeated_after_ms: float | None = None
        # The token could not be refreshed for a passing reason.
        self.refresh_transient = False

    @property
    def unprocessed(self) -> bool:
        """The CRM did not process the request (DESIGN.md §6): it cannot have arrived,
        or the CRM said it is unavailable or over its limits, or no token could be had
        for a passing reason. Repeating it later is safe whatever the method."""
        error = self.error
        if error is None:
            return False
        if error.kind in ("connect", "timeout", "unavailable") and not self.sent:
            return True
        return error.kind == "limit" or self.response_status == 503 or self.refresh_transient


class Outbound:
    """One per process, created in the app lifespan; see ``callbridge.outbound``."""

    def __init__(
        self,
        *,
        token_source: TokenSource | None = None,
        circuit_store: CircuitStore | None = None,
        allow_insecure_http: bool = False,
        connect_timeout: float = 5.0,
        max_connections: int = 1000,
        # Below common servers' idle timeouts (uvicorn 5 s): a connection the server is
        # closing at the moment it is reused fails the request (and POSTs are not retried).
        keepalive_expiry: float = 4.0,
        account_cache_seconds: float = 30.0,
        long_request_after: float = LONG_AFTER_SECONDS,
        wire: Wire | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._token_source = token_source
        self._allow_insecure_http = allow_insecure_http
        self._connect_timeout = connect_timeout
        self._account_cache_seconds = account_cache_seconds
        self._long_request_after = long_request_after
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._now = now
        self._accounts: dict[int, AccountState] = {}
        self.circuits = CircuitBoard(circuit_store) if circuit_store is not None else None
        self._background: set[asyncio.Task[None]] = set()
        self._wire: Wire = wire or AiohttpWire(
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            user_agent=f"callbridge/{callbridge.__version__}",
        )

    # ---- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.circuits is not None:
            await self.circuits.stop()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._wire.aclose()

    # ---- accounts -----------------------------------------------------------------

    def forget_account(self, account_id: int) -> None:
        """Drop what this process remembers of an account's token and status (after a
        reconnect, an edit or a delete); the next request reads it again."""
        state = self._accounts.get(account_id)
        if state is not None:
            state.token = None
            state.loaded_at = float("-inf")
            state.cooldown_until = float("-inf")
            state.cooldown = 0.0

    async def instance_url(self, account_id: int) -> str | None:
        """``{OAUTH_INSTANCE_URL}`` of an account (None when it was never connected)."""
        token = await self._current_token(self._state(account_id))
        return token.instance_url if token is not None else None

    async def oauth_credentials(self, account_id: int) -> OAuthCredentials | None:
        """The account's instance URL and current access token, None when unusable."""
        token = await self._current_token(self._state(account_id))
        if token is None or not token.usable or token.access_token is None:
            return None
        return OAuthCredentials(token.instance_url, token.access_token, token.token_type)

    def api_usage(self, account_id: int) -> ApiUsage | None:
        """The API usage the provider reported last in this process."""
        state = self._accounts.get(account_id)
        return state.usage if state is not None else None

    def _state(self, account_id: int) -> AccountState:
        state = self._accounts.get(account_id)
        if state is None:
            gate = AccountGate(
                long_after=self._long_request_after, clock=self._clock, sleep=self._sleep
            )
            state = AccountState(account_id, gate)
            self._accounts[account_id] = state
        return state

    async def _current_token(self, state: AccountState) -> AccountToken | None:
        if self._clock() - state.loaded_at < self._account_cache_seconds:
            return state.token
        if self._token_source is None:
            return None
        async with state.lock:
            if self._clock() - state.loaded_at < self._account_cache_seconds:
                return state.token
            token = await self._token_source.load(state.account_id)
            if (
                token is not None
                and state.token is not None
                and token.version != state.token.version
            ):
                state.cooldown_until = float("-inf")
                state.cooldown = 0.0
            state.token = token
            state.loaded_at = self._clock()
            return token

    async def _refresh(self, state: AccountState, stale_version: int) -> AccountToken | Message:
        """One refresh per account at a time; requests that saw the same stale token
        share its outcome. Returns the new token, or why there is none."""
        async with state.lock:
            current = state.token
            if current is not None and current.version != stale_version and current.usable:
                return current
            if current is not None and current.status == "needs_reauthorization":
                return _reauthorize_message(current)
            state.last_refresh_transient = False
            if self._clock() < state.cooldown_until:
                state.last_refresh_transient = True
                return Message("refresh_failed.recently", detail=state.last_refresh_error or "")
            if self._token_source is None:
                return Message("refresh_failed.no_source")
            try:
                token = await self._token_source.refresh(state.account_id, stale_version)
            except TokenRefreshError as exc:
                state.last_refresh_error = exc.message
                if exc.reauthorize:
                    name = current.name if current is not None else str(state.account_id)
                    state.token = AccountToken(
                        account_id=state.account_id,
                        name=name,
                        status="needs_reauthorization",
                        status_detail=exc.message,
                        instance_url=current.instance_url if current is not None else None,
                        version=stale_version,
                    )
                    state.loaded_at = self._clock()
                    return _reauthorize_message(state.token)
                state.last_refresh_transient = exc.code not in _NOT_TRANSIENT
                state.cooldown = min(
                    _REFRESH_COOLDOWN_MAX, max(_REFRESH_COOLDOWN_FIRST, state.cooldown * 2)
                )
                state.cooldown_until = self._clock() + state.cooldown
                return Message("refresh_failed", detail=exc.message)
            state.token = token
            state.loaded_at = self._clock()
            state.cooldown = 0.0
            state.cooldown_until = float("-inf")
            return token

    def _record_usage(self, state: AccountState, headers: tuple[tuple[str, str], ...]) -> None:
        value = None
        for name, header_value in headers:
            if name.lower() == "sforce-limit-info":
                value = header_value
                break
        usage = ApiUsage.parse(value, self._now()) if value else None
        if usage is None:
            return
        state.usage = usage
        if self._token_source is None:
            return
        if self._clock() - state.usage_saved_at < _USAGE_SAVE_INTERVAL:
            return
        state.usage_saved_at = self._clock()
        task = asyncio.create_task(self._save_usage(state.account_id, usage))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save_usage(self, account_id: int, usage: ApiUsage) -> None:
        assert self._token_source is not None
        try:
            await self._token_source.save_usage(account_id, usage)
        except Exception:  # usage display is best effort
            logger.warning(
                "could not store the API usage of OAuth account %s", account_id, exc_info=True
            )

    # ---- sending ------------------------------------------------------------------

    async def send(self, request: OutboundRequest) -> OutboundResult:
        """Send ``request`` with its auth and retry policy. Never raises for a failure of
        the CRM, the network or the credentials: the result says what happened."""
        started = time.perf_counter()
        method = request.method.strip().upper()
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        body = body or None  # an empty body template sends no body at all
        secrets = _auth_secrets(request)
        view: RequestView | None = None

        def build_view() -> RequestView:
            nonlocal view
            if view is None:
                view = RequestView.build(
                    method,
                    request.url,
                    list(request.headers) + _auth_display(request),
                    request.body,
                    secrets,
                )
            return view

        problem = self._check(method, request)
        if problem is not None:
            return self._result(build_view(), started, _Exchange(), problem, [])
        circuits = self.circuits
        key = circuit_key(request) if circuits is not None else None
        probe = False
        if circuits is not None:
            verdict = await circuits.gate(key, request)
            if isinstance(verdict, OpenCircuit):
                blocked = _Exchange()
                blocked.sent = False
                blocked.error = OutboundError(
                    "unavailable",
                    "not sent: the CRM has not been processing requests since "
                    f"{verdict.opened_at.isoformat(timespec='seconds')} (last error: "
                    f"{verdict.last_error}); one probe at a time tests whether it is back",
                    "circuit_open",
                )
                return self._result(build_view(), started, blocked, blocked.error, [])
            probe = verdict == "probe"
            if probe:  # one probe request: its outcome is the answer, not a retry's
                request = replace(request, retry=RetryPolicy.NONE)
        attempts: list[Attempt] = []
        last = _Exchange()
        try:
            if request.deadline is None:
                last = await self._attempts(request, method, body, attempts, secrets)
            else:
                async with asyncio.timeout_at(request.deadline):
                    last = await self._attempts(request, method, body, attempts, secrets)
        except TimeoutError:
            last = _Exchange()
            last.error = OutboundError("timeout", Message("deadline_passed"))
            attempts.append(
                Attempt(
                    len(attempts) + 1,
                    self._now(),
                    None,
                    last.error,
                    (time.perf_counter() - started) * 1000,
                )
            )
        if circuits is not None and attempts:
            await circuits.record(
                key,
                request,
                probe=probe,
                answered=last.response_status is not None,
                unprocessed=last.unprocessed,
                error=last.error.message if last.error is not None else "",
            )
        return self._result(build_view(), started, last, last.error, attempts)

    def _check(self, method: str, request: OutboundRequest) -> OutboundError | None:
        if method not in _METHODS:
            return OutboundError(
                "request", Message("request_invalid.method", method=request.method)
            )
        try:
            parts = urlsplit(request.url)
        except ValueError as exc:
            return OutboundError("request", Message("request_invalid.url", detail=str(exc)))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return OutboundError("request", Message("request_invalid.not_absolute"))
        if (
            parts.scheme == "http"
            and not _is_no_auth(request)
            and not self._allow_insecure_http
            and not is_loopback_host(parts.hostname)
        ):
            return OutboundError("request", Message("request_invalid.insecure"))
        if request.timeout <= 0:
            return OutboundError("request", Message("request_invalid.timeout"))
        return None

    async def _attempts(
        self,
        request: OutboundRequest,
        method: str,
        body: bytes | None,
        attempts: list[Attempt],
        secrets: list[str],
    ) -> _Exchange:
        policy = request.retry
        idempotent = policy.retry_non_idempotent or is_idempotent(method, request.url)
        state = (
            self._state(request.auth.account_id) if isinstance(request.auth, OAuthAuth) else None
        )
        refreshed = False
        waited = 0.0
        after_refresh = False
        tries = 0
        while True:
            token: AccountToken | None = None
            if state is not None:
                token_or_error = await self._usable_token(state)
                if isinstance(token_or_error, OutboundError):
                    exchange = _Exchange()
                    exchange.error = token_or_error
                    exchange.sent = False
                    exchange.refresh_transient = token_or_error.code == "refresh_failed"
                    attempts.append(
                        Attempt(
                            len(attempts) + 1,
                            self._now(),
                            None,
                            token_or_error,
                            0.0,
                            waited,
                            after_refresh,
                        )
                    )
                    return exchange
                token = token_or_error
                if token.access_token and token.access_token not in secrets:
                    secrets.append(token.access_token)
            tries += 1
            at = self._now()
            t0 = time.perf_counter()
            if state is not None and token is not None:
                slot = await state.gate.acquire(token.limits)
                try:
                    exchange = await self._exchange(request, method, body, token)
                finally:
                    slot.release()
                error = exchange.error
                state.gate.answered(
                    error is not None and is_long_txn_refusal(error.code, error.message)
                )
                self._record_usage(state, exchange.headers)
            else:
                exchange = await self._exchange(request, method, body, token)
            elapsed = (time.perf_counter() - t0) * 1000
            first = exchange.repeated_after_ms
            if first is not None:
                tries += 1
                attempts.append(
                    Attempt(len(attempts) + 1, at, None, _UNANSWERED, first, waited, after_refresh)
                )
                at += timedelta(milliseconds=first)
                elapsed, waited, after_refresh = elapsed - first, 0.0, False
            attempts.append(
                Attempt(
                    len(attempts) + 1,
                    at,
                    exchange.response_status,
                    exchange.error,
                    elapsed,
                    waited,
                    after_refresh,
                )
            )
            waited = 0.0
            after_refresh = False
            if state is not None and token is not None and exchange.response_status == 401:
                if refreshed:
                    return exchange
                refreshed = True
                outcome = await self._refresh(state, token.version)
                if isinstance(outcome, Message):
                    refused = (
                        exchange.error.said if exchange.error else Message("crm_error", status=401)
                    )
                    exchange.error = OutboundError(
                        "auth",
                        joined(as_message(refused), outcome),
                        exchange.error.code if exchange.error else None,
                    )
                    exchange.refresh_transient = state.last_refresh_transient
                    return exchange
                after_refresh = True
                continue
            delay = self._retry_delay(policy, idempotent, exchange, tries)
            if delay is None:
                if (
                    not idempotent
                    and exchange.sent
                    and exchange.error is not None
                    and exchange.error.kind in ("timeout", "connect")
                ):
                    exchange.error = _may_have_been_received(exchange.error)
                return exchange
            if request.deadline is not None:
                remaining = request.deadline - asyncio.get_running_loop().time()
                if delay >= remaining:
                    return exchange
            await self._sleep(delay)
            waited = delay * 1000

    async def _usable_token(self, state: AccountState) -> AccountToken | OutboundError:
        token = await self._current_token(state)
        if token is None:
            return OutboundError(
                "auth", Message("account_missing", id=state.account_id), "account_missing"
            )
        if token.status == "needs_reauthorization":
            return OutboundError("auth", _reauthorize_message(token), "needs_reauthorization")
        expired = (
            token.expires_at is not None
            and (token.expires_at - self._now()).total_seconds() < _EXPIRY_SKEW
        )
        if token.access_token is None or expired:
            if token.access_token is None and token.status == "not_connected":
                return OutboundError(
                    "auth", Message("not_connected", name=token.name), "not_connected"
                )
            outcome = await self._refresh(state, token.version)
            if isinstance(outcome, Message):
                code = "refresh_failed" if state.last_refresh_transient else "refresh_refused"
                return OutboundError("auth", outcome, code)
            return outcome
        return token

    def _retry_delay(
        self, policy: RetryPolicy, idempotent: bool, exchange: _Exchange, tries: int
    ) -> float | None:
        if tries >= policy.max_attempts:
            return None
        error = exchange.error
        if error is None:
            return None
        retryable = False
        retry_after: float | None = None
        if error.kind in ("timeout", "connect"):
            retryable = idempotent or not exchange.sent
        elif error.kind == "limit" or (
            exchange.response_status is not None and exchange.response_status >= 500
        ):
            # Refused for too many long requests: not run at all, so safe to send again.
            retryable = idempotent or is_long_txn_refusal(error.code, error.message)
            retry_after = parse_retry_after(_header(exchange.headers, "retry-after"), self._now())
        if not retryable:
            return None
        delay = backoff_delay(policy, tries, self._rng)
        if retry_after is not None:
            if retry_after > policy.max_retry_after:
                return None
            delay = max(delay, retry_after)
        return delay

    async def _exchange(
        self,
        request: OutboundRequest,
        method: str,
        body: bytes | None,
        token: AccountToken | None,
    ) -> _Exchange:
        exchange = _Exchange()
        try:
            url = httpx2.URL(request.url)
            headers = _wire_headers(request, token)
        except (httpx2.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
            exchange.sent = False
            exchange.error = OutboundError(
                "request", Message("request_invalid.unsendable", detail=str(exc))
            )
            return exchange
        try:
            async with asyncio.timeout(request.timeout):
                answer = await self._wire.exchange(
                    WireRequest(
                        method,
                        url,
                        headers,
                        body,
                        connect_timeout=min(request.timeout, self._connect_timeout),
                        read_timeout=request.timeout,
                        max_bytes=request.max_response_bytes,
                    )
                )
        except TimeoutError:
            exchange.error = OutboundError(
                "timeout", Message("timeout", seconds=f"{request.timeout:g}")
            )
        except WireError as exc:
            exchange.sent = exc.sent
            exchange.repeated_after_ms = exc.repeated_after_ms
            if exc.kind == "timeout" and not exc.sent:
                exchange.error = OutboundError(
                    "timeout", Message("timeout.connect", detail=exc.message)
                )
            elif exc.kind == "timeout":
                exchange.error = OutboundError(
                    "timeout",
                    Message("timeout.detail", seconds=f"{request.timeout:g}", detail=exc.message),
                )
            elif exc.kind == "connect":
                exchange.error = OutboundError(
                    "connect", Message("connect_failed", detail=exc.message)
                )
            else:
                exchange.error = OutboundError(
                    "connect", Message("network_failure", detail=exc.message)
                )
        else:
            exchange.response_status = answer.status
            exchange.headers = answer.headers
            exchange.body = answer.body
            exchange.truncated = answer.truncated
            exchange.repeated_after_ms = answer.repeated_after_ms
            exchange.error = provider_error(answer.status, answer.body)
        return exchange

    def _result(
        self,
        view: RequestView,
        started: float,
        exchange: _Exchange,
        error: OutboundError | None,
        attempts: list[Attempt],
    ) -> OutboundResult:
        text, binary = ("", False)
        if exchange.body:
            text, binary = decode_body(exchange.body, _header(exchange.headers, "content-type"))
        return OutboundResult(
            request=view,
            status=exchange.response_status,
            headers=exchange.headers,
            text=text,
            content=exchange.body,
            binary=binary,
            truncated=exchange.truncated,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            error=error,
            attempts=tuple(attempts),
            unprocessed=exchange.unprocessed,
        )


# Refresh failures that no waiting mends: an admin must act.
_NOT_TRANSIENT = frozenset({"not_connected", "account_missing", "needs_reauthorization"})


def _may_have_been_received(error: OutboundError) -> OutboundError:
    return OutboundError(
        error.kind,
        f"{error.message}; the request may have been received by the CRM, so it was not "
        "repeated (a POST is repeated only when its rule allows it)",
        error.code,
    )


def _is_no_auth(request: OutboundRequest) -> bool:
    return not isinstance(request.auth, BasicAuth | BearerAuth | OAuthAuth)


def _reauthorize_message(token: AccountToken) -> Message:
    detail: str | Message = (
        Message("needs_reauthorization.detail", detail=token.status_detail)
        if token.status_detail
        else ""
    )
    return Message("needs_reauthorization", name=token.name, detail=detail)


def _auth_secrets(request: OutboundRequest) -> list[str]:
    auth = request.auth
    if isinstance(auth, BasicAuth):
        return [auth.password, _basic_value(auth)]
    if isinstance(auth, BearerAuth):
        return [auth.token]
    return []


def _auth_display(request: OutboundRequest) -> list[tuple[str, str]]:
    auth = request.auth
    if isinstance(auth, BasicAuth):
        return [("Authorization", "Basic [redacted]")]
    if isinstance(auth, BearerAuth | OAuthAuth):
        return [("Authorization", "Bearer [redacted]")]
    return []


def _basic_value(auth: BasicAuth) -> str:
    raw = f"{auth.username}:{auth.password}".encode()
    return base64.b64encode(raw).decode("ascii")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _wire_headers(request: OutboundRequest, token: AccountToken | None) -> list[tuple[str, str]]:
    auth = request.auth
    authorization: str | None = None
    if isinstance(auth, BasicAuth):
        authorization = f"Basic {_basic_value(auth)}"
    elif isinstance(auth, BearerAuth):
        authorization = f"Bearer {auth.token}"
    elif token is not None and token.access_token is not None:
        authorization = f"{token.token_type or 'Bearer'} {token.access_token}"
    headers: list[tuple[str, str]] = []
    for name, value in request.headers:
        if authorization is not None and name.lower() == "authorization":
            continue
        name = name.strip()
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        clean = value.replace("\r", " ").replace("\n", " ").replace("\0", " ")
        headers.append((name, clean))  # sent as UTF-8
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return headers


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
