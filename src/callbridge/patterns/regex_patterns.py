"""PCRE-style ``/pattern/flags`` (and bare) patterns compiled on the ``regex`` package."""

from __future__ import annotations

import re
import string

import regex

from callbridge.messages import Message, define
from callbridge.patterns.extraction import (
    NO_MATCH,
    Extraction,
    PatternError,
    PatternTimeout,
    decode_json_string_content,
)
from callbridge.templating.names import is_variable_name
from callbridge.templating.problems import Problem

_BACKSLASH_LOOKALIKES = {"\u00a5": "¥", "\uff3c": "＼"}
_FLAGS = {
    "i": regex.IGNORECASE,
    "m": regex.MULTILINE,
    "s": regex.DOTALL,
    "x": regex.VERBOSE,
    "u": 0,  # patterns are always Unicode; accepted for PCRE compatibility
}
define(
    {
        "pattern_timeout": (
            "The pattern did not finish within {seconds} s on a response of {length} "
            "characters; simplify it (avoid nested repetition such as (a+)+) or use a JSONPath "
            "extraction."
        ),
        "backslash_lookalike": "Read {char} as a backslash (\\).",
        "pattern_outer_space": "Removed whitespace around the pattern.",
        "pattern_unclosed": "The pattern starts with / but has no closing /.",
        "pattern_syntax": "Invalid pattern: {detail}.",
        "pattern_flags": "Unsupported flag {flag}: {advice}",
        "pattern_flags.g": "'g' is not needed: extraction always uses the first match.",
        "pattern_flags.u": (
            "'U' (ungreedy) is not supported; write lazy quantifiers such as .*? instead."
        ),
        "pattern_flags.unknown": "Unsupported flag {flag}; the flags are i, m, s, x and u.",
        "pattern_flags.trailing": (
            "Unexpected text after the closing /: {text}. Only the flags i, m, s, x and u "
            "may follow it."
        ),
        "pattern_duplicate_group": "Group name {name} is used twice.",
        "pattern_group_name": (
            "Group name {name} is not a variable name: use upper-case letters, digits and _ "
            "starting with a letter (such as {example})."
        ),
        "greedy_capture": (
            "The greedy .* in {group} runs to the last matching delimiter of the response: "
            'when several records come back it captures across JSON structure. Use [^"]* '
            "instead of .*, or a JSONPath extraction such as {example}."
        ),
        "greedy_capture.group": "group {name}",
        "greedy_capture.this_group": "this group",
    }
)
_FLAG_ADVICE = {"g": "pattern_flags.g", "U": "pattern_flags.u"}
_NAMED_GROUP_RE = re.compile(r"\(\?(?:P<|<(?![=!]))([^>]*)>")
_BACKREF_RE = re.compile(r"\\k(?:<([^>]*)>|'([^']*)'|\{([^}]*)\})")
_QUOTED_GROUP_RE = re.compile(r"\(\?'([^']*)'")
_GREEDY_RE = re.compile(
    r"""\((?:\?P?<(?P<a>[^>]+)>|\?'(?P<b>[^']+)')?\.[*+]\)(?=["',}\]]|\\["'}\]])"""
)


# Characters with a meaning in a pattern (outside ``x`` mode); every other one matches
# itself, and so does a backslash before punctuation (``\[``, ``\/``, ``\.``).
_OPERATORS = frozenset(".^$*+?{}[]()|\\")
_ESCAPED_LITERALS = frozenset(string.punctuation)
# Flags that change nothing in how a plain text is found (``m`` and ``s`` act on ``^ $ .``).
_LITERAL_FLAGS = frozenset("msu")


def _literal_text(source: str, flags: str) -> str | None:
    r"""The text a pattern stands for when it is plain text (``"searchRecords":\[\]``),
    else None. Finding a text is one pass with ``str`` search: no backtracking, so no
    time limit is needed and the regex engine is not asked."""
    if not set(flags) <= _LITERAL_FLAGS:
        return None
    chars: list[str] = []
    escaped = False
    for ch in source:
        if escaped:
            if ch not in _ESCAPED_LITERALS:
                return None  # \d, \n, \1, \p{…}: a class, a control or a reference
            chars.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in _OPERATORS:
            return None
        else:
            chars.append(ch)
    return None if escaped else "".join(chars)


class CompiledPattern:
    """A validated pattern, ready to match under a time limit.

    ``source``: the pattern as given to the regex engine; ``flags``: the flag letters;
    ``group_names``: the named groups in group order; ``group_count``: all capturing
    groups; ``normalisations``: what was changed (``¥`` read as ``\\``…); ``hints``:
    advice that does not prevent saving (a greedy ``.*`` capture spanning JSON…).
    An empty pattern matches everything and extracts nothing. A pattern that is plain
    text (no operator, no group, flags among ``m s u``) is found with ``str`` search,
    which cannot backtrack: it needs no time limit (docs/templates.md §7).
    """

    __slots__ = (
        "_literal",
        "_regex",
        "flags",
        "group_count",
        "group_names",
        "hints",
        "normalisations",
        "source",
        "text",
    )

    def __init__(
        self,
        text: str,
        source: str,
        flags: str,
        compiled: regex.Pattern[str] | None,
        normalisations: tuple[Problem, ...],
        hints: tuple[Problem, ...],
    ) -> None:
        self.text = text
        self.source = source
        self.flags = flags
        self._regex = compiled
        self.normalisations = normalisations
        self.hints = hints
        self._literal = _literal_text(source, flags) if compiled is not None else None
        if compiled is None:
            self.group_names: tuple[str, ...] = ()
            self.group_count = 0
        else:
            index = compiled.groupindex
            self.group_names = tuple(sorted(index, key=lambda name: index[name]))
            self.group_count = int(compiled.groups)

    @property
    def is_empty(self) -> bool:
        return self._regex is None

    def matches(self, text: str, *, timeout: float) -> bool:
        """True when the pattern is found anywhere in ``text`` (a response pattern)."""
        if self._regex is None:
            return True
        if self._literal is not None:
            return self._literal in text
        return self._search(text, timeout) is not None

    def extract(self, text: str, *, timeout: float, json_body: bool = False) -> Extraction:
        """The first match's groups; ``json_body`` decodes JSON string escapes in them."""
        if self._regex is None:
            return Extraction(True)
        if self._literal is not None:  # plain text has no groups to extract
            return Extraction(True) if self._literal in text else NO_MATCH
        match = self._search(text, timeout)
        if match is None:
            return NO_MATCH
        groups = [g or "" for g in match.groups()]
        named = {name: match.group(name) or "" for name in self.group_names}
        if json_body:
            groups = [decode_json_string_content(g) for g in groups]
            named = {name: decode_json_string_content(v) for name, v in named.items()}
        return Extraction(True, named, groups)

    def _search(self, text: str, timeout: float) -> regex.Match[str] | None:
        assert self._regex is not None
        try:
            # concurrent=False, said outright: with a timeout and no ``concurrent`` the
            # regex module gives up the GIL for the match, and on the event loop's thread
            # that only means waiting to get it back (up to the 5 ms switch interval)
            # whenever another thread runs Python code. The timeout holds either way.
            return self._regex.search(text, timeout=timeout, concurrent=False)
        except TimeoutError:
            raise PatternTimeout(
                Message("pattern_timeout", seconds=f"{timeout:g}", length=len(text))
            ) from None

    def __repr__(self) -> str:
        return f"CompiledPattern({self.text!r})"


def compile_pattern(text: str) -> CompiledPattern:
    """Validate and compile a pattern; raises :class:`PatternError` with the fault position.

    Accepted forms: ``/pattern/flags`` with flags ``i m s x u``, or a bare pattern. Named
    groups may be written ``(?P<NAME>…)``, ``(?<NAME>…)`` or ``(?'NAME'…)`` and must be
    upper-case variable names. ``¥`` and ``＼`` are read as a backslash.
    """
    problems: list[Problem] = []
    normalisations: list[Problem] = []
    chars = list(text)
    for index, ch in enumerate(chars):
        if ch in _BACKSLASH_LOOKALIKES:
            chars[index] = "\\"
            normalisations.append(
                Problem(
                    Message("backslash_lookalike", char=_BACKSLASH_LOOKALIKES[ch]),
                    index,
                    "warning",
                )
            )
    normalised = "".join(chars)
    stripped = normalised.strip()
    lead = len(normalised) - len(normalised.lstrip())
    if stripped and stripped != normalised:
        normalisations.append(
            Problem(
                Message("pattern_outer_space"),
                0 if lead else len(normalised.rstrip()),
                "warning",
            )
        )
    if not stripped:
        return CompiledPattern(text, "", "", None, tuple(normalisations), ())
    body, body_start, flags = stripped, lead, ""
    if stripped.startswith("/"):
        close = stripped.rfind("/")
        if close == 0:
            problems.append(Problem(Message("pattern_unclosed"), lead + len(stripped)))
            raise PatternError(problems + normalisations)
        body, body_start, flags = stripped[1:close], lead + 1, stripped[close + 1 :]
        _check_flags(flags, lead + close + 1, problems)
    translated, positions, names, open_class = _translate(body, body_start)
    regex_flags = regex.VERSION0
    for flag in flags:
        regex_flags |= _FLAGS.get(flag, 0)
    _check_scanned_names(names, problems)
    compiled: regex.Pattern[str] | None = None
    if not problems:
        try:
            compiled = regex.compile(translated, regex_flags)
        except regex.error as exc:
            pos = exc.pos if isinstance(exc.pos, int) else len(translated)
            position = positions[pos] if 0 <= pos < len(positions) else body_start + len(body)
            if open_class is not None and "character set" in str(exc.msg):
                position = open_class  # point at the [ that is never closed
            problems.append(Problem(Message("pattern_syntax", detail=exc.msg), position))
        except (OverflowError, RecursionError, ValueError, MemoryError, IndexError) as exc:
            problems.append(Problem(Message("pattern_syntax", detail=str(exc)), body_start))
    if compiled is not None:
        _check_group_names(compiled, names, body_start, problems)
    if problems:
        raise PatternError(problems + normalisations)
    if not body:
        return CompiledPattern(text, "", flags, None, tuple(normalisations), ())
    hints = tuple(_greedy_hints(body, body_start))
    return CompiledPattern(text, translated, flags, compiled, tuple(normalisations), hints)


def _check_flags(flags: str, start: int, problems: list[Problem]) -> None:
    for offset, flag in enumerate(flags):
        if flag in _FLAGS:
            continue
        if flag in _FLAG_ADVICE:
            message = Message("pattern_flags", flag=repr(flag), advice=Message(_FLAG_ADVICE[flag]))
        elif flag.isascii() and flag.isalpha():
            message = Message("pattern_flags.unknown", flag=repr(flag))
        else:
            message = Message("pattern_flags.trailing", text=repr(flags[offset:]))
            problems.append(Problem(message, start + offset))
            return
        problems.append(Problem(message, start + offset))


def _translate(
    body: str, body_start: int
) -> tuple[str, list[int], list[tuple[str, int]], int | None]:
    """PCRE spellings the regex package lacks → its own; keeps a map to source offsets.

    ``(?'N'…)`` becomes ``(?P<N>…)`` and ``\\k<N>``/``\\k'N'``/``\\k{N}`` become
    ``(?P=N)``. Returns the translated text, the source offset of each of its characters
    (plus one past the end), every group name with its source offset, and the offset of
    a ``[`` left open at the end (or None).
    """
    out: list[str] = []
    positions: list[int] = []
    names: list[tuple[str, int]] = []

    def emit(text: str, source: int) -> None:
        out.append(text)
        positions.extend([source] * len(text))

    i, n = 0, len(body)
    in_class = False
    class_start = 0
    while i < n:
        ch = body[i]
        source = body_start + i
        if ch == "\\":
            ref = None if in_class else _BACKREF_RE.match(body, i)
            if ref:
                name = ref.group(1) or ref.group(2) or ref.group(3) or ""
                emit(f"(?P={name})", source)
                i = ref.end()
                continue
            for k in range(i, min(i + 2, n)):
                emit(body[k], body_start + k)
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            emit(ch, source)
            i += 1
            continue
        if ch == "[":
            in_class = True
            class_start = source
            emit(ch, source)
            i += 1
            if body.startswith("^", i):
                emit("^", body_start + i)
                i += 1
            if body.startswith("]", i):
                emit("]", body_start + i)
                i += 1
            continue
        quoted = _QUOTED_GROUP_RE.match(body, i)
        if quoted:
            names.append((quoted.group(1), body_start + quoted.start(1)))
            emit(f"(?P<{quoted.group(1)}>", source)
            i = quoted.end()
            continue
        named = _NAMED_GROUP_RE.match(body, i)
        if named:
            names.append((named.group(1), body_start + named.start(1)))
            for k in range(i, named.end()):
                emit(body[k], body_start + k)
            i = named.end()
            continue
        emit(ch, source)
        i += 1
    positions.append(body_start + n)
    return "".join(out), positions, names, class_start if in_class else None


def _check_scanned_names(names: list[tuple[str, int]], problems: list[Problem]) -> None:
    """Group names must be variable names, each used once (PCRE refuses duplicates too)."""
    seen: set[str] = set()
    for name, position in names:
        if not is_variable_name(name):
            problems.append(_bad_name(name, position))
        elif name in seen:
            problems.append(Problem(Message("pattern_duplicate_group", name=name), position))
        seen.add(name)


def _check_group_names(
    compiled: regex.Pattern[str],
    names: list[tuple[str, int]],
    body_start: int,
    problems: list[Problem],
) -> None:
    """Names the engine saw but the scan did not (exotic spellings) are checked too."""
    scanned = {name for name, _position in names}
    for name in compiled.groupindex:
        if name not in scanned and not is_variable_name(name):
            problems.append(_bad_name(name, body_start))


def _bad_name(name: str, position: int) -> Problem:
    return Problem(Message("pattern_group_name", name=repr(name), example=_suggest(name)), position)


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_0123456789")
    return cleaned or "NAME"


def _greedy_hints(body: str, body_start: int) -> list[Problem]:
    hints = []
    for match in _GREEDY_RE.finditer(body):
        name = match.group("a") or match.group("b")
        which = (
            Message("greedy_capture.group", name=name)
            if name
            else Message("greedy_capture.this_group")
        )
        example = f"{name or 'NAME'} = $.records[0].<field>"
        hints.append(
            Problem(
                Message("greedy_capture", group=which, example=example),
                body_start + match.start(),
                "warning",
            )
        )
    return hints
