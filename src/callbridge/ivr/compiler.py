"""Compile an IVR once: every template and pattern of its request, steps, response
settings and special behaviours, with each error and warning tied to its field path and
position. The save path (validation) and the invoke path (execution) share it.

The IVR's own request and its steps are requests like any other
(``callbridge.requests``), compiled with what an invocation makes available: ``{DIGITS}``,
the PBX variables the IVR declares and the ``RESPONSE_`` names of earlier requests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from callbridge.messages import Message, define
from callbridge.outbound import Auth
from callbridge.patterns import CompiledPattern
from callbridge.requests import (
    CompiledRequest,
    Extractor,
    Finding,
    RequestCompiler,
    RequestInvalid,
    Scope,
    bare,
)
from callbridge.templating import CALL_NAMES, CompiledTemplate, Context

MAIN_STEP = "main"
DIGITS = "DIGITS"
# Call columns the invoke body does not carry: reading them needs the stored call.
STORED_CALL_NAMES = frozenset(CALL_NAMES - {"ID", "TEL", "TELNAME", "CALLED"})
IVR_SCOPE = Scope(kind="ivr", auth_position=0)

IvrInvalid = RequestInvalid


define(
    {
        "unknown_step": (
            "No step is called {name}: use 'main' (the IVR's own request), a step's name, or "
            "leave it empty for the last request."
        ),
        "no_responses": "No response settings yet: every answer is no_match until you add one.",
        "digits_pattern_unused": (
            "The maximum number of digits is 0 (no input), so this pattern is not used."
        ),
        "unreachable_priority": (
            "Priority {later} is never reached: priority {earlier} answers every '{code}' "
            "response before it (it has no pattern, condition or extraction)."
        ),
    }
)


@dataclass(frozen=True)
class CompiledBehaviour:
    """Guidance and transfer as configured; templates expanded per invocation."""

    guidance_type: str | None = None
    tts: CompiledTemplate | None = None
    audio_file: str | None = None
    transfer_kind: str = "end_rule"
    transfer_target: CompiledTemplate | None = None


END_RULE = CompiledBehaviour()


@dataclass(frozen=True)
class CompiledResponse:
    priority: int
    response_code: str
    response_pattern: CompiledPattern | None
    extractor: Extractor | None
    condition_code: CompiledTemplate | None
    condition_pattern: CompiledPattern | None
    # Index into CompiledIvr.requests; None = the last request sent.
    step_index: int | None
    step_name: str | None
    behaviour: CompiledBehaviour

    def code_matches(self, status: int) -> bool:
        return response_code_matches(self.response_code, status)


@dataclass(frozen=True)
class CompiledIvr:
    id: int
    key: str
    name: str
    revision: int
    timeout: float
    max_digits: int
    digits_pattern: CompiledPattern | None
    requests: tuple[CompiledRequest, ...]
    responses: tuple[CompiledResponse, ...]
    on_error: CompiledBehaviour
    on_input_invalid: CompiledBehaviour
    on_no_match: CompiledBehaviour | None
    pbx_variables: frozenset[str]
    # Some template reads a value only the stored call has (an earlier rule's
    # RESPONSE_ variable, QUEUE, UNIQUE_ID…): the invoke path then loads the call.
    needs_call_store: bool
    produces: tuple[str, ...]
    warnings: tuple[Finding, ...] = field(default=())


def response_code_matches(code: str, status: int) -> bool:
    """``*`` any, ``2xx`` a class, else the exact code."""
    if code == "*":
        return True
    if code.endswith("xx"):
        return str(status)[:1] == code[0]
    return str(status) == code


def _code_covers(outer: str, inner: str) -> bool:
    """Does every status matching ``inner`` also match ``outer``?"""
    if outer == "*":
        return True
    if inner == "*":
        return False
    if outer.endswith("xx"):
        return inner[0] == outer[0]
    return outer == inner


class _Compiler(RequestCompiler):
    def __init__(
        self,
        values: Mapping[str, Any],
        secrets: Mapping[str, str | None] | None,
        available_responses: Collection[str] | None,
    ) -> None:
        self.values = values
        self.secrets = secrets
        self.pbx_variables = frozenset(values.get("pbx_variables") or ())
        outside = (
            frozenset(bare(n) for n in available_responses)
            if available_responses is not None
            else None
        )
        super().__init__(replace(IVR_SCOPE, names=self.pbx_variables | {DIGITS}, responses=outside))

    def auth_for(self, where: str, auth_type: str, account_id: Any) -> Auth:
        return self.auth(
            where, auth_type, account_id, str(self.values.get("basic_username") or ""), self.secrets
        )

    # -- behaviours --

    def behaviour(
        self,
        prefix: str,
        guidance: Mapping[str, Any] | None,
        transfer: Mapping[str, Any] | None,
        scope: Scope,
    ) -> CompiledBehaviour:
        tts = None
        audio = None
        kind = None
        if guidance:
            kind = str(guidance.get("type"))
            if kind == "tts":
                tts = self.template(
                    f"{prefix}guidance.text",
                    str(guidance.get("text") or ""),
                    Context.PLAIN,
                    scope,
                )
            else:
                audio = str(guidance.get("file") or "")
        transfer = transfer or {}
        transfer_kind = str(transfer.get("kind") or "end_rule")
        target_text = str(transfer.get("target") or "")
        target = None
        if target_text:
            target = self.template(
                f"{prefix}transfer.target",
                target_text,
                Context.PLAIN,
                scope,
            )
        return CompiledBehaviour(kind, tts, audio, transfer_kind, target)


def compile_ivr(
    values: Mapping[str, Any],
    *,
    secrets: Mapping[str, str | None] | None = None,
    available_responses: Collection[str] | None = None,
) -> CompiledIvr:
    """Compile an IVR given by its API field values (``responses`` and ``steps`` as lists of
    dicts). ``secrets``: the decrypted ``basic_password``/``bearer_token``.
    ``available_responses``: names other features (call-action rules) extract, for the
    "not produced" warnings; ``None`` skips those warnings (at run time).

    Raises :class:`IvrInvalid` with every error; warnings are in ``CompiledIvr.warnings``.
    """
    c = _Compiler(values, secrets, available_responses)
    auth_type = str(values.get("auth_type") or "none")
    main_auth = c.auth_for("", auth_type, values.get("oauth_account_id"))
    produced: list[str] = []
    requests: list[CompiledRequest | None] = []
    main = c.request(values, name=MAIN_STEP, auth=main_auth, auth_type=auth_type)
    requests.append(main)
    if main is not None:
        produced.extend(main.produces)
    steps = list(values.get("steps") or [])
    step_index: dict[str, int] = {MAIN_STEP: 0}
    for index, step in enumerate(steps):
        prefix = f"steps.{index}."
        step_auth_type = step.get("auth_type")
        if step_auth_type is None:
            step_auth: Auth = main_auth
            effective_type = auth_type
        else:
            effective_type = str(step_auth_type)
            account = step.get("oauth_account_id") or values.get("oauth_account_id")
            step_auth = c.auth_for(prefix, effective_type, account)
        compiled = c.request(
            step,
            name=str(step["name"]),
            prefix=prefix,
            auth=step_auth,
            auth_type=effective_type,
            scope=c.scope.widened(responses=produced),
        )
        requests.append(compiled)
        step_index[str(step["name"]).lower()] = index + 1
        if compiled is not None:
            produced.extend(compiled.produces)
    request_names = tuple(dict.fromkeys(produced))

    responses: list[CompiledResponse] = []
    produces = list(request_names)
    settings = sorted(
        enumerate(values.get("responses") or []), key=lambda item: int(item[1]["priority"])
    )
    for index, setting in settings:
        prefix = f"responses.{index}."
        step_name = setting.get("step")
        target_index = None
        if step_name:
            target_index = step_index.get(str(step_name).lower())
            if target_index is None:
                c.error(f"{prefix}step", Message("unknown_step", name=repr(step_name)))
        response_pattern = c.pattern(
            f"{prefix}response_pattern", str(setting.get("response_pattern") or "")
        )
        extractor = c.extractor(
            f"{prefix}extract_pattern", str(setting.get("extract_pattern") or "")
        )
        names = tuple(extractor.group_names) if extractor is not None else ()
        produces.extend(names)
        code_count = _group_count(extractor)
        codes = [f"CODE{i}" for i in range(1, code_count + 1)]
        condition_code = None
        code_text = str(setting.get("condition_code") or "")
        if code_text.strip():
            condition_code = c.template(
                f"{prefix}condition_code",
                code_text,
                Context.PLAIN,
                c.scope.widened(responses=request_names),
            )
        condition_pattern = c.pattern(
            f"{prefix}condition_pattern", str(setting.get("condition_pattern") or "")
        )
        behaviour = c.behaviour(
            prefix,
            setting.get("guidance"),
            setting.get("transfer"),
            scope=c.scope.widened(
                responses=(*request_names, *names),
                names={*codes, *names},
                code_count=code_count,
            ),
        )
        responses.append(
            CompiledResponse(
                priority=int(setting["priority"]),
                response_code=str(setting.get("response_code") or "200"),
                response_pattern=response_pattern,
                extractor=extractor,
                condition_code=condition_code,
                condition_pattern=condition_pattern,
                step_index=target_index,
                step_name=str(step_name) if step_name else None,
                behaviour=behaviour,
            )
        )
    _unreachable_warnings(c, values.get("responses") or [], responses)
    if not responses:
        c.warn("responses", Message("no_responses"), None)

    on_error = _special(c, values, "on_error", request_names)
    on_input_invalid = _special(c, values, "on_input_invalid", ())
    on_no_match = (
        _special(c, values, "on_no_match", request_names) if values.get("on_no_match") else None
    )
    max_digits = int(values.get("max_digits") or 0)
    digits_pattern = c.pattern("digits_pattern", str(values.get("digits_pattern") or ""))
    if max_digits == 0 and digits_pattern is not None:
        c.warn("digits_pattern", Message("digits_pattern_unused"))

    errors = [f for f in c.findings if f.severity == "error"]
    if errors or any(r is None for r in requests):
        raise IvrInvalid(errors)
    compiled_requests = tuple(r for r in requests if r is not None)
    return CompiledIvr(
        id=int(values.get("id") or 0),
        key=str(values.get("key") or ""),
        name=str(values.get("name") or ""),
        revision=int(values.get("revision") or 0),
        timeout=float(values.get("timeout_seconds") or 10),
        max_digits=max_digits,
        digits_pattern=digits_pattern,
        requests=compiled_requests,
        responses=tuple(responses),
        on_error=on_error,
        on_input_invalid=on_input_invalid,
        on_no_match=on_no_match,
        pbx_variables=c.pbx_variables,
        needs_call_store=_needs_call_store(c.templates, set(produces)),
        produces=tuple(dict.fromkeys(produces)),
        warnings=tuple(f for f in c.findings if f.severity != "error"),
    )


def _special(
    c: _Compiler, values: Mapping[str, Any], name: str, own_names: Iterable[str]
) -> CompiledBehaviour:
    behaviour = values.get(name)
    if not behaviour:
        return END_RULE
    return c.behaviour(
        f"{name}.",
        behaviour.get("guidance"),
        behaviour.get("transfer"),
        scope=c.scope.widened(responses=own_names),
    )


def _group_count(extractor: Extractor | None) -> int:
    if extractor is None:
        return 0
    if isinstance(extractor, CompiledPattern):
        return extractor.group_count
    return len(extractor.group_names)


def _needs_call_store(templates: Iterable[CompiledTemplate], produced: set[str]) -> bool:
    for template in templates:
        for name in template.variables:
            if name in STORED_CALL_NAMES:
                return True
            if name.startswith("RESPONSE_") and bare(name) not in produced:
                return True
    return False


def _unreachable_warnings(
    c: _Compiler, raw: Sequence[Mapping[str, Any]], responses: Sequence[CompiledResponse]
) -> None:
    """A setting with no pattern, condition or extraction catches every response of its
    code: a later one for the same request and a narrower code is never reached."""
    index_of = {int(s["priority"]): i for i, s in enumerate(raw)}
    for position, earlier in enumerate(responses):
        if (
            earlier.response_pattern is not None
            or earlier.extractor is not None
            or earlier.condition_code is not None
            or earlier.condition_pattern is not None
        ):
            continue
        for later in responses[position + 1 :]:
            if later.step_index == earlier.step_index and _code_covers(
                earlier.response_code, later.response_code
            ):
                c.warn(
                    f"responses.{index_of.get(later.priority, 0)}.priority",
                    Message(
                        "unreachable_priority",
                        later=later.priority,
                        earlier=earlier.priority,
                        code=earlier.response_code,
                    ),
                    None,
                )
