"""Compile the texts of a request an admin wrote once (templates and patterns),
collecting every error and warning with its field and position. Save paths (validation)
and run paths (execution) of every feature share it.

What the templates may use depends on the caller: a call-action rule sees any PBX
variable of the event and the ``RESPONSE_`` names of earlier rules; an IVR sees
``{DIGITS}``, the PBX variables it declares and the names of its earlier requests. The
caller says so with a :class:`Scope`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from callbridge.messages import Message, define
from callbridge.outbound import NO_AUTH, Auth, BasicAuth, BearerAuth, OAuthAuth
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

URL_START_RE = re.compile(
    r"\s*(?:https?://|[{<](?:OAUTH_INSTANCE_URL|SFAPI|SVADDR)[}>])", re.IGNORECASE
)
OAUTH_URL_RE = re.compile(r"[{<](?:OAUTH_INSTANCE_URL|SFAPI)[}>]")
RESPONSE_REF_RE = re.compile(r"[{<](RESPONSE_[A-Z0-9_]+)[}>]")
VARIABLE_REF_RE = re.compile(r"[{<]([A-Z][A-Z0-9_]*)[}>]")
CODE_REF_RE = re.compile(r"[{<]CODE(\d+)[}>]")
BODYLESS_METHODS = frozenset({"GET", "DELETE"})
INSTANCE_URL_NAMES = frozenset({"OAUTH_INSTANCE_URL", "SFAPI"})

Extractor = CompiledPattern | JSONPathExtractions

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


class RequestInvalid(Exception):
    """The request (or the configuration holding it) cannot be saved or run;
    ``findings`` holds every error."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f"{f.field}: {f.message}" for f in findings))
        self.findings = findings


@dataclass(frozen=True)
class Scope:
    """What the caller's context makes available to a request, and which messages name
    the thing that holds the request."""

    # What holds the request ("rule", "ivr"): the suffix of the messages naming it.
    kind: str
    # Names valid besides the built-ins: {DIGITS}, declared PBX variables, CODE1…
    names: frozenset[str] = frozenset()
    # Bare names (without RESPONSE_) earlier requests extract; None skips the check.
    responses: frozenset[str] | None = None
    # Any other upper-case {NAME} is a variable the PBX sends with the event.
    open_variables: bool = False
    # Groups of the extraction a CODEn reference reads (None: no CODEn here).
    code_count: int | None = None
    # Where an authentication finding points (a field as a whole: None; IVRs answer 0).
    auth_position: int | None = None

    def widened(
        self,
        *,
        responses: Iterable[str] = (),
        names: Iterable[str] = (),
        code_count: int | None = None,
    ) -> Scope:
        """This scope plus names made available by earlier requests or an extraction."""
        return replace(
            self,
            names=self.names | frozenset(names),
            responses=self.responses | frozenset(responses) if self.responses is not None else None,
            code_count=code_count,
        )


@dataclass(frozen=True)
class CompiledRequest:
    """Everything needed to send a request without parsing anything again."""

    name: str
    method: str
    url: CompiledTemplate
    headers: CompiledTemplate | None
    body: CompiledTemplate | None
    # A body the method does not carry is compiled (so its faults show) but not sent.
    send_body: bool
    implied_content_type: str | None
    condition_code: CompiledTemplate | None
    condition_pattern: CompiledPattern | None
    extractor: Extractor | None
    json_extractions: JSONPathExtractions | None
    auth: Auth
    produces: tuple[str, ...]

    @property
    def uses_instance_url(self) -> bool:
        return bool(INSTANCE_URL_NAMES & self.url.variables)

    @property
    def account_id(self) -> int | None:
        return self.auth.account_id if isinstance(self.auth, OAuthAuth) else None

    @property
    def has_condition(self) -> bool:
        return self.condition_code is not None or self.condition_pattern is not None

    @property
    def extractors(self) -> tuple[Extractor, ...]:
        return tuple(e for e in (self.extractor, self.json_extractions) if e is not None)

    @property
    def templates(self) -> tuple[CompiledTemplate, ...]:
        return tuple(
            t for t in (self.url, self.headers, self.body, self.condition_code) if t is not None
        )


def content_type_of(headers: str) -> str | None:
    for line in headers.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "content-type":
            return value.strip()
    return None


def produced_names(*texts: str) -> tuple[str, ...]:
    """The variable names (without ``RESPONSE_``) extraction fields produce; an invalid
    one produces none."""
    names: list[str] = []
    for text in texts:
        if not text.strip():
            continue
        try:
            names.extend(compile_extractor(text).group_names)
        except PatternError:
            continue
    return tuple(dict.fromkeys(names))


def bare(name: str) -> str:
    return name[len("RESPONSE_") :] if name.startswith("RESPONSE_") else name


class RequestCompiler:
    """Collects findings while compiling the texts of one configuration (a rule, an IVR
    with its steps and response settings)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.findings: list[Finding] = []
        self.templates: list[CompiledTemplate] = []

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "error"]

    def error(self, where: str, message: Message, position: int | None = 0) -> None:
        self.findings.append(Finding(where, message, position))

    def warn(self, where: str, message: Message, position: int | None = 0) -> None:
        self.findings.append(Finding(where, message, position, "warning"))

    # -- texts --

    def template(
        self, where: str, text: str, context: Context, scope: Scope | None = None
    ) -> CompiledTemplate | None:
        scope = scope or self.scope
        try:
            compiled = compile_template(
                text,
                context,
                response_names=scope.responses,
                extra_names=scope.names,
                unknown_names="warning" if scope.open_variables else "error",
            )
        except TemplateError as exc:
            self.findings.extend(_from_problems(where, text, exc.problems, scope))
            return None
        self.findings.extend(_from_problems(where, text, compiled.notices, scope))
        self.templates.append(compiled)
        return compiled

    def pattern(self, where: str, text: str) -> CompiledPattern | None:
        compiled: CompiledPattern | None = self._compile(where, text, compile_pattern)
        return compiled

    def extractor(self, where: str, text: str) -> Extractor | None:
        compiled: Extractor | None = self._compile(where, text, compile_extractor)
        return compiled

    def json_extractions(self, where: str, text: str) -> JSONPathExtractions | None:
        compiled: JSONPathExtractions | None = self._compile(
            where, text, compile_jsonpath_extractions
        )
        return compiled

    def _compile(self, where: str, text: str, compile_: Any) -> Any:
        if not text.strip():
            return None
        try:
            compiled = compile_(text)
        except PatternError as exc:
            self.findings.extend(
                Finding(where, p.msg, p.position, p.severity) for p in exc.problems
            )
            return None
        self.notices(where, compiled.normalisations, compiled.hints)
        return compiled

    def notices(self, where: str, *groups: Sequence[Problem]) -> None:
        for group in groups:
            for problem in group:
                self.warn(where, problem.msg, problem.position)

    # -- authentication --

    def auth(
        self,
        prefix: str,
        auth_type: str,
        account_id: Any,
        basic_username: str,
        secrets: Mapping[str, str | None] | None,
    ) -> Auth:
        """The request's authentication; ``secrets`` (decrypted) only where it is run —
        at save time they are write-only and checked by :func:`secret_errors`."""
        if auth_type == "oauth":
            if not account_id:
                self.error(
                    f"{prefix}oauth_account_id",
                    Message(f"choose_account.{self.scope.kind}"),
                    self.scope.auth_position,
                )
                return NO_AUTH
            return OAuthAuth(int(account_id))
        if auth_type == "basic":
            if not basic_username.strip():
                self.error(
                    "basic_username",
                    Message("basic_username_missing"),
                    self.scope.auth_position,
                )
            password = (secrets or {}).get("basic_password") or ""
            return BasicAuth(basic_username.strip(), password)
        if auth_type == "bearer":
            token = (secrets or {}).get("bearer_token")
            if token:
                return BearerAuth(token)
            if secrets is not None:
                self.warn("bearer_token", Message("bearer_token_missing.run"))
        return NO_AUTH

    # -- the request --

    def request(
        self,
        values: Mapping[str, Any],
        *,
        name: str = "",
        prefix: str = "",
        auth: Auth = NO_AUTH,
        auth_type: str = "none",
        scope: Scope | None = None,
    ) -> CompiledRequest | None:
        """Compile one request's fields (``url``, ``method``, ``headers``, ``body``,
        ``condition_code``/``condition_pattern``, ``extract_pattern``, ``json_extractions``);
        findings are named ``prefix + field``. None when the URL does not compile."""
        scope = scope or self.scope
        method = str(values.get("method") or "GET").upper()
        url_text = str(values.get("url") or "")
        headers_text = str(values.get("headers") or "")
        body_text = str(values.get("body") or "")

        url = self.template(f"{prefix}url", url_text, Context.URL, scope)
        if url_text.strip() and not URL_START_RE.match(url_text):
            self.error(f"{prefix}url", Message("url_start"))
        oauth_ref = OAUTH_URL_RE.search(url_text)
        if oauth_ref and auth_type != "oauth":
            self.error(
                f"{prefix}url",
                Message(f"instance_url_without_oauth.{scope.kind}", variable=oauth_ref.group()),
                oauth_ref.start(),
            )

        headers = None
        if headers_text.strip():
            self._header_lines(f"{prefix}headers", headers_text, auth_type, scope)
            headers = self.template(f"{prefix}headers", headers_text, Context.HEADER, scope)

        content_type = content_type_of(headers_text)
        implied: str | None = None
        body = None
        send_body = bool(body_text.strip())
        if send_body and method in BODYLESS_METHODS:
            self.warn(f"{prefix}body", Message("body_not_sent", method=method))
            send_body = False
        if send_body and content_type is None and body_text.lstrip().startswith(("{", "[")):
            implied = "application/json"
            self.warn(
                f"{prefix}headers",
                Message("content_type_implied"),
                None,
            )
        if body_text.strip():
            context = body_context_for(content_type or implied)
            body = self.template(f"{prefix}body", body_text, context, scope)

        condition_code = None
        code_text = str(values.get("condition_code") or "")
        if code_text.strip():
            condition_code = self.template(
                f"{prefix}condition_code", code_text, Context.PLAIN, scope
            )
        condition_pattern = self.pattern(
            f"{prefix}condition_pattern", str(values.get("condition_pattern") or "")
        )
        extractor = self.extractor(
            f"{prefix}extract_pattern", str(values.get("extract_pattern") or "")
        )
        json_extractions = self.json_extractions(
            f"{prefix}json_extractions", str(values.get("json_extractions") or "")
        )
        if url is None:
            return None
        produces: list[str] = []
        for source in (extractor, json_extractions):
            if source is not None:
                produces.extend(source.group_names)
        return CompiledRequest(
            name=name,
            method=method,
            url=url,
            headers=headers,
            body=body,
            send_body=send_body,
            implied_content_type=implied,
            condition_code=condition_code,
            condition_pattern=condition_pattern,
            extractor=extractor,
            json_extractions=json_extractions,
            auth=auth,
            produces=tuple(dict.fromkeys(produces)),
        )

    def _header_lines(self, where: str, text: str, auth_type: str, scope: Scope) -> None:
        """Hints about the header lines; their shape ('Name: value', a valid name) is the
        template compiler's check, reported once."""
        offset = 0
        for line in text.split("\n"):
            start = offset
            offset += len(line) + 1
            name, colon, _value = line.partition(":")
            if colon and name.strip().lower() == "authorization" and auth_type != "none":
                self.warn(
                    where,
                    Message(f"authorization_replaced.{scope.kind}"),
                    start,
                )


def compile_request(
    values: Mapping[str, Any],
    scope: Scope,
    *,
    secrets: Mapping[str, str | None] | None = None,
) -> tuple[CompiledRequest, list[Finding]]:
    """Compile a stand-alone request with its own authentication (``auth_type``,
    ``oauth_account_id``, ``basic_username``); raises :class:`RequestInvalid` with every
    error, else returns the request and its warnings."""
    compiler = RequestCompiler(scope)
    auth_type = str(values.get("auth_type") or "none")
    auth = compiler.auth(
        "",
        auth_type,
        values.get("oauth_account_id"),
        str(values.get("basic_username") or ""),
        secrets,
    )
    compiled = compiler.request(values, auth=auth, auth_type=auth_type)
    if compiler.errors or compiled is None:
        raise RequestInvalid(compiler.errors)
    return compiled, compiler.warnings


def secret_errors(
    auth_types: Collection[str | None], secrets_set: Mapping[str, bool]
) -> list[Finding]:
    """A basic or bearer authentication saved without its password or token."""
    found = []
    if "bearer" in auth_types and not secrets_set.get("bearer_token"):
        found.append(Finding("bearer_token", Message("bearer_token_missing")))
    if "basic" in auth_types and not secrets_set.get("basic_password"):
        found.append(Finding("basic_password", Message("basic_password_missing")))
    return found


def _from_problems(
    where: str, text: str, problems: Iterable[Problem], scope: Scope
) -> list[Finding]:
    found = []
    for problem in problems:
        message = problem.msg
        severity = problem.severity
        if problem.code == "unknown_variable":
            code = CODE_REF_RE.match(text, problem.position)
            ref = VARIABLE_REF_RE.match(text, problem.position)
            if scope.code_count is not None and code:
                message = Message(
                    "code_unavailable", variable=f"{{CODE{code.group(1)}}}", count=scope.code_count
                )
            elif scope.open_variables:
                # Other upper-case names are the PBX's own variables (variables[NAME] of
                # the event); one that looks like a misspelt built-in is an error.
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
            message = Message(f"unknown_response_variable.{scope.kind}", variable=label)
        found.append(Finding(where, message, problem.position, severity))
    return found
