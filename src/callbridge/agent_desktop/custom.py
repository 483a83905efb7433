"""The ``custom`` lookup of a screen pop (DESIGN §12.2, seed 002 カスタム連携): templated
accesses for CRMs other than Salesforce, each a request of the shared request definition
(``callbridge.requests``) compiled once with every finding tied to its field and position.

- ``auth`` (server only): its response format defines variables (``{SESSION}``…) that the
  later accesses use; the answer is reused for ``session_minutes`` (セッション維持時間).
- ``search`` (server only): its response format fills ``{COMPANY}``, ``{NAME}``,
  ``{EXT_ID}``, shown on the card.
- ``incoming``, ``answer`` (after the profile's ``answer_delay_seconds``), ``disconnect``
  (``answered_only``), ``click`` (the agent clicks the card).

``browser_get``/``browser_post`` accesses are expanded by callbridge and opened by the
agent's console (the pop's ``url``, or a ``form`` it submits); ``server_get``/
``server_post`` are sent through the one outbound path and recorded as executions on the
call's timeline (source ``screen_pop``). OS commands are not offered.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from callbridge.agent_desktop.schemas import BrowserForm
from callbridge.messages import Message, define, stored
from callbridge.outbound import (
    NO_AUTH,
    Auth,
    OAuthAuth,
    OutboundResult,
    RetryPolicy,
    get_outbound,
)
from callbridge.patterns import ExtractionError
from callbridge.requests import (
    CompiledRequest,
    Extractor,
    Finding,
    RequestCompiler,
    RequestInvalid,
    Scope,
)
from callbridge.requests.execute import (
    Expanded,
    Expansion,
    error_record,
    expand_request,
    outbound_request,
)
from callbridge.runtime import Runtime
from callbridge.templating import BUILTIN_NAMES, TemplateExpansionError

ACCESS_NAMES = ("auth", "search", "incoming", "answer", "disconnect", "click")
READING_ACCESSES = ("auth", "search")
SEARCH_NAMES = ("COMPANY", "NAME", "EXT_ID")
# Findings are named as the API names the lookup's fields (pydantic puts the kind first).
PREFIX = "lookup.custom."
SCOPE = Scope(kind="screen_pop")
SEARCH_REF_RE = re.compile(r"[{<](COMPANY|NAME|EXT_ID)[}>]")
PATTERN_TIMEOUT = 0.5
_SETTINGS_TTL = 5.0
_CACHE_SIZE = 500
SECRET_MASK = "********"

define(
    {
        # A custom lookup's access failed (the card's ``lookup_error``; see lookup.py).
        "pop_lookup_access.auth": "auth: {reason}",
        "pop_lookup_access.search": "search: {reason}",
        "pop_lookup_access.incoming": "incoming: {reason}",
        "pop_lookup_access.answer": "answer: {reason}",
        "pop_lookup_access.disconnect": "disconnect: {reason}",
        "pop_lookup_access.click": "click: {reason}",
        "choose_account.screen_pop": "Choose the OAuth account of this lookup.",
        "instance_url_without_oauth.screen_pop": (
            "{variable} is the instance URL of the lookup's OAuth account: choose the OAuth "
            "authentication type and an account."
        ),
        "authorization_replaced.screen_pop": (
            "This Authorization header is replaced by the lookup's authentication type."
        ),
        "unknown_response_variable.screen_pop": (
            "{variable} is extracted by no call-action rule or IVR: it expands to an empty "
            "string unless the call has it."
        ),
        "access_reads_in_browser": (
            "callbridge reads the {access} access's answer (its response format): use "
            "server_get or server_post."
        ),
        "browser_headers": (
            "A page opened in the agent's browser carries no headers: headers are for "
            "server_get and server_post."
        ),
        "browser_get_body": (
            "browser_get opens a URL and sends no body: use browser_post (form fields) or "
            "server_post."
        ),
        "search_format_names": (
            "The search access's response format fills {COMPANY}, {NAME} and {EXT_ID}: name "
            "its groups so, for example (?P<NAME>…)."
        ),
        "search_format_other_name": (
            "{variable} is none of {COMPANY}, {NAME}, {EXT_ID}: the search's response format "
            "fills only those."
        ),
        "auth_format_name": (
            "{variable} is a built-in variable or a search value: give the auth answer's "
            "value another name."
        ),
        "search_value_missing": (
            "{variable} is filled by the search access's response format, and no search "
            "access defines it."
        ),
        "search_value_too_early": (
            "{variable} comes from the search access's answer, which is not known yet when "
            "the {access} access runs."
        ),
    }
)


@dataclass(frozen=True)
class CompiledAccess:
    name: str
    method: str  # browser_get | browser_post | server_get | server_post
    request: CompiledRequest
    reader: Extractor | None = None
    names: tuple[str, ...] = ()
    session_minutes: int = 30
    answered_only: bool = False

    @property
    def in_browser(self) -> bool:
        return self.method.startswith("browser_")


@dataclass(frozen=True)
class CompiledCustom:
    accesses: dict[str, CompiledAccess]
    auth: Auth
    account_id: int | None
    timeout: float
    warnings: tuple[Finding, ...] = ()

    def access(self, name: str) -> CompiledAccess | None:
        return self.accesses.get(name)


def _search_refs(text: str) -> list[tuple[str, int]]:
    return [(m.group(1), m.start()) for m in SEARCH_REF_RE.finditer(text)]


def compile_custom(
    lookup: Mapping[str, Any],
    *,
    trigger: str,
    secrets: Mapping[str, str | None] | None = None,
    responses: Collection[str] | None = None,
) -> CompiledCustom:
    """Compile a custom lookup given as the API's values (``accesses`` a dict of dicts);
    raises :class:`RequestInvalid` with every error. ``responses``: the ``RESPONSE_`` names
    other features put on a call (None skips those warnings, at run time)."""
    scope = replace(SCOPE, responses=frozenset(responses) if responses is not None else None)
    compiler = RequestCompiler(scope)
    auth_type = str(lookup.get("auth_type") or "none")
    auth = compiler.auth(
        PREFIX,
        auth_type,
        lookup.get("oauth_account_id"),
        str(lookup.get("basic_username") or ""),
        secrets,
    )
    accesses: Mapping[str, Any] = lookup.get("accesses") or {}
    auth_names: tuple[str, ...] = ()
    search_names: tuple[str, ...] = ()
    compiled: dict[str, CompiledAccess] = {}
    for name in ACCESS_NAMES:
        access = accesses.get(name)
        if not access:
            continue
        where = f"{PREFIX}accesses.{name}."
        method = str(access.get("method") or "")
        browser = method.startswith("browser_")
        headers = str(access.get("headers") or "")
        body = str(access.get("body") or "")
        if browser and name in READING_ACCESSES:
            compiler.error(f"{where}method", Message("access_reads_in_browser", access=name), None)
        if browser and headers.strip():
            compiler.error(f"{where}headers", Message("browser_headers"), None)
        if method == "browser_get" and body.strip():
            compiler.error(f"{where}body", Message("browser_get_body"), None)
        if browser:
            # The form fields of a browser_post are form-encoded: the body compiles so.
            headers = (
                "Content-Type: application/x-www-form-urlencoded"
                if method == "browser_post"
                else ""
            )
        # Which values exist when this access runs: the auth answer's after auth, the
        # search's after the search (an incoming access before an answer-triggered search
        # has none yet).
        early = name in READING_ACCESSES or (name == "incoming" and trigger == "answer")
        for field_name in ("url", "headers", "body"):
            text = str(access.get(field_name) or "")
            for ref, position in _search_refs(text):
                if early:
                    message = Message("search_value_too_early", variable=f"{{{ref}}}", access=name)
                elif ref not in search_names:
                    message = Message("search_value_missing", variable=f"{{{ref}}}")
                else:
                    continue
                compiler.error(f"{where}{field_name}", message, position)
        names = set(SEARCH_NAMES) | ({*auth_names} if name != "auth" else set())
        access_scope = compiler.scope.widened(names=names)
        request = compiler.request(
            {"url": access.get("url"), "method": method.split("_")[-1], "headers": headers,
             "body": body},
            name=name,
            prefix=where,
            auth=NO_AUTH if browser else auth,
            auth_type=auth_type,
            scope=access_scope,
        )  # fmt: skip
        reader = None
        produced: tuple[str, ...] = ()
        if name in READING_ACCESSES:
            reader = compiler.extractor(
                f"{where}response_format", str(access.get("response_format") or "")
            )
            produced = tuple(reader.group_names) if reader is not None else ()
            where_format = f"{where}response_format"
            if name == "search" and reader is not None:
                if not set(produced) & set(SEARCH_NAMES):
                    compiler.error(where_format, Message("search_format_names"), None)
                for other in produced:
                    if other not in SEARCH_NAMES:
                        compiler.error(
                            where_format,
                            Message("search_format_other_name", variable=f"{{{other}}}"),
                            None,
                        )
                search_names = produced
            if name == "auth":
                for other in produced:
                    if other in BUILTIN_NAMES or other in SEARCH_NAMES:
                        compiler.error(
                            where_format,
                            Message("auth_format_name", variable=f"{{{other}}}"),
                            None,
                        )
                auth_names = produced
        if request is not None:
            compiled[name] = CompiledAccess(
                name,
                method,
                request,
                reader,
                produced,
                int(access.get("session_minutes") or 30),
                bool(access.get("answered_only")),
            )
    for finding in compiler.findings:
        if finding.field in ("basic_username", "basic_password", "bearer_token"):
            finding.field = PREFIX + finding.field
    if compiler.errors:
        raise RequestInvalid(compiler.errors)
    return CompiledCustom(
        compiled,
        auth,
        auth.account_id if isinstance(auth, OAuthAuth) else None,
        float(lookup.get("timeout_seconds") or 5.0),
        tuple(compiler.warnings),
    )


_compiled: dict[tuple[int, datetime], CompiledCustom | RequestInvalid] = {}


def compiled_for_run(
    runtime: Runtime, profile: Any, secrets: Mapping[str, str | None]
) -> CompiledCustom:
    """The profile's custom lookup compiled once per version (raises ``RequestInvalid``
    when it no longer compiles, e.g. after its OAuth account was deleted)."""
    key = (int(profile.id), profile.updated_at)
    found = _compiled.get(key)
    if found is None:
        try:
            found = compile_custom(lookup_values(profile), trigger=profile.trigger, secrets=secrets)
        except RequestInvalid as exc:
            found = exc
        if len(_compiled) > _CACHE_SIZE:
            _compiled.clear()
        _compiled[key] = found
    if isinstance(found, RequestInvalid):
        raise found
    return found


def lookup_values(profile: Any) -> dict[str, Any]:
    """A stored custom lookup with its authentication columns, as the API gives it."""
    return {
        **(profile.lookup or {}),
        "auth_type": profile.auth_type,
        "oauth_account_id": profile.oauth_account_id,
        "basic_username": profile.basic_username,
    }


# ---- running -------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    system_urls: dict[str, str]
    tz: ZoneInfo


@dataclass
class AccessRun:
    """One access as run: where it opens (browser) or what was sent (server)."""

    access: str
    method: str
    sent: bool = False
    url: str | None = None
    form: BrowserForm | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    extracted: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float | None = None
    # Values of the auth answer: masked wherever this run is recorded.
    hidden: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def reason(self) -> str:
        return str((self.error or {}).get("message") or "")

    @property
    def reason_msg(self) -> Message:
        """Why it failed as a catalogue message (the CRM's own words verbatim)."""
        data = (self.error or {}).get("msg")
        if isinstance(data, dict):
            try:
                return Message.from_json(data)
            except (KeyError, ValueError, TypeError):
                pass
        return Message("text", text=self.reason)

    def failure(self) -> Message | None:
        """The card's ``lookup_error`` for this run: the access, then why."""
        if self.error is None:
            return None
        return Message(f"pop_lookup_access.{self.access}", reason=self.reason_msg)


async def environment(runtime: Runtime, compiled: CompiledCustom) -> Environment:
    """{SVADDR}, the OAuth account's instance URL ({OAUTH_INSTANCE_URL}, {SFAPI}) and the
    time zone (the settings re-read at most every few seconds)."""
    from callbridge.calls.writes import read_session
    from callbridge.system_settings.service import get_system_settings, svaddr

    cached: tuple[float, str, str] | None = runtime.extras.get("screen_pop.settings")
    if cached is None or time.monotonic() - cached[0] > _SETTINGS_TTL:
        async with read_session(runtime) as session:
            current = await get_system_settings(session, runtime.settings)
        cached = (
            time.monotonic(),
            svaddr(current.public_url, runtime.settings),
            current.timezone,
        )
        runtime.extras["screen_pop.settings"] = cached
    urls = {"SVADDR": cached[1]}
    if compiled.account_id is not None:
        instance = await get_outbound(runtime).instance_url(compiled.account_id)
        if instance:
            urls["OAUTH_INSTANCE_URL"] = urls["SFAPI"] = instance
    return Environment(urls, ZoneInfo(cached[2]))


def expand(
    access: CompiledAccess, values: Mapping[str, str], env: Environment
) -> tuple[Expanded | None, AccessRun]:
    """The access expanded with the call's values: for a browser access, the URL or form
    the console opens; an expansion that fails is the run's error."""
    run = AccessRun(access.name, access.method)
    try:
        expanded = expand_request(access.request, Expansion(values, env.system_urls, env.tz))
    except TemplateExpansionError as exc:
        run.error = {"kind": "template", **stored(exc.msg)}
        return None, run
    if access.method == "browser_get":
        run.url = expanded.url
    elif access.method == "browser_post":
        pairs = parse_qsl(expanded.body or "", keep_blank_values=True)
        run.form = BrowserForm(action=expanded.url, fields=pairs)
    else:
        run.request = expanded.view(auth=access.request.auth).as_dict()
    return expanded, run


def _is_json(result: OutboundResult) -> bool:
    media = (result.header("content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def send(
    runtime: Runtime,
    access: CompiledAccess,
    values: Mapping[str, str],
    env: Environment,
    timeout: float,  # noqa: ASYNC109 (the CRM's, per attempt: the outbound path applies it)
) -> AccessRun:
    """Send a server access through the outbound path; read its answer when it has a
    response format. Never raises for what the CRM or the templates do."""
    started = time.perf_counter()
    expanded, run = expand(access, values, env)
    if expanded is None:
        return run
    reading = access.reader is not None
    result = await get_outbound(runtime).send(
        outbound_request(
            expanded,
            auth=access.request.auth,
            timeout=timeout,
            # The lookup is waited for by the card: one attempt.
            retry=RetryPolicy.NONE if reading else RetryPolicy(),
        )
    )
    from callbridge.calls.store import MAX_RECORDED_BODY

    run.sent = True
    run.request = result.request.as_dict()
    run.response = result.response_record(MAX_RECORDED_BODY)
    run.attempts = [a.as_dict() for a in result.attempts]
    run.error = error_record(result)
    if access.reader is not None and run.error is None:
        try:
            found = access.reader.extract(
                result.text, timeout=PATTERN_TIMEOUT, json_body=_is_json(result)
            )
        except ExtractionError as exc:
            run.error = {"kind": "pattern", **stored(exc.msg)}
        else:
            if found.matched:
                run.extracted = {k: v for k, v in found.named.items() if k in access.names}
    run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if access.name == "auth":
        run.hidden = tuple(v for v in run.extracted.values() if len(v) >= 4)
    return run


class SessionCache:
    """The auth answer's variables per profile version, reused for its session time;
    one auth at a time per profile."""

    def __init__(self) -> None:
        self._values: dict[tuple[int, datetime], tuple[float, dict[str, str]]] = {}
        self._locks: dict[tuple[int, datetime], asyncio.Lock] = {}

    def fresh(self, key: tuple[int, datetime]) -> dict[str, str] | None:
        hit = self._values.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def lock(self, key: tuple[int, datetime]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def keep(self, key: tuple[int, datetime], values: dict[str, str], minutes: int) -> None:
        if len(self._values) > _CACHE_SIZE:
            self._values.clear()
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        self._values[key] = (time.monotonic() + minutes * 60, values)

    def forget(self, key: tuple[int, datetime]) -> None:
        self._values.pop(key, None)


def sessions(runtime: Runtime) -> SessionCache:
    cache = runtime.extras.get("screen_pop.sessions")
    if cache is None:
        cache = runtime.extras["screen_pop.sessions"] = SessionCache()
    return cache


async def session_values(
    runtime: Runtime,
    key: tuple[int, datetime],
    compiled: CompiledCustom,
    values: Mapping[str, str],
    env: Environment,
) -> tuple[dict[str, str], AccessRun | None]:
    """The auth answer's variables: cached while the session lasts, else the auth access
    is sent now (its run returned, to be recorded). No auth access: none."""
    access = compiled.access("auth")
    if access is None:
        return {}, None
    cache = sessions(runtime)
    found = cache.fresh(key)
    if found is not None:
        return found, None
    async with cache.lock(key):
        found = cache.fresh(key)
        if found is not None:
            return found, None
        run = await send(runtime, access, values, env, compiled.timeout)
        if run.error is None:
            found = {name: run.extracted.get(name, "") for name in access.names}
            cache.keep(key, found, access.session_minutes)
            return found, run
        return {}, run


def masked(value: Any, hidden: Collection[str]) -> Any:
    """``value`` (a recorded request or response) with the auth answer's values masked."""
    if not hidden:
        return value
    if isinstance(value, str):
        for secret in hidden:
            value = value.replace(secret, SECRET_MASK)
        return value
    if isinstance(value, dict):
        return {k: masked(v, hidden) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, hidden) for v in value]
    return value
