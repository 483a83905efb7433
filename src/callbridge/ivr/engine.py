"""Run one IVR invocation: check the digits, send the request and its steps, match the
response settings, and build the answer the PBX gets (DESIGN.md §3.3).

The whole invocation is bounded by the IVR's timeout with ``asyncio.timeout_at``: httpx
timeouts bound single operations, not a request, and steps share one budget. Every
request goes through the one outbound path with no retries (the timeout is the budget)
except its one token refresh on 401. No database here: the caller passes the stored
call's values in and writes the outcome out afterwards, off the answer path.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from callbridge.ivr.compiler import (
    DIGITS,
    CompiledBehaviour,
    CompiledIvr,
    CompiledResponse,
)
from callbridge.kit.time import utcnow
from callbridge.messages import CATALOGUE, Message, define, joined, stored
from callbridge.outbound import Outbound, OutboundResult, RequestView, RetryPolicy
from callbridge.patterns import (
    CompiledPattern,
    Extraction,
    ExtractionError,
)
from callbridge.requests import CompiledRequest
from callbridge.requests.execute import Expansion, expand_request, outbound_request
from callbridge.templating import CompiledTemplate, TemplateExpansionError

# Errors that make the answer request_error (besides any 5xx): the CRM could not be asked
# or could not answer. Other 4xx answers go through the response settings ("*" catches
# them) like any response.
# "unavailable": not sent, the CRM's circuit is open (DESIGN.md §6) — answered at once.
_REQUEST_ERROR_KINDS = frozenset({"timeout", "connect", "auth", "limit", "request", "unavailable"})
# The outbound path ends its send at the deadline itself; this margin only lets it
# return its own "timeout" result (with the request as sent) before the outer guard fires.
_GUARD_MARGIN = 0.005
# The most one pattern may take on one response (the deadline may allow less).
_PATTERN_BUDGET = 0.25
_DTMF_RE = re.compile(r"^[0-9*#A-Da-d]*$")


@dataclass(frozen=True)
class InvokeInputs:
    call_id: str
    tel: str | None = None
    called: str | None = None
    tel_name: str | None = None
    digits: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass
class StepRun:
    """What happened to one request of the invocation."""

    name: str
    at: datetime
    skipped: Message | None = None
    result: OutboundResult | None = None
    # The request as it would have been sent, when it was not (expansion failed, test).
    unsent: RequestView | None = None
    extracted: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def sent(self) -> bool:
        return self.result is not None

    def request_record(self) -> dict[str, Any] | None:
        if self.result is not None:
            return self.result.request.as_dict()
        if self.unsent is not None:
            return self.unsent.as_dict()
        return None

    def duration_ms(self) -> float | None:
        return round(self.result.elapsed_ms, 3) if self.result is not None else None


@dataclass
class ResponseCheck:
    priority: int
    matched: bool | None
    said: Message

    @property
    def reason(self) -> str:
        return self.said.text


@dataclass
class IvrRun:
    """The answer and everything that led to it (for the log and the test panel)."""

    answer: dict[str, Any]
    steps: list[StepRun] = field(default_factory=list)
    checks: list[ResponseCheck] = field(default_factory=list)
    # RESPONSE_<NAME> → value, to store on the call.
    stored: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def outcome(self) -> str:
        return str(self.answer["outcome"])


@dataclass
class _Env:
    """The values templates expand with, and what expansion needs besides them."""

    values: dict[str, str]
    system_urls: dict[str, str]
    tz: tzinfo
    now: datetime


def base_values(inputs: InvokeInputs, call_values: Mapping[str, str]) -> dict[str, str]:
    """Template values of an invocation: the stored call's, then the PBX's."""
    values = dict(call_values)
    values.update(inputs.variables)
    values["ID"] = inputs.call_id
    for name, value in (
        ("TEL", inputs.tel),
        ("CALLED", inputs.called),
        ("TELNAME", inputs.tel_name),
    ):
        if value is not None:
            values[name] = value
    values[DIGITS] = inputs.digits or ""
    return values


define(
    {
        "digits_invalid.chars": "the digits contain characters other than 0-9, *, # and A-D",
        "digits_invalid.none": "this IVR accepts no digits",
        "digits_invalid.too_many": "{count} digits given, at most {max} accepted",
        "digits_invalid.pattern": "the digits do not match the input check pattern {pattern}",
        "ivr_timeout": "the IVR's timeout of {seconds} s passed before it finished",
        "not_sent": "send is false: nothing was sent",
        "account_not_connected.ivr": (
            "OAuth account {id} is not connected or does not exist: {OAUTH_INSTANCE_URL} is "
            "unknown. Connect it on the OAuth accounts page."
        ),
        "request_not_sent": "the request was not sent: {detail}",
        "condition.expanded": "{code} expanded to {text}",
        "condition.empty_code": "the empty code",
        "condition.not_empty": "{shown}, which is not empty",
        "condition.empty": "{shown}, which is empty",
        "condition.failed": "the condition pattern failed: {detail}",
        "condition.matches": "{shown}, which matches {pattern}",
        "condition.no_match": "{shown}, which does not match {pattern}",
        "earlier_matched": "an earlier setting matched",
        "no_response": "{which} has no response: {why}",
        "no_response.step": "step {name}",
        "no_response.no_request": "no request",
        "no_response.not_sent": "it was not sent",
        "code_mismatch": "response code {status}{where} is not {expected}",
        "code_match": "response code {status}{where} is {expected}",
        "code_match.of_step": " of {name}",
        "response_pattern.failed": "the response pattern failed: {detail}",
        "response_pattern.absent": "the response pattern {pattern} is not in the body",
        "response_pattern.present": "the body contains {pattern}",
        "condition": "condition: {why}",
        "extraction.failed": "the extraction failed: {detail}",
        "extraction.empty": "the extraction pattern found nothing in the body",
        "extraction.found": "the extraction pattern found {found}",
        "extraction.a_match": "a match",
        # An answer's outcome by the name the API gives it.
        "outcome.matched": "matched",
        "outcome.no_match": "no_match",
        "outcome.request_error": "request_error",
        "outcome.input_invalid": "input_invalid",
    }
)


def outcome_message(outcome: str) -> Message | str:
    """An answer's outcome (``no_match``…) shown in the admin's language."""
    return Message(f"outcome.{outcome}") if f"outcome.{outcome}" in CATALOGUE else outcome


def digits_problem(ivr: CompiledIvr, digits: str | None) -> Message | None:
    """Why the digits are refused, or None when they are acceptable."""
    digits = digits or ""
    if not _DTMF_RE.match(digits):
        return Message("digits_invalid.chars")
    if len(digits) > ivr.max_digits:
        if ivr.max_digits == 0:
            return Message("digits_invalid.none")
        return Message("digits_invalid.too_many", count=len(digits), max=ivr.max_digits)
    if ivr.max_digits and ivr.digits_pattern is not None:
        try:
            if not ivr.digits_pattern.matches(digits, timeout=_PATTERN_BUDGET):
                return Message("digits_invalid.pattern", pattern=ivr.digits_pattern.text)
        except ExtractionError as exc:
            return exc.msg
    return None


def is_request_error(result: OutboundResult) -> bool:
    if result.status is not None and result.status >= 500:
        return True
    return result.error is not None and result.error.kind in _REQUEST_ERROR_KINDS


async def run_ivr(
    ivr: CompiledIvr,
    inputs: InvokeInputs,
    *,
    outbound: Outbound,
    call_values: Mapping[str, str] = {},
    system_urls: Mapping[str, str] = {},
    tz: tzinfo,
    started: float | None = None,
    send: bool = True,
) -> IvrRun:
    """Answer one invocation. ``started``: when the PBX's request arrived, on the event
    loop's clock; the answer is due ``ivr.timeout`` seconds after it. Never raises for
    anything the CRM or the network does."""
    loop = asyncio.get_running_loop()
    started = loop.time() if started is None else started
    perf_start = time.perf_counter()
    deadline = started + ivr.timeout
    env = _Env(base_values(inputs, call_values), dict(system_urls), tz, utcnow())
    run = IvrRun(answer={})
    problem = digits_problem(ivr, inputs.digits)
    if problem is not None:
        run.error = {"kind": "input_invalid", **stored(problem)}
        run.answer = _answer(inputs.call_id, "input_invalid", None, ivr.on_input_invalid, env)
    else:
        try:
            async with asyncio.timeout_at(deadline + _GUARD_MARGIN):
                await _run(ivr, inputs, env, run, outbound, deadline, send, loop)
        except TimeoutError:
            run.error = {
                "kind": "timeout",
                **stored(Message("ivr_timeout", seconds=f"{ivr.timeout:g}")),
            }
            run.checks = []
            run.answer = _answer(inputs.call_id, "request_error", None, ivr.on_error, env)
    run.duration_ms = round((time.perf_counter() - perf_start) * 1000, 3)
    return run


async def _run(
    ivr: CompiledIvr,
    inputs: InvokeInputs,
    env: _Env,
    run: IvrRun,
    outbound: Outbound,
    deadline: float,
    send: bool,
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The running loop is asked once per invocation and passed down: each asking of
    # asyncio costs a getpid() system call (its check for a forked process).
    last_sent: StepRun | None = None
    for request in ivr.requests:
        step = StepRun(request.name, utcnow())
        run.steps.append(step)
        if request.has_condition:
            holds, reason = _condition(
                request.condition_code, request.condition_pattern, env, deadline, loop
            )
            if not holds:
                step.skipped = reason
                continue
        failure = await _send(request, env, step, outbound, deadline, send, loop)
        if not send:
            run.answer = _answer(inputs.call_id, "no_match", None, END_RULE_BEHAVIOUR, env)
            run.error = {"kind": "not_sent", **stored(Message("not_sent"))}
            return
        if failure is not None:
            run.error = failure
            run.answer = _answer(inputs.call_id, "request_error", None, ivr.on_error, env)
            return
        last_sent = step
        if request.extractor is not None and step.result is not None:
            extraction = _extract(request.extractor, step.result, deadline, loop.time())
            if isinstance(extraction, Message):
                step.error = {"kind": "extraction", **stored(extraction)}
            elif extraction.matched:
                step.extracted = extraction.response_variables()
                env.values.update(step.extracted)
                run.stored.update(step.extracted)
    _match(ivr, inputs, env, run, last_sent, deadline, loop)


END_RULE_BEHAVIOUR = CompiledBehaviour()


async def _send(
    request: CompiledRequest,
    env: _Env,
    step: StepRun,
    outbound: Outbound,
    deadline: float,
    send: bool,
    loop: asyncio.AbstractEventLoop,
) -> dict[str, Any] | None:
    """Expand and send ``request``; the reason it failed as a request error, or None."""
    system_urls = env.system_urls
    account_id = request.account_id
    if request.uses_instance_url and account_id is not None:
        instance_url = await outbound.instance_url(account_id)
        if not instance_url:
            step.error = {
                "kind": "auth",
                **stored(Message("account_not_connected.ivr", id=account_id)),
            }
            return step.error
        system_urls = {**system_urls, "OAUTH_INSTANCE_URL": instance_url}
    try:
        expanded = expand_request(request, Expansion(env.values, system_urls, env.tz, now=env.now))
    except TemplateExpansionError as exc:
        step.unsent = RequestView.build(request.method, request.url.text, [], None)
        step.error = {"kind": "request", **stored(Message("request_not_sent", detail=exc.msg))}
        return step.error
    if not send:
        step.unsent = expanded.view()
        return None
    remaining = deadline - loop.time()
    result = await outbound.send(
        outbound_request(
            expanded,
            auth=request.auth,
            timeout=max(remaining, 0.001),
            retry=RetryPolicy.NONE,
            deadline=deadline,
        )
    )
    step.result = result
    if is_request_error(result):
        error = result.error
        if error is None:
            step.error = {
                "kind": "http_status",
                **stored(Message("crm_error", status=str(result.status))),
            }
        else:
            step.error = error.as_dict()
        return step.error
    if result.error is not None:
        step.error = result.error.as_dict()
    return None


def _pattern_timeout(deadline: float, now: float) -> float:
    return max(0.001, min(_PATTERN_BUDGET, deadline - now))


def _is_json(result: OutboundResult) -> bool:
    content_type = (result.header("content-type") or "").lower()
    return "json" in content_type or result.text.lstrip().startswith(("{", "["))


def _extract(
    extractor: Any, result: OutboundResult, deadline: float, now: float
) -> Extraction | Message:
    try:
        extraction: Extraction = extractor.extract(
            result.text, timeout=_pattern_timeout(deadline, now), json_body=_is_json(result)
        )
    except ExtractionError as exc:
        return exc.msg
    return extraction


def _condition(
    code: CompiledTemplate | None,
    pattern: CompiledPattern | None,
    env: _Env,
    deadline: float,
    loop: asyncio.AbstractEventLoop,
) -> tuple[bool, Message]:
    """A condition as call actions test it: the expanded code against the pattern; a code
    without a pattern holds when it expands to something."""
    text = code.expand(env.values, now=env.now, tz=env.tz) if code is not None else ""
    shown = (
        Message("condition.expanded", code=repr(code.text), text=repr(text))
        if code is not None
        else Message("condition.empty_code")
    )
    if pattern is None:
        if text.strip():
            return True, Message("condition.not_empty", shown=shown)
        return False, Message("condition.empty", shown=shown)
    try:
        matched = pattern.matches(text, timeout=_pattern_timeout(deadline, loop.time()))
    except ExtractionError as exc:
        return False, Message("condition.failed", detail=exc.msg)
    if matched:
        return True, Message("condition.matches", shown=shown, pattern=pattern.text)
    return False, Message("condition.no_match", shown=shown, pattern=pattern.text)


def _match(
    ivr: CompiledIvr,
    inputs: InvokeInputs,
    env: _Env,
    run: IvrRun,
    last_sent: StepRun | None,
    deadline: float,
    loop: asyncio.AbstractEventLoop,
) -> None:
    for setting in ivr.responses:
        if run.answer:
            run.checks.append(ResponseCheck(setting.priority, None, Message("earlier_matched")))
            continue
        step = last_sent if setting.step_index is None else run.steps[setting.step_index]
        matched, reason, extraction = _check(setting, step, env, deadline, loop)
        run.checks.append(ResponseCheck(setting.priority, matched, reason))
        if not matched:
            continue
        variables = _answer_variables(run)
        values = env.values
        if extraction is not None:
            own = extraction.ivr_variables()
            variables.update(own)
            response_names = extraction.response_variables()
            run.stored.update(response_names)
            if step is not None:
                step.extracted.update(response_names)
            values = {**env.values, **response_names, **own}
        run.answer = _answer(
            inputs.call_id,
            "matched",
            setting.priority,
            setting.behaviour,
            _Env(values, env.system_urls, env.tz, env.now),
            variables,
        )
    if not run.answer:
        behaviour = ivr.on_no_match or END_RULE_BEHAVIOUR
        run.answer = _answer(
            inputs.call_id, "no_match", None, behaviour, env, _answer_variables(run)
        )


def _check(
    setting: CompiledResponse,
    step: StepRun | None,
    env: _Env,
    deadline: float,
    loop: asyncio.AbstractEventLoop,
) -> tuple[bool, Message, Extraction | None]:
    """Does this response setting match? With the reason, in words an admin reads."""
    if step is None or step.result is None:
        which = (
            Message("no_response.step", name=repr(setting.step_name))
            if setting.step_name
            else Message("no_response.no_request")
        )
        why = step.skipped if step is not None and step.skipped else Message("no_response.not_sent")
        return False, Message("no_response", which=which, why=why), None
    result = step.result
    status = str(result.status)
    where: str | Message = (
        "" if setting.step_name is None else Message("code_match.of_step", name=repr(step.name))
    )
    expected = repr(setting.response_code)
    if result.status is None or not setting.code_matches(result.status):
        return (
            False,
            Message("code_mismatch", status=status, where=where, expected=expected),
            None,
        )
    reasons = [Message("code_match", status=status, where=where, expected=expected)]
    if setting.response_pattern is not None:
        try:
            found = setting.response_pattern.matches(
                result.text, timeout=_pattern_timeout(deadline, loop.time())
            )
        except ExtractionError as exc:
            return False, Message("response_pattern.failed", detail=exc.msg), None
        pattern = setting.response_pattern.text
        if not found:
            return False, Message("response_pattern.absent", pattern=pattern), None
        reasons.append(Message("response_pattern.present", pattern=pattern))
    if setting.condition_code is not None or setting.condition_pattern is not None:
        holds, why = _condition(
            setting.condition_code, setting.condition_pattern, env, deadline, loop
        )
        if not holds:
            return False, Message("condition", why=why), None
        reasons.append(Message("condition", why=why))
    extraction = None
    if setting.extractor is not None:
        outcome = _extract(setting.extractor, result, deadline, loop.time())
        if isinstance(outcome, Message):
            return False, Message("extraction.failed", detail=outcome), None
        if not outcome.matched:
            return False, Message("extraction.empty"), None
        extraction = outcome
        reasons.append(Message("extraction.found", found=_describe(outcome)))
    return True, joined(*reasons), extraction


def _describe(extraction: Extraction) -> str | Message:
    if extraction.named:
        return ", ".join(f"{k}={v!r}" for k, v in extraction.named.items())
    found = ", ".join(f"CODE{i}={v!r}" for i, v in enumerate(extraction.groups, 1))
    return found or Message("extraction.a_match")


def _answer_variables(run: IvrRun) -> dict[str, str]:
    """What the requests extracted, by bare name (``NAME``)."""
    return {name[len("RESPONSE_") :]: value for name, value in run.stored.items()}


def _answer(
    call_id: str,
    outcome: str,
    priority: int | None,
    behaviour: CompiledBehaviour,
    env: _Env,
    variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "outcome": outcome,
        "matched_priority": priority,
        "guidance": _guidance(behaviour, env),
        "transfer": _transfer(behaviour, env),
        "variables": variables or {},
    }


def _guidance(behaviour: CompiledBehaviour, env: _Env) -> dict[str, str] | None:
    if behaviour.guidance_type == "tts" and behaviour.tts is not None:
        return {"type": "tts", "text": _plain(behaviour.tts, env)}
    if behaviour.guidance_type == "audio" and behaviour.audio_file:
        return {"type": "audio", "file": behaviour.audio_file}
    return None


def _transfer(behaviour: CompiledBehaviour, env: _Env) -> dict[str, str]:
    if behaviour.transfer_target is None:
        return {"kind": behaviour.transfer_kind}
    target = _plain(behaviour.transfer_target, env).strip()
    if not target:
        # A target taken from a value that came back empty: the PBX still gets a usable
        # answer, its normal end-of-IVR routing.
        return {"kind": "end_rule"}
    return {"kind": behaviour.transfer_kind, "target": target}


def _plain(template: CompiledTemplate, env: _Env) -> str:
    try:
        return template.expand(env.values, system_urls=env.system_urls, now=env.now, tz=env.tz)
    except TemplateExpansionError:
        return ""
