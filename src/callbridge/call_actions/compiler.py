"""Compile a rule's texts once (templates and patterns), collecting every error and
warning with its field and position; the engine and the save path share this."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Finding:
    field: str
    message: str
    position: int | None = None
    severity: str = "error"

    def as_warning(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "position": self.position}


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
        findings.append(
            Finding(
                "url",
                "The URL must start with http://, https://, {OAUTH_INSTANCE_URL} or {SVADDR}.",
                0,
            )
        )
    oauth_ref = OAUTH_URL_RE.search(url_text)
    if oauth_ref and auth_type != "oauth":
        findings.append(
            Finding(
                "url",
                f"{oauth_ref.group()} is the instance URL of the rule's OAuth account: "
                "choose the OAuth authentication type and an account.",
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
        findings.append(
            Finding(
                "body", f"A {method} request carries no body: this body is not sent.", 0, "warning"
            )
        )
        send_body = False
    if body_text.strip():
        if content_type is None and body_text.lstrip().startswith(("{", "[")):
            implied = "application/json"
            findings.append(
                Finding(
                    "headers",
                    "No Content-Type header: the body looks like JSON, so it is sent "
                    "as Content-Type: application/json.",
                    None,
                    "warning",
                )
            )
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
        findings.append(Finding("oauth_account_id", "Choose the OAuth account of this rule."))
    if auth_type == "basic" and not str(values.get("basic_username") or "").strip():
        findings.append(Finding("basic_username", "Basic authentication needs a username."))

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
        findings.extend(Finding(name, p.message, p.position, p.severity) for p in exc.problems)
        return None
    for problem in (*compiled.normalisations, *compiled.hints):
        findings.append(Finding(name, problem.message, problem.position, "warning"))
    return compiled


def _from_problems(name: str, text: str, problems: list[Problem]) -> list[Finding]:
    found = []
    for problem in problems:
        message = problem.message
        severity = problem.severity
        if problem.code == "unknown_variable":
            # Other upper-case names are the PBX's own variables (variables[NAME] of the
            # event); one that looks like a misspelt built-in is an error.
            ref = VARIABLE_REF_RE.match(text, problem.position)
            if "Did you mean" in message or ref is None:
                severity = "error"
            else:
                variable = ref.group(1)
                message = (
                    f"{{{variable}}} is not a built-in variable: it expands to the "
                    f"value the PBX sends as variables[{variable}], empty without it."
                )
        elif problem.code == "unknown_response_variable":
            ref = RESPONSE_REF_RE.match(text, problem.position)
            label = f"{{{ref.group(1)}}}" if ref else "This variable"
            message = (
                f"{label} is not produced by any earlier rule: it expands to an "
                "empty string unless an IVR of the call extracts it."
            )
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
                Finding(
                    "headers",
                    "This Authorization header is replaced by the rule's authentication type.",
                    start,
                    "warning",
                )
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
