"""The rule engine: for one call event, run the enabled rules of its type in execution
order — condition, template expansion with the call's variables, the outbound request,
extraction into ``RESPONSE_<NAME>`` call variables, an execution record (DESIGN.md §6).

A failing rule is recorded with its reason and the event's later rules still run, unless
the rule says "stop on failure". Nothing a rule, a response or the CRM does can make the
worker crash: every failure becomes an execution error.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.call_actions import repository
from callbridge.call_actions.compiler import compile_rule
from callbridge.call_actions.service import rule_label, rule_values
from callbridge.calls import store
from callbridge.calls.callstore import CallInfo
from callbridge.calls.dispatcher import EventJob, EventOutcome
from callbridge.calls.writes import read_session
from callbridge.circuits.reruns import RERUN_EVENT
from callbridge.circuits.store import Park, retry_due
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define, stored
from callbridge.models.call_action import CallAction
from callbridge.outbound import (
    OutboundRequest,
    OutboundResult,
    RequestView,
    RetryPolicy,
    get_outbound,
)
from callbridge.outbound.circuits import circuit_key
from callbridge.patterns import ExtractionError
from callbridge.recordings.service import monitor_link_maker
from callbridge.requests import CompiledRequest, RequestInvalid
from callbridge.requests import service as requests_service
from callbridge.requests.execute import (
    Expansion,
    error_record,
    expand_request,
    outbound_request,
    unsent_record,
)
from callbridge.requests.secrets import decrypted_secrets
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings, svaddr
from callbridge.templating import DATE_NAMES, SYSTEM_URL_NAMES, TemplateExpansionError

logger = logging.getLogger("callbridge.call_actions")

SOURCE = "call_action"
# Each pattern match on a response may take this long; a hostile pattern fails its step.
PATTERN_TIMEOUT = 0.5
_SETTINGS_TTL = 5.0
_CACHE_SIZE = 2000


define(
    {
        "rule_not_run": "The rule is invalid and was not run: {detail}",
        "rule_no_account": "The rule uses OAuth but has no OAuth account.",
        "rule_account_deleted": (
            "The rule's OAuth account ({id}) was deleted: choose another account for this rule."
        ),
        "account_not_connected.instance_url": (
            "OAuth account {id} is not connected, so {OAUTH_INSTANCE_URL} is unknown: connect "
            "the account first."
        ),
        "secret_unreadable": "{detail}",
        "condition_pattern_failed": "condition pattern: {detail}",
        "response_binary": "The response is binary data: nothing was extracted.",
        "pattern_no_match": "{pattern} did not match the response.",
        "greedy_capture.found": (
            "{name} spans JSON structure ({value}…): the greedy .* ran past the value; use "
            '[^"]* or a JSONPath extraction.'
        ),
        "chain_stopped": "rule {id} failed and stops the chain",
        "already_run": "already run before the worker was interrupted",
        "condition_not_matched": "the condition did not match",
    }
)


class RuleFailure(Exception):
    """A step failed before or instead of a request (kind: template, config, pattern)."""

    def __init__(self, kind: str, message: Message) -> None:
        super().__init__(message.text)
        self.kind = kind
        self.msg = message
        self.message = message.text

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "msg": self.msg.to_json()}


def _reason(message: Message) -> dict[str, Any]:
    """An outcome's reason: English for the API, with its message for the timeline."""
    return {"reason": message.text, "reason_msg": message.to_json()}


# ---- compiled rules, cached per (id, updated_at) ------------------------------------

_compiled: OrderedDict[tuple[int, datetime], CompiledRequest | RequestInvalid] = OrderedDict()


def compiled_rule(runtime: Runtime, rule: CallAction) -> CompiledRequest:
    """The rule compiled once per version, its secrets decrypted; :class:`RuleFailure`
    when it no longer compiles or its secrets cannot be read."""
    key = (rule.id, rule.updated_at)
    found = _compiled.get(key)
    if found is None:
        try:
            secrets = decrypted_secrets(rule, runtime.secrets)
        except Exception as exc:  # a key change without the old key: a clear step error
            raise RuleFailure("config", Message("secret_unreadable", detail=str(exc))) from None
        try:
            found = compile_rule(rule_values(rule), available_responses=None, secrets=secrets)[0]
        except RequestInvalid as exc:
            found = exc
        _compiled[key] = found
        if len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    if isinstance(found, RequestInvalid):
        raise RuleFailure("config", Message("rule_not_run", detail=str(found)))
    return found


# ---- the values templates see -------------------------------------------------------


def call_values(
    call: CallInfo, payload: dict[str, Any], event: str, variables: dict[str, str]
) -> dict[str, str]:
    """Template variables of one event: the call's stored variables (``RESPONSE_…``), the
    PBX's extra ``variables``, and the built-ins from the event (falling back to what
    earlier events told about the call)."""
    values: dict[str, str] = dict(variables)
    extra = payload.get("variables")
    if isinstance(extra, dict):
        values.update({str(k): str(v) for k, v in extra.items()})

    def pick(key: str, fallback: str | None) -> str:
        value = payload.get(key)
        return str(value) if value is not None else (fallback or "")

    values.update(
        EVENT=event,
        ID=call.call_id,
        TEL=pick("tel", call.tel),
        TELNAME=pick("tel_name", call.tel_name),
        CALLED=pick("called", call.called),
        CALLEDNAME=pick("called_name", call.called_name),
        DIRECTION=pick("direction", call.direction),
        QUEUE=pick("queue", call.queue),
        AID=pick("agent_id", None),
        EXT=pick("extension", None),
        UNIQUE_ID=pick("unique_id", call.unique_id),
    )
    return values


@dataclass(frozen=True)
class Environment:
    """What every rule of an event shares: the public URL, the time zone, which OAuth
    accounts exist."""

    svaddr: str
    timezone: ZoneInfo
    oauth_account_ids: frozenset[int]
    # MONITOR_LINK(…): the playback link as agents get it (signed in the signed mode).
    link_maker: Callable[[str], str] | None = None


def _cached_environment(
    runtime: Runtime, needed_accounts: set[int] | None = None
) -> Environment | None:
    cached: tuple[float, Environment] | None = runtime.extras.get("call_actions.environment")
    if (
        cached is not None
        and time.monotonic() - cached[0] < _SETTINGS_TTL
        and not (needed_accounts or set()) - cached[1].oauth_account_ids
    ):
        return cached[1]
    return None


def _cached_rules(
    cache: dict[str, tuple[float, int, list[CallAction]]], event: str
) -> list[CallAction] | None:
    """The event's enabled rules while the engine's cache of them is fresh (see
    ``repository.cached_enabled_rules``), else None."""
    hit = cache.get(event)
    if (
        hit is not None
        and hit[1] == repository.rules_version()
        and time.monotonic() - hit[0] < repository.RULES_TTL_SECONDS
    ):
        return hit[2]
    return None


async def environment(
    runtime: Runtime, session: AsyncSession, needed_accounts: set[int] | None = None
) -> Environment:
    """The settings and the ids of the OAuth accounts that exist, re-read at most every
    few seconds — at once when a rule names an account not seen yet."""
    found = _cached_environment(runtime, needed_accounts)
    if found is not None:
        return found
    now = time.monotonic()
    current = await get_system_settings(session, runtime.settings)
    maker = await monitor_link_maker(session, runtime)
    env = Environment(
        svaddr(current.public_url, runtime.settings),
        ZoneInfo(current.timezone),
        frozenset(await requests_service.oauth_account_ids(session)),
        lambda call_ref: maker(call_ref, utcnow()),
    )
    runtime.extras["call_actions.environment"] = (now, env)
    return env


# ---- one rule -----------------------------------------------------------------------


@dataclass
class Prepared:
    """A rule's request, ready to send (or to show, in the test panel)."""

    request: OutboundRequest
    view: RequestView


async def system_urls(
    runtime: Runtime, rule: CallAction, compiled: CompiledRequest, env: Environment
) -> dict[str, str]:
    urls = {"SVADDR": env.svaddr}
    if rule.auth_type == "oauth" or compiled.uses_instance_url:
        if rule.oauth_account_id is None:
            raise RuleFailure("config", Message("rule_no_account"))
        if rule.oauth_account_id not in env.oauth_account_ids:
            raise RuleFailure("config", Message("rule_account_deleted", id=rule.oauth_account_id))
        instance = await get_outbound(runtime).instance_url(rule.oauth_account_id)
        if compiled.uses_instance_url and not instance:
            raise RuleFailure(
                "auth", Message("account_not_connected.instance_url", id=rule.oauth_account_id)
            )
        if instance:
            urls["OAUTH_INSTANCE_URL"] = instance
    return urls


def prepare(
    rule: CallAction,
    compiled: CompiledRequest,
    values: dict[str, str],
    urls: dict[str, str],
    env: Environment,
) -> Prepared:
    """Expand the rule's templates; :class:`RuleFailure` when a value cannot be inserted."""
    try:
        expanded = expand_request(
            compiled, Expansion(values, urls, env.timezone, link_maker=env.link_maker)
        )
    except TemplateExpansionError as exc:
        raise RuleFailure("template", exc.msg) from None
    request = outbound_request(
        expanded,
        auth=compiled.auth,
        timeout=float(rule.timeout_seconds),
        retry=RetryPolicy(retry_non_idempotent=rule.retry_non_idempotent),
    )
    return Prepared(request, expanded.view(auth=compiled.auth))


def condition_holds(
    compiled: CompiledRequest, values: dict[str, str], urls: dict[str, str], env: Environment
) -> tuple[bool, str]:
    """The condition (both empty: always). The code is expanded; with a pattern it must
    match, without one it must not be empty. Returns the verdict and the expanded code."""
    if compiled.condition_code is None and compiled.condition_pattern is None:
        return True, ""
    code = ""
    try:
        if compiled.condition_code is not None:
            code = compiled.condition_code.expand(values, system_urls=urls, tz=env.timezone)
    except TemplateExpansionError as exc:
        raise RuleFailure("template", exc.msg) from None
    if compiled.condition_pattern is None:
        return bool(code.strip()), code
    try:
        return compiled.condition_pattern.matches(code, timeout=PATTERN_TIMEOUT), code
    except ExtractionError as exc:
        raise RuleFailure("pattern", Message("condition_pattern_failed", detail=exc.msg)) from None


def is_json_response(result: OutboundResult) -> bool:
    media = (result.header("content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def extract(
    compiled: CompiledRequest, result: OutboundResult
) -> tuple[dict[str, str], list[Message]]:
    """``RESPONSE_<NAME>`` values from the response, and notes for the timeline."""
    extracted: dict[str, str] = {}
    notes: list[Message] = []
    sources = compiled.extractors
    if not sources or result.status is None:
        return extracted, notes
    if result.binary:
        notes.append(Message("response_binary"))
        return extracted, notes
    json_body = is_json_response(result)
    for source in sources:
        try:
            found = source.extract(result.text, timeout=PATTERN_TIMEOUT, json_body=json_body)
        except ExtractionError as exc:
            raise RuleFailure("pattern", exc.msg) from None
        if not found.matched:
            notes.append(Message("pattern_no_match", pattern=str(getattr(source, "text", ""))))
            continue
        extracted.update(store.response_variables(found.named))
    for name, value in extracted.items():
        if json_body and ('","' in value or '":' in value):
            notes.append(Message("greedy_capture.found", name=name, value=repr(value[:60])))
    return extracted, notes


@dataclass
class RuleRun:
    """One rule's outcome, as recorded."""

    status: str  # ok | failed | skipped
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    extracted: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    condition: dict[str, Any] | None = None
    result: OutboundResult | None = None
    # The circuit (CRM) the request went to.
    circuit: str | None = None


def unsent_request(rule: CallAction) -> dict[str, Any]:
    return unsent_record(rule.method, rule.url)


async def run_rule(
    runtime: Runtime,
    rule: CallAction,
    values: dict[str, str],
    env: Environment,
    *,
    check_condition: bool = True,
    send: bool = True,
    probe_for: int | None = None,
) -> RuleRun:
    """Run one rule against ``values``; never raises for anything a rule or CRM does."""
    started = time.perf_counter()
    run = RuleRun(status="ok")
    try:
        compiled = compiled_rule(runtime, rule)
        urls = await system_urls(runtime, rule, compiled, env)
        holds, code = condition_holds(compiled, values, urls, env)
        if compiled.condition_code is not None or compiled.condition_pattern is not None:
            run.condition = {"matched": holds, "code": code}
        if check_condition and not holds:
            run.status = "skipped"
            return run
        prepared = prepare(rule, compiled, values, urls, env)
        run.request = prepared.view.as_dict()
        if not send:
            return run
        request = prepared.request
        if probe_for is not None:
            request = replace(request, probe_for=probe_for)
        run.circuit = circuit_key(request)
        result = await get_outbound(runtime).send(request)
        run.result = result
        run.request = result.request.as_dict()
        run.response = result.response_record(store.MAX_RECORDED_BODY)
        run.attempts = [a.as_dict() for a in result.attempts]
        if result.error is not None:
            run.status = "failed"
            run.error = error_record(result)
        extracted, notes = extract(compiled, result)
        run.extracted = extracted
        run.notes = [stored(note) for note in notes]
    except RuleFailure as exc:
        run.status = "failed"
        run.error = exc.as_dict()
        run.request = run.request or unsent_request(rule)
    finally:
        run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return run


# ---- one event ----------------------------------------------------------------------


async def process_event(job: EventJob) -> EventOutcome:
    """The dispatcher's processor: run the event's rules, record every execution."""
    if job.event == RERUN_EVENT:
        return await process_rerun(job)
    runtime = job.runtime
    cache = runtime.extras.setdefault("call_actions.rules", {})
    # Rules and settings are cached: most events need no session at all.
    rules = _cached_rules(cache, job.event)
    env = None
    if rules is None or rules:
        env = _cached_environment(runtime, _accounts_of(rules) if rules else None)
    if rules is None or (rules and env is None):
        async with read_session(runtime) as session:
            if rules is None:
                rules = await repository.cached_enabled_rules(session, cache, job.event)
            if rules:
                env = await environment(runtime, session, _accounts_of(rules))
    if not rules:
        return EventOutcome()
    assert env is not None
    call, variables, done = job.call, dict(job.variables), job.executed_rule_ids
    values = call_values(call, job.payload, job.event, variables)
    items: list[dict[str, Any]] = []
    failures = 0
    stopped_by: CallAction | None = None
    for rule in rules:
        label = rule_label(rule)
        item: dict[str, Any] = {"rule_id": rule.id, "label": label}
        if stopped_by is not None:
            items.append(
                {
                    **item,
                    "status": "stopped",
                    **_reason(Message("chain_stopped", id=stopped_by.id)),
                }
            )
            continue
        if rule.id in done:
            items.append(
                {
                    **item,
                    "status": "resumed",
                    **_reason(Message("already_run")),
                }
            )
            continue
        run = await run_rule(runtime, rule, values, env, probe_for=job.event_pk)
        park = _park_or_fail(runtime, job, run)
        if park is not None:
            items.append({**item, "status": "parked", "reason": park.reason})
            return EventOutcome(items=items, park=park)
        if run.status == "skipped":
            items.append({**item, "status": "skipped", **_reason(Message("condition_not_matched"))})
            continue
        items.append(await _record(runtime, job, rule, run, item, event=job.event))
        values.update(run.extracted)
        if run.status == "failed":
            failures += 1
            if rule.stop_on_failure:
                stopped_by = rule
    error = f"{failures} of {len(rules)} rule(s) failed" if failures else None
    return EventOutcome(items=items, error=error)


async def _record(
    runtime: Runtime,
    job: EventJob,
    rule: CallAction,
    run: RuleRun,
    item: dict[str, Any],
    *,
    event: str,
    rerun_of: int | None = None,
) -> dict[str, Any]:
    """Record the rule's execution (and the variables it extracted); its timeline item."""
    execution_id = await store.record_execution(
        runtime,
        job.call_pk,
        variables=run.extracted,
        variables_source=f"rule:{rule.id}",
        source=SOURCE,
        rule_id=rule.id,
        label=item["label"],
        event=event,
        event_pk=job.event_pk,
        attempt=max(len(run.attempts), 1),
        request=run.request or unsent_request(rule),
        response=run.response,
        duration_ms=run.duration_ms,
        extracted=run.extracted,
        error=run.error,
        attempts=run.attempts,
        notes=run.notes,
        rerun_of=rerun_of,
    )
    return {
        **item,
        "status": run.status,
        "execution_id": execution_id,
        "reason": run.error["message"] if run.error else None,
        **({"reason_msg": run.error["msg"]} if run.error and "msg" in run.error else {}),
    }


def _park_or_fail(runtime: Runtime, job: EventJob, run: RuleRun) -> Park | None:
    """The park when the CRM did not process the rule's request; when parking has
    lasted ``CALLBRIDGE_PARK_HOURS`` already, the run fails saying so instead."""
    result = run.result
    if result is None or not result.unprocessed or run.circuit is None:
        return None
    park = _park(runtime, job, run.circuit, result)
    if park is None:
        run.error = {"kind": "parked", "message": _parking_ended(runtime, job, result)}
    return park


async def process_rerun(job: EventJob) -> EventOutcome:
    """A re-run event (``circuits.reruns``): the rule as it is now, with the data of the
    event it first ran for and the call's variables; an execution of its own."""
    runtime = job.runtime
    payload = job.payload
    rule_id = int(payload.get("rule_id") or 0)
    rerun_of = int(payload.get("rerun_of") or 0)
    async with read_session(runtime) as session:
        rule = await session.get(CallAction, rule_id)
        env = await environment(runtime, session, _accounts_of([rule]) if rule else None)
    item: dict[str, Any] = {"rule_id": rule_id, "label": f"re-run of execution {rerun_of}"}
    if rule is None:
        reason = f"call action {rule_id} was deleted: execution {rerun_of} was not re-run"
        return EventOutcome(items=[{**item, "status": "failed", "reason": reason}], error=reason)
    item["label"] = rule_label(rule)
    event = str(payload.get("event") or rule.event)
    data = payload.get("data")
    values = call_values(job.call, data if isinstance(data, dict) else {}, event, job.variables)
    run = await run_rule(runtime, rule, values, env, check_condition=False, probe_for=job.event_pk)
    park = _park_or_fail(runtime, job, run)
    if park is not None:
        return EventOutcome(items=[{**item, "status": "parked", "reason": park.reason}], park=park)
    recorded = await _record(runtime, job, rule, run, item, event=event, rerun_of=rerun_of)
    recorded["rerun_of"] = rerun_of
    error = f"the re-run of execution {rerun_of} failed" if run.status == "failed" else None
    return EventOutcome(items=[recorded], error=error)


def _park(runtime: Runtime, job: EventJob, key: str, result: OutboundResult) -> Park | None:
    """Until when the event waits after the CRM did not process a request; None when
    it has waited ``CALLBRIDGE_PARK_HOURS`` already (the rule then fails)."""
    now = utcnow()
    limit = timedelta(hours=runtime.settings.park_hours)
    parked_at = job.parked_at or now
    if now - parked_at >= limit:
        return None
    reason = result.error.message if result.error is not None else f"HTTP {result.status}"
    circuits = get_outbound(runtime).circuits
    if circuits is not None and circuits.open_circuit(key) is not None:
        due = parked_at + limit  # a probe or the recovery makes it due earlier
    else:
        due = retry_due(job.parked_at, now)
    return Park(key, reason, due)


def _parking_ended(runtime: Runtime, job: EventJob, result: OutboundResult) -> str:
    since = job.parked_at.isoformat(timespec="seconds") if job.parked_at else "?"
    last = result.error.message if result.error is not None else f"HTTP {result.status}"
    return (
        f"not sent: the CRM did not process this call's requests for "
        f"{runtime.settings.park_hours:g} h (parked since {since}, CALLBRIDGE_PARK_HOURS); "
        f"last error: {last}"
    )


def unset_variables(runtime: Runtime, rule: CallAction, values: dict[str, str]) -> list[str]:
    """Variables the rule uses that the sample data does not give (test panel hint)."""
    try:
        compiled = compiled_rule(runtime, rule)
    except RuleFailure:
        return []
    used: set[str] = set()
    for template in compiled.templates:
        used |= template.variables
    return sorted(
        name
        for name in used
        if name not in values
        and name not in DATE_NAMES
        and name not in SYSTEM_URL_NAMES
        and name != "EVENT"
    )


def _accounts_of(rules: list[CallAction]) -> set[int]:
    return {r.oauth_account_id for r in rules if r.oauth_account_id is not None}


async def test_rule(
    runtime: Runtime,
    session: AsyncSession,
    rule: CallAction,
    variables: dict[str, str],
    *,
    send: bool,
) -> RuleRun:
    """The test panel: the rule against sample call data; no call is touched."""
    env = await environment(runtime, session, _accounts_of([rule]))
    values = {k.strip().upper(): v for k, v in variables.items()}
    values.setdefault("EVENT", rule.event)
    return await run_rule(runtime, rule, values, env, check_condition=False, send=send)
