"""Parse template text into nodes (literal text, variable references, function calls).

Parsing knows nothing about where the result goes; the context compilers in
``contexts.py`` decide how each node is escaped. Every problem is collected with its
position instead of stopping at the first one, so an admin sees them all at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from callbridge.messages import Message, define
from callbridge.templating.functions import FUNCTIONS
from callbridge.templating.names import (
    BUILTIN_NAMES,
    CRM_VALUE_NAMES,
    FUNCTION_NAMES,
    REFUSED_NAMES,
    RESPONSE_PREFIX,
    is_variable_name,
)
from callbridge.templating.problems import Problem, Severity

# Functions whose result does not depend on the expansion environment; with only literal
# text inside they are computed once at compile time.
_PURE_FUNCTIONS = frozenset({"MD5", "SHA256", "LOWERCASE", "UPPERCASE", "DIGITS"})


@dataclass(slots=True)
class Literal:
    """Text written by the admin. ``exact`` is False for text computed at compile time."""

    text: str
    start: int
    exact: bool = True


@dataclass(slots=True)
class Ref:
    """A variable reference such as ``{TEL}`` or ``<TEL>``, spanning ``start:end``."""

    name: str
    start: int
    end: int


@dataclass(slots=True)
class Call:
    """A function call such as ``MD5({TEL})``; ``args`` is the parsed inside."""

    name: str
    args: list[Node]
    start: int
    end: int


Node = Literal | Ref | Call

_TOKEN_RE = re.compile(
    r"""
      \{(?P<brace>[A-Z][A-Z0-9_]*(?:-[A-Z0-9]+)?)\}
    | <(?P<angle>[A-Z][A-Z0-9_]*(?:-[A-Z0-9]+)?)>
    | \{(?P<lower>[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9]+)?)\}
    | (?<![A-Za-z0-9_])(?P<word>[A-Za-z][A-Za-z0-9_]*)\(
    | (?P<open>\()
    | (?P<close>\))
    """,
    re.VERBOSE,
)
_UNCLOSED_RE = re.compile(r"\{([A-Z][A-Z0-9_]*(?:-[A-Z0-9]+)?)(?![A-Z0-9_}-])")
_UPPER_WORD_RE = re.compile(r"[A-Z][A-Z0-9_]*")

define(
    {
        "lowercase_variable": (
            "{token} is kept as literal text: variable names are upper-case "
            "(did you mean {suggestion}?)."
        ),
        "function_case": (
            "{name}( is kept as literal text: functions are written in upper case ({upper}(…))."
        ),
        "unbalanced_parenthesis": "{name}( has no closing parenthesis.",
        "unclosed_variable": "{token} has no closing brace and is kept as literal text.",
        "unknown_function": "Unknown function {name}(); the functions are {known}.",
        "unknown_response_variable": (
            "No earlier step extracts {name}, so {variable} will expand to an empty string."
        ),
        "unknown_variable": "Unknown variable {variable}.",
        "did_you_mean": "Did you mean {suggestion}?",
        "crm_value_name": (
            "Values found in CRM responses are written {variable} "
            "(in an IVR's own guidance, with the names its patterns define)."
        ),
        "unknown_angle_variable": (
            "{token} is not a known variable and is kept as literal text "
            "(did you mean {suggestion}?)."
        ),
    }
)


@dataclass
class NameScope:
    """Which variable names a template may use, and how strictly unknown ones are judged."""

    extra_names: frozenset[str] = frozenset()
    response_names: frozenset[str] | None = None
    unknown_severity: Severity = "error"

    @classmethod
    def build(
        cls,
        extra_names: Collection[str] = (),
        response_names: Collection[str] | None = None,
        unknown_severity: Severity = "error",
    ) -> NameScope:
        producible: frozenset[str] | None = None
        if response_names is not None:
            producible = frozenset(
                n[len(RESPONSE_PREFIX) :] if n.startswith(RESPONSE_PREFIX) else n
                for n in response_names
            )
        return cls(frozenset(extra_names), producible, unknown_severity)

    def is_known(self, name: str) -> bool:
        if name in BUILTIN_NAMES or name in self.extra_names:
            return True
        return name.startswith(RESPONSE_PREFIX) and is_variable_name(name[len(RESPONSE_PREFIX) :])

    def candidates(self) -> list[str]:
        return sorted(BUILTIN_NAMES | self.extra_names)


@dataclass
class _Frame:
    kind: str  # "root", "function" or "literal" (a WORD( that is not a function)
    name: str
    start: int
    nodes: list[Node] = field(default_factory=list)
    depth: int = 0
    pending: list[str] = field(default_factory=list)
    pending_start: int = 0

    def add_text(self, text: str, start: int) -> None:
        if not text:
            return
        if not self.pending:
            self.pending_start = start
        self.pending.append(text)

    def flush(self) -> None:
        if self.pending:
            self.nodes.append(Literal("".join(self.pending), self.pending_start))
            self.pending = []

    def add_node(self, node: Node) -> None:
        if isinstance(node, Literal) and node.exact:
            self.add_text(node.text, node.start)
            return
        self.flush()
        self.nodes.append(node)

    def finish(self) -> list[Node]:
        self.flush()
        return self.nodes


def parse_template(
    text: str, scope: NameScope, *, angle_refs: bool = True
) -> tuple[list[Node], list[Problem]]:
    """Split ``text`` into nodes and report every problem found (errors and warnings)."""
    problems: list[Problem] = []
    stack: list[_Frame] = [_Frame("root", "", 0)]
    pos = 0
    for match in _TOKEN_RE.finditer(text):
        frame = stack[-1]
        frame.add_text(text[pos : match.start()], pos)
        pos = match.end()
        kind = match.lastgroup
        token = match.group()
        if kind == "brace":
            name = match.group("brace")
            _check_name(name, match.start(), scope, problems)
            frame.add_node(Ref(name, match.start(), match.end()))
        elif kind == "angle":
            name = match.group("angle")
            if angle_refs and (scope.is_known(name) or name in REFUSED_NAMES):
                _check_name(name, match.start(), scope, problems)
                frame.add_node(Ref(name, match.start(), match.end()))
            else:
                if angle_refs:
                    _suggest_literal(token, name, match.start(), scope, problems)
                frame.add_text(token, match.start())
        elif kind == "lower":
            name = match.group("lower")
            if scope.is_known(name.upper()):
                problems.append(
                    Problem(
                        Message(
                            "lowercase_variable", token=token, suggestion=f"{{{name.upper()}}}"
                        ),
                        match.start(),
                        "warning",
                    )
                )
            frame.add_text(token, match.start())
        elif kind == "word":
            name = match.group("word")
            if name in FUNCTIONS:
                stack.append(_Frame("function", name, match.start()))
            else:
                if name.upper() in FUNCTIONS:
                    problems.append(
                        Problem(
                            Message("function_case", name=name, upper=name.upper()),
                            match.start(),
                            "warning",
                        )
                    )
                stack.append(_Frame("literal", name, match.start()))
        elif kind == "open":
            frame.depth += 1
            frame.add_text(token, match.start())
        else:  # close
            if frame.depth > 0 or frame.kind == "root":
                frame.depth = max(frame.depth - 1, 0)
                frame.add_text(token, match.start())
            else:
                stack.pop()
                _close_frame(frame, stack[-1], match.start(), problems)
    stack[-1].add_text(text[pos:], pos)
    while len(stack) > 1:
        frame = stack.pop()
        if frame.kind == "function":
            problems.append(
                Problem(Message("unbalanced_parenthesis", name=frame.name), frame.start)
            )
        _flatten(frame, stack[-1], None)
    for match in _UNCLOSED_RE.finditer(text):
        if scope.is_known(match.group(1)):
            problems.append(
                Problem(
                    Message("unclosed_variable", token=f"{{{match.group(1)}"),
                    match.start(),
                    "warning",
                )
            )
    return stack[0].finish(), problems


def _close_frame(frame: _Frame, parent: _Frame, close: int, problems: list[Problem]) -> None:
    if frame.kind == "function":
        args = frame.finish()
        call = Call(frame.name, args, frame.start, close + 1)
        parent.add_node(_fold(call))
        return
    inner = [n for n in frame.finish() if not (isinstance(n, Literal) and not n.text.strip())]
    if (
        _UPPER_WORD_RE.fullmatch(frame.name)
        and len(inner) == 1
        and isinstance(inner[0], Ref | Call)
    ):
        known = ", ".join(f"{n}()" for n in FUNCTION_NAMES)
        problems.append(
            Problem(Message("unknown_function", name=frame.name, known=known), frame.start)
        )
    _flatten(frame, parent, close)


def _flatten(frame: _Frame, parent: _Frame, close: int | None) -> None:
    """Put a frame back as literal text around its nodes (a WORD( that is not a function)."""
    parent.add_text(f"{frame.name}(", frame.start)
    for node in frame.finish():
        parent.add_node(node)
    if close is not None:
        parent.add_text(")", close)


def _fold(call: Call) -> Node:
    """Compute a pure function of literal text once, at compile time."""
    if call.name in _PURE_FUNCTIONS and all(isinstance(a, Literal) for a in call.args):
        inner = "".join(a.text for a in call.args if isinstance(a, Literal))
        return Literal(FUNCTIONS[call.name](inner, ""), call.start, exact=False)
    return call


def _check_name(name: str, position: int, scope: NameScope, problems: list[Problem]) -> None:
    if name in REFUSED_NAMES:
        problems.append(Problem(Message(REFUSED_NAMES[name], variable=f"{{{name}}}"), position))
        return
    if scope.is_known(name):
        if (
            name.startswith(RESPONSE_PREFIX)
            and scope.response_names is not None
            and name[len(RESPONSE_PREFIX) :] not in scope.response_names
        ):
            problems.append(
                Problem(
                    Message(
                        "unknown_response_variable",
                        name=name[len(RESPONSE_PREFIX) :],
                        variable=f"{{{name}}}",
                    ),
                    position,
                    "warning",
                )
            )
        return
    message = Message("unknown_variable", variable=f"{{{name}}}")
    close = difflib.get_close_matches(name, scope.candidates(), n=1, cutoff=0.6)
    if close:
        message = message.then(Message("did_you_mean", suggestion=f"{{{close[0]}}}"))
    if name in CRM_VALUE_NAMES:
        message = message.then(Message("crm_value_name", variable=f"{{RESPONSE_{name}}}"))
    problems.append(Problem(message, position, scope.unknown_severity))


def _suggest_literal(
    token: str, name: str, position: int, scope: NameScope, problems: list[Problem]
) -> None:
    close = difflib.get_close_matches(name, scope.candidates(), n=1, cutoff=0.8)
    if close:
        problems.append(
            Problem(
                Message("unknown_angle_variable", token=token, suggestion=f"<{close[0]}>"),
                position,
                "warning",
            )
        )


def iter_refs(nodes: list[Node]) -> list[Ref]:
    """Every variable reference, including those inside function calls, in order."""
    found: list[Ref] = []
    for node in nodes:
        if isinstance(node, Ref):
            found.append(node)
        elif isinstance(node, Call):
            found.extend(iter_refs(node.args))
    return found
