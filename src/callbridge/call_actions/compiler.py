"""Compile a rule's texts once (templates and patterns), collecting every error and
warning with its field and position; the engine and the save path share this."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from callbridge.messages import Message, define
from callbridge.patterns import (
    CompiledPattern,
    JSONPathExtractions,
    PatternError,
    compile_extractor,
    compile_jsonpath_extractions,
    compile_pattern,
)
from callbridge.templating import (
    CompiledTemplate,
    Context,
    Problem,
    TemplateError,
    body_context_for,
    compile_template,
)

EVENT_RANK = {"incoming": 0, "outgoing": 0, "queue": 1, "answer": 2, "disconnect": 3}
URL_START_RE = re.compile(
    r"\s*(?:https?://|[{<](?:OAUTH_INSTANCE_URL|SFAPI|SVADDR)[}>])", re.IGNORECASE
)
OAUTH_URL_RE = re.compile(r"[{<](?:OAUTH_INSTANCE_URL|SFAPI)[}>]")
RESPONSE_REF_RE = re.compile(r"[{<](RESPONSE_[A-Z0-9_]+)[}>]")
VARIABLE_REF_RE = re.compile(r"[{<]([A-Z][A-Z0-9_]*)[}>]")
BODYLESS_METHODS = frozenset({"GET", "DELETE"})


# Messages that name what holds the request end in the scope's kind (".rule", ".ivr").
define(
    {
        "choose_account.rule": "Choose the OAuth account of this rule.",
        "choose_account.ivr": "Choose the OAuth account of this IVR.",
        "instance_url_without_oauth.rule": (
            "{variable} is the instance URL of the rule's OAuth account: choose the OAuth "
            "authentication type and an account."
        ),
        "instance_url_without_oauth.ivr": (
            "{variable} is the instance URL of the OAuth account: choose the OAuth "
            "authentication type and an account."
        ),
        "authorization_replaced.rule": (
            "This Authorization header is replaced by the rule's authentication type."
        ),
        "authorization_replaced.ivr": (
            "This Authorization header is replaced by the authentication type."
        ),
        "unknown_response_variable.rule": (
            "{variable} is not produced by any earlier rule: it expands to an empty string "
            "unless an IVR of the call extracts it."
        ),
        "unknown_response_variable.ivr": (
            "{variable} is extracted neither by an earlier request of this IVR nor by a "
            "call-action rule: it expands to an empty string unless the call has it."
        ),
        "unknown_response_variable.this": "This variable",
        "basic_username_missing": "Basic authentication needs a username.",
        "empty_word": "「{word}」 (none) was read as empty.",
        "account_unknown": "OAuth account {id} does not exist.",
        "bearer_token_missing.run": "Bearer authentication without a token: none is sent.",
        "bearer_token_missing": "Bearer authentication needs a token.",
        "basic_password_missing": "Basic authentication needs a password.",
        "url_start": "The URL must start with http://, https://, {OAUTH_INSTANCE_URL} or {SVADDR}.",
        "body_not_sent": "A {method} request carries no body: this body is not sent.",
        "content_type_implied": (
            "No Content-Type header: the body looks like JSON, so it is sent as "
            "Content-Type: application/json."
        ),
        "header_line.syntax": (
            "Each line must read 'Name: value' (a header name is letters, digits and - only)."
        ),
        "code_unavailable": (
            "{variable} is not available: this setting's extraction pattern has {count} group(s)."
        ),
        "pbx_variable": (
            "{variable} is not a built-in variable: it expands to the value the PBX sends as "
            "variables[{name}], empty without it."
        ),
    }
)


@dataclass
class Finding:
    """One error or warning about a field (``url``, ``steps.0.body``…) at a position;
    ``said`` is the catalogue message (``callbridge.messages``)."""

    field: str
    said: Message
    position: int | None = None
    severity: str = "error"

    @property
    def message(self) -> str:
        """The English text (the API's)."""
        return self.said.text

    @property
    def code(self) -> str:
        return self.said.code

    def as_warning(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "message": self.message,
            "position": self.position,
            "code": self.code,
            "msg": self.said.to_json(),
        }


@dataclass
class CompiledRule:
    """Everything the engine needs to run a rule without parsing anything again."""

    url: CompiledTemplate
    headers: CompiledTemplate | None
    body: CompiledTemplate | None
    condition_code: CompiledTemplate | None
    condition_pattern: CompiledPattern | None
    extractor: CompiledPattern | JSONPathExtractions | None
    json_extractions: JSONPathExtractions | None
    implied_content_type: str | None
    send_body: bool
    produces: tuple[str, ...]
    warnings: list[Finding] = field(default_factory=list)

    @property
    def uses_instance_url(self) -> bool:
        return bool({"OAUTH_INSTANCE_URL", "SFAPI"} & self.url.variables)


class RuleInvalid(Exception):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f"{f.field}: {f.message}" for f in findings))
        self.findings = findings


def produced_names(extract_pattern: str, json_extractions: str) -> tuple[str, ...]:
    """The variable names (without ``RESPONSE_``) a rule extracts; empty when invalid."""
    names: list[str] = []
    for text, compile_ in (
        (extract_pattern, compile_extractor),
        (json_extractions, compile_jsonpath_extractions),
    ):
        if not text.strip():
            continue
        try:
            names.extend(compile_(text).group_names)
        except PatternError:
            continue
    return tuple(dict.fromkeys(names))


def content_type_of(headers: str) -> str | None:
    for line in headers.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "content-type":
            return value.strip()
    return None


def compile_rule(
    values: dict[str, Any],
    *,
    available_responses: Collection[str] | None,
) -> CompiledRule:
    """Compile ``values`` (the rule's fields); raises :class:`RuleInvalid` with every error.

    ``available_responses``: the names earlier rules (and IVRs) can extract; a
    ``{RESPONSE_X}`` outside it is a warning. ``None`` skips that check (at run time).
    """
    findings: list[Finding] = []
    method = str(values.get("method") or "GET")
    headers_text = str(values.get("headers") or "")
    body_text = str(values.get("body") or "")
    auth_type = str(values.get("auth_type") or "none")
    response_names = set(available_responses) if available_responses is not None else None

    def template(name: str, text: str, context: Context) -> CompiledTemplate | None:
        try:
            compiled = compile_template(
                text, context, response_names=response_names, unknown_names="warning"
            )
        except TemplateError as exc:
            findings.extend(_from_problems(name, text, exc.problems))
            return None
        findings.extend(_from_problems(name, text, compiled.notices))
        return compiled

    url_text = str(values.get("url") or "")
    url = template("url", url_text, Context.URL)
    if url_text.strip() and not URL_START_RE.match(url_text):
        findings.append(Finding("url", Message("url_start"), 0))
    oauth_ref = OAUTH_URL_RE.search(url_text)
    if oauth_ref and auth_type != "oauth":
        findings.append(
            Finding(
                "url",
                Message("instance_url_without_oauth.rule", variable=oauth_ref.group()),
                oauth_ref.start(),
            )
        )

    headers = None
    if headers_text.strip():
        findings.extend(_check_header_lines(headers_text, auth_type))
        headers = template("headers", headers_text, Context.HEADER)

    content_type = content_type_of(headers_text)
    implied: str | None = None
    body = None
    send_body = bool(body_text.strip())
    if send_body and method in BODYLESS_METHODS:
        findings.append(Finding("body", Message("body_not_sent", method=method), 0, "warning"))
        send_body = False
    if body_text.strip():
        if content_type is None and body_text.lstrip().startswith(("{", "[")):
            implied = "application/json"
            findings.append(Finding("headers", Message("content_type_implied"), None, "warning"))
        body = template("body", body_text, body_context_for(content_type or implied))

    condition_code = None
    code_text = str(values.get("condition_code") or "")
    if code_text.strip():
        condition_code = template("condition_code", code_text, Context.PLAIN)
    condition_pattern = _pattern(
        findings, "condition_pattern", str(values.get("condition_pattern") or ""), compile_pattern
    )
    extractor = _pattern(
        findings, "extract_pattern", str(values.get("extract_pattern") or ""), compile_extractor
    )
    json_extractions = _pattern(
        findings,
        "json_extractions",
        str(values.get("json_extractions") or ""),
        compile_jsonpath_extractions,
    )

    if auth_type == "oauth" and not values.get("oauth_account_id"):
        findings.append(Finding("oauth_account_id", Message("choose_account.rule")))
    if auth_type == "basic" and not str(values.get("basic_username") or "").strip():
        findings.append(Finding("basic_username", Message("basic_username_missing")))

    errors = [f for f in findings if f.severity == "error"]
    if errors or url is None:
        raise RuleInvalid(errors)
    produces: list[str] = []
    for source in (extractor, json_extractions):
        if source is not None:
            produces.extend(source.group_names)
    return CompiledRule(
        url=url,
        headers=headers,
        body=body,
        condition_code=condition_code,
        condition_pattern=condition_pattern,
        extractor=extractor,
        json_extractions=json_extractions,
        implied_content_type=implied,
        send_body=send_body,
        produces=tuple(dict.fromkeys(produces)),
        warnings=[f for f in findings if f.severity != "error"],
    )


def _pattern(findings: list[Finding], name: str, text: str, compile_: Any) -> Any:
    if not text.strip():
        return None
    try:
        compiled = compile_(text)
    except PatternError as exc:
        findings.extend(Finding(name, p.msg, p.position, p.severity) for p in exc.problems)
        return None
    for problem in (*compiled.normalisations, *compiled.hints):
        findings.append(Finding(name, problem.msg, problem.position, "warning"))
    return compiled


def _from_problems(name: str, text: str, problems: list[Problem]) -> list[Finding]:
    found = []
    for problem in problems:
        message = problem.msg
        severity = problem.severity
        if problem.code == "unknown_variable":
            # Other upper-case names are the PBX's own variables (variables[NAME] of the
            # event); one that looks like a misspelt built-in is an error.
            ref = VARIABLE_REF_RE.match(text, problem.position)
            if any(m.id == "did_you_mean" for m in problem.msg.more) or ref is None:
                severity = "error"
            else:
                variable = ref.group(1)
                message = Message("pbx_variable", variable=f"{{{variable}}}", name=variable)
        elif problem.code == "unknown_response_variable":
            ref = RESPONSE_REF_RE.match(text, problem.position)
            label: str | Message = (
                f"{{{ref.group(1)}}}" if ref else Message("unknown_response_variable.this")
            )
            message = Message("unknown_response_variable.rule", variable=label)
        found.append(Finding(name, message, problem.position, severity))
    return found


def _check_header_lines(text: str, auth_type: str) -> list[Finding]:
    """Hints about the header lines; their shape ('Name: value', a valid name) is the
    template compiler's check, reported once."""
    found = []
    offset = 0
    for line in text.split("\n"):
        start = offset
        offset += len(line) + 1
        name, colon, _value = line.partition(":")
        if colon and name.strip().lower() == "authorization" and auth_type != "none":
            found.append(
                Finding("headers", Message("authorization_replaced.rule"), start, "warning")
            )
    return found


def is_earlier(
    event: str,
    order: int,
    rule_id: int | None,
    other_event: str,
    other_order: int,
    other_id: int,
) -> bool:
    """Does the other rule run before this one within a call?"""
    rank, other_rank = EVENT_RANK.get(event, 0), EVENT_RANK.get(other_event, 0)
    if other_event != event:
        return other_rank < rank
    if rule_id is None:
        return other_order <= order
    return (other_order, other_id) < (order, rule_id)
