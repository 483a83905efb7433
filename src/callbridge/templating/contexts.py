"""Context compilers: decide, once per template, how each value slot is escaped.

Structure comes only from the admin's literal text. Each compiler walks the literal
characters with a small state machine (URL component, SOQL/SOSL lexer state, JSON string
state, header line part) and gives every variable slot the escaper for the place it sits
in. Literal URL text is normalised like a browser would, and every normalisation is
reported.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from callbridge.messages import Message, define
from callbridge.templating import escaping
from callbridge.templating.escaping import Escaper
from callbridge.templating.names import SYSTEM_URL_NAMES, Context
from callbridge.templating.parser import Call, Literal, Node, Ref
from callbridge.templating.problems import Problem

Dynamic = Ref | Call
Item = str | Ref | Call


@dataclass(slots=True)
class Slot:
    """Where an expanded value goes: ``parts[index] = escape(value)``."""

    index: int
    node: Dynamic
    escape: Escaper


@dataclass
class Output:
    """The compiled form under construction: literal parts with holes for values."""

    parts: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    dot_checks: list[tuple[int, int, int]] = field(default_factory=list)
    json_error: Message | None = None
    _buffer: list[str] = field(default_factory=list)

    def text(self, text: str) -> None:
        self._buffer.append(text)

    def flush(self) -> int:
        """End the current literal part; returns the index the next part will have."""
        if self._buffer:
            self.parts.append("".join(self._buffer))
            self._buffer = []
        return len(self.parts)

    def value(self, node: Dynamic, escape: Escaper) -> None:
        self.flush()
        self.slots.append(Slot(len(self.parts), node, escape))
        self.parts.append("")


define(
    {
        "url_outer_space": "Removed whitespace at the start or end of the URL.",
        "url_path_space": (
            "Removed {count} whitespace character(s) from the URL path (pasted line breaks "
            "such as 'sobject s' or 'search ?q=')."
        ),
        "url_line_break": "Removed {count} tab or line-break character(s) from the URL.",
        "url_space_trimmed": (
            "Removed {count} space(s) at the start or end of a query parameter "
            "(such as the space after 'q=')."
        ),
        "url_space_encoded": "Encoded {count} space(s) in the URL as %20.",
        "url_char_encoded": (
            "Percent-encoded {count} character(s) that a URL cannot carry as they are "
            "(first: {example})."
        ),
        "url_percent_encoded": (
            "Encoded {count} '%' that did not start a valid percent-escape as %25 "
            "(a literal percent sign, such as a LIKE wildcard)."
        ),
        "header_line_break": "Normalised {count} CR LF line break(s) in the headers to LF.",
    }
)


define(
    {
        "url_scheme": "Only http:// and https:// URLs can be requested, not {scheme}://.",
        "url_not_absolute": (
            "A URL must start with {OAUTH_INSTANCE_URL}, {SFAPI}, {SVADDR}, http:// or https://."
        ),
        "url_variable_host.start": (
            "A variable cannot decide the scheme or host of a URL; start the URL with "
            "{OAUTH_INSTANCE_URL}, {SFAPI}, {SVADDR} or a literal https:// address."
        ),
        "url_host_char": "{char} cannot appear in a URL's host or port.",
        "url_variable_host": "A variable cannot be part of a URL's scheme, host or port.",
        "variable_after_backslash": (
            "A variable directly after a backslash cannot be escaped safely; remove the backslash."
        ),
        "query_variable_unquoted": (
            "This variable is outside quotes in a SOQL/SOSL query: at run time "
            "only a plain token (letters, digits, _ . : + -) is accepted there. "
            "Write it inside quotes, such as '{TEL}'."
        ),
        "query_unclosed.sosl": "The SOSL search term opened here is not closed.",
        "query_unclosed.soql": "The SOQL string literal opened here is not closed.",
        "body_not_json": "The body is not valid JSON: {detail} (at position {position}).",
        "body_not_json.deep": "The body is not valid JSON: it is nested too deeply.",
        "header_line": "A header line must look like 'Name: value'.",
        "header_name": "{name} is not a valid header name.",
        "header_name_variable": "A variable cannot be used in a header name.",
    }
)


class Notes:
    """Normalisations, counted per kind and reported once with the first position."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int, str]] = {}

    def add(self, code: str, position: int, example: str = "") -> None:
        first, count, first_example = self._seen.get(code, (position, 0, example))
        self._seen[code] = (first, count + 1, first_example)

    def problems(self) -> list[Problem]:
        return [
            Problem(Message(code, count=count, example=repr(example)), first, "warning")
            for code, (first, count, example) in self._seen.items()
        ]


def atoms(nodes: Sequence[Node]) -> tuple[list[Item], list[int]]:
    """Literal text as single characters (with their source offsets) and dynamic nodes."""
    items: list[Item] = []
    positions: list[int] = []
    for node in nodes:
        if isinstance(node, Literal):
            items.extend(node.text)
            if node.exact:
                positions.extend(range(node.start, node.start + len(node.text)))
            else:
                positions.extend([node.start] * len(node.text))
        else:
            items.append(node)
            positions.append(node.start)
    return items, positions


def compile_context(
    context: Context, nodes: Sequence[Node], problems: list[Problem], notes: Notes
) -> Output:
    out = Output()
    if context is Context.URL:
        _UrlCompiler(nodes, out, problems, notes, form=False).run()
    elif context is Context.BODY_FORM:
        _UrlCompiler(nodes, out, problems, notes, form=True).run()
    elif context is Context.BODY_JSON:
        _compile_json(nodes, out, problems)
    elif context is Context.HEADER:
        _compile_headers(nodes, out, problems, notes)
    else:
        escape = escaping.xml_text if context is Context.BODY_XML else escaping.raw
        for node in nodes:
            if isinstance(node, Literal):
                out.text(node.text)
            else:
                out.value(node, escape)
    out.flush()
    return out


# --- URL and form bodies ----------------------------------------------------------------

_PATH_SAFE = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | {"?"}
_AUTH_SAFE = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@[]%")
_HEX = frozenset(string.hexdigits)
_LINE_BREAKS = frozenset("\t\n\r\f\v")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_LANGUAGE_RE = re.compile(r"\s*(select|find)\b", re.IGNORECASE)
_LIKE_RE = re.compile(r"\bLIKE\s*$", re.IGNORECASE)

_AUTH, _PATH, _QKEY, _QVAL, _FRAG = range(5)

# SOQL/SOSL lexer states.
_OUT, _STR, _STR_ESC, _TERM, _TERM_ESC, _PHRASE, _PHRASE_ESC = range(7)


def _hex_pair(items: list[Item], i: int) -> bool:
    """True when items[i] and items[i + 1] are two literal hex digits."""
    if i + 1 >= len(items):
        return False
    first, second = items[i], items[i + 1]
    return isinstance(first, str) and isinstance(second, str) and first in _HEX and second in _HEX


def _escape_run_end(items: list[Item], i: int) -> int:
    """End of the run of %XX escapes at items[i], or i when it does not decode as UTF-8."""
    raw = bytearray()
    end = i
    while end < len(items) and items[end] == "%" and _hex_pair(items, end + 1):
        raw.append(int(f"{items[end + 1]}{items[end + 2]}", 16))
        end += 3
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return i
    return end


class _QueryLexer:
    """Tracks where the admin's SOQL/SOSL text is: outside, in a '…' literal, in FIND {…}."""

    def __init__(self, language: str) -> None:
        self.sosl = language == "find"
        self.state = _OUT
        self.like = False
        self.recent = ""
        self.opened_at = 0

    def feed(self, ch: str, position: int) -> None:
        state = self.state
        if state == _OUT:
            if ch == "'":
                self.like = _LIKE_RE.search(self.recent) is not None
                self.state = _STR
                self.opened_at = position
            elif ch == "{" and self.sosl:
                self.state = _TERM
                self.opened_at = position
            else:
                self.recent = (self.recent + ch)[-24:]
        elif state == _STR:
            if ch == "\\":
                self.state = _STR_ESC
            elif ch == "'":
                self.state = _OUT
                self.recent = ""
        elif state == _STR_ESC:
            self.state = _STR
        elif state == _TERM:
            if ch == "\\":
                self.state = _TERM_ESC
            elif ch == '"':
                self.state = _PHRASE
            elif ch == "}":
                self.state = _OUT
                self.recent = ""
        elif state == _TERM_ESC:
            self.state = _TERM
        elif state == _PHRASE:
            if ch == "\\":
                self.state = _PHRASE_ESC
            elif ch == '"':
                self.state = _TERM
            elif ch == "}":  # Salesforce ends the term here too: err on the safe side
                self.state = _OUT
                self.recent = ""
        else:  # _PHRASE_ESC
            self.state = _PHRASE

    def escaper(self) -> Escaper | None:
        """The escaper for a value at the current place; None right after a backslash."""
        state = self.state
        if state == _OUT:
            return escaping.url_soql_bare
        if state == _STR:
            return escaping.url_soql_like if self.like else escaping.url_soql_string
        if state == _TERM:
            return escaping.url_sosl_term_wrapped
        if state == _PHRASE:
            return escaping.url_sosl_term
        return None

    def after_value(self) -> None:
        self.recent = "x"

    @property
    def unclosed(self) -> bool:
        return self.state != _OUT


class _UrlCompiler:
    """Walks a URL (or a form body, which is a query string) and assigns escapers."""

    def __init__(
        self,
        nodes: Sequence[Node],
        out: Output,
        problems: list[Problem],
        notes: Notes,
        *,
        form: bool,
    ) -> None:
        self.items, self.positions = atoms(nodes)
        self.out = out
        self.problems = problems
        self.notes = notes
        self.form = form
        self.normalise = not form
        self.state = _QKEY if form else _PATH
        # path segment tracking (for ./.. produced by values)
        self.segment_start = 0
        self.segment_literal: list[str] = []
        self.segment_dynamic = False
        self.segment_position = 0
        # query parameter tracking
        self.key: list[str] = []
        self.key_dynamic = False
        self.emitted = False
        self.pending: list[int] = []
        self.lexer: _QueryLexer | None = None

    # -- driver --

    def run(self) -> None:
        start = 0 if self.form else self._start()
        items = self.items
        i = start
        while i < len(items):
            item = items[i]
            if isinstance(item, str):
                i = self._char(item, i)
            else:
                self._dynamic(item)
                i += 1
        self._end_component()

    def _start(self) -> int:
        items, positions = self.items, self.positions
        lo, hi = 0, len(items)
        while lo < hi and isinstance(items[lo], str) and str(items[lo]).isspace():
            lo += 1
        while hi > lo and isinstance(items[hi - 1], str) and str(items[hi - 1]).isspace():
            hi -= 1
        if lo > 0 or hi < len(items):
            self.notes.add("url_outer_space", positions[0] if lo else positions[hi])
        self.items, self.positions = items[lo:hi], positions[lo:hi]
        items, positions = self.items, self.positions
        if not items:
            return 0
        first = items[0]
        if isinstance(first, Ref) and first.name in SYSTEM_URL_NAMES:
            strip = len(items) > 1 and items[1] == "/"
            self.out.value(first, escaping.system_url(strip))
            self._start_segment(positions[0])
            return 1
        if isinstance(first, str):
            run = []
            for item in items:
                if not isinstance(item, str):
                    break
                run.append(item)
            literal = "".join(run)
            match = _SCHEME_RE.match(literal)
            if match:
                if match.group(1).lower() not in ("http", "https"):
                    self._error(Message("url_scheme", scheme=match.group(1)), positions[0])
                self.out.text(match.group(0))
                self.state = _AUTH
                return match.end()
            if literal.startswith("/") and not literal.startswith("//"):
                self._start_segment(positions[0])
                return 0
            self._error(Message("url_not_absolute"), positions[0])
            self._start_segment(positions[0])
            return 0
        self._error(Message("url_variable_host.start"), positions[0])
        self._start_segment(positions[0])
        return 0

    # -- characters --

    def _char(self, ch: str, i: int) -> int:
        position = self.positions[i]
        state = self.state
        if state == _AUTH:
            if ch == "/":
                self.out.text("/")
                self.state = _PATH
                self._start_segment(position)
            elif ch == "?":
                self.out.text("?")
                self._enter_query()
            elif ch == "#":
                self.out.text("#")
                self.state = _FRAG
            elif ch.isspace():
                self.notes.add("url_path_space", position)
            elif ch in _AUTH_SAFE or (not ch.isascii() and ch.isalnum()):
                self.out.text(ch)
            else:
                self._error(Message("url_host_char", char=repr(ch)), position)
            return i + 1
        if state == _PATH:
            if ch == "/":
                self._end_segment()
                self.out.text("/")
                self._start_segment(position)
            elif ch == "?":
                self._end_segment()
                self.out.text("?")
                self._enter_query()
            elif ch == "#":
                self._end_segment()
                self.out.text("#")
                self.state = _FRAG
            elif ch.isspace():
                self.notes.add("url_path_space", position)
            else:
                emitted, _decoded, nxt = self._encode_char(ch, i, _PATH_SAFE)
                self.segment_literal.append(emitted)
                return nxt
            return i + 1
        if state == _FRAG:
            if ch in _LINE_BREAKS:
                self.notes.add("url_line_break", position)
                return i + 1
            if ch == " ":
                self.notes.add("url_space_encoded", position)
                self.out.text("%20")
                return i + 1
            _emitted, _decoded, nxt = self._encode_char(ch, i, _QUERY_SAFE)
            return nxt
        return self._query_char(ch, i)

    def _query_char(self, ch: str, i: int) -> int:
        position = self.positions[i]
        if ch == "&" or (ch == "#" and not self.form):
            self._end_component()
            self.out.text(ch)
            if ch == "&":
                self._enter_query()
            else:
                self.state = _FRAG
            return i + 1
        if ch == "=" and self.state == _QKEY:
            self._drop_pending()
            self.out.text("=")
            self.state = _QVAL
            self.emitted = False
            if not self.key_dynamic and "".join(self.key).strip() == "q":
                language = self._detect_language(i + 1)
                if language:
                    self.lexer = _QueryLexer(language)
            return i + 1
        if self.normalise:
            if ch in _LINE_BREAKS:
                self.notes.add("url_line_break", position)
                return i + 1
            if ch == " ":
                if self.emitted:
                    self.pending.append(position)
                else:
                    self.notes.add("url_space_trimmed", position)
                return i + 1
        self._flush_pending()
        _emitted, decoded, nxt = self._encode_char(ch, i, _QUERY_SAFE)
        self._feed(decoded, position)
        self.emitted = True
        return nxt

    def _encode_char(self, ch: str, i: int, safe: frozenset[str]) -> tuple[str, str, int]:
        """Emit one literal character, or a whole run of %XX escapes.

        Returns (emitted text, the text the server will decode for lexing, next index);
        non-ASCII decoded bytes are given as "x" (only ASCII matters to the lexers).
        """
        items = self.items
        if ch == "%":
            end = _escape_run_end(items, i) if self.normalise else i + 3 * _hex_pair(items, i + 1)
            if end > i:
                emitted = "".join(str(item) for item in items[i:end])
                self.out.text(emitted)
                codes = [int(emitted[k + 1 : k + 3], 16) for k in range(0, len(emitted), 3)]
                return emitted, "".join(chr(c) if c < 0x80 else "x" for c in codes), end
            if self.normalise:
                # a stray %, or one whose escape would not decode as UTF-8 ('%Acme%' in a
                # LIKE pattern): read as a literal percent sign
                self.notes.add("url_percent_encoded", self.positions[i])
                self.out.text("%25")
                return "%25", "%", i + 1
            self.out.text(ch)
            return ch, ch, i + 1
        if ch == "+":
            self.out.text(ch)
            return ch, " ", i + 1
        if ch in safe or not self.normalise:
            self.out.text(ch)
            return ch, ch, i + 1
        encoded = quote(ch, safe="")
        self.notes.add("url_char_encoded", self.positions[i], ch)
        self.out.text(encoded)
        return encoded, ch, i + 1

    # -- values --

    def _dynamic(self, node: Dynamic) -> None:
        state = self.state
        if state == _AUTH:
            self._error(Message("url_variable_host"), node.start)
            self.out.value(node, escaping.url_component)
        elif state == _PATH:
            self.segment_dynamic = True
            self.out.value(node, escaping.url_component)
        elif state == _FRAG:
            self.out.value(node, escaping.url_component)
        else:
            self._flush_pending()
            self.emitted = True
            if state == _QKEY:
                self.key_dynamic = True
                self.out.value(node, escaping.url_component)
                return
            lexer = self.lexer
            if lexer is None:
                self.out.value(node, escaping.url_component)
                return
            escape = lexer.escaper()
            if escape is None:
                self._error(Message("variable_after_backslash"), node.start)
                escape = escaping.url_soql_bare
            elif escape is escaping.url_soql_bare:
                self.problems.append(
                    Problem(Message("query_variable_unquoted"), node.start, "warning")
                )
            self.out.value(node, escape)
            lexer.after_value()

    # -- helpers --

    def _enter_query(self) -> None:
        self.state = _QKEY
        self.key = []
        self.key_dynamic = False
        self.emitted = False
        self.pending = []
        self.lexer = None

    def _end_component(self) -> None:
        self._drop_pending()
        if self.state == _PATH:
            self._end_segment()
        lexer = self.lexer
        if lexer is not None and lexer.unclosed:
            what = "query_unclosed.sosl" if lexer.state >= _TERM else "query_unclosed.soql"
            self.problems.append(Problem(Message(what), lexer.opened_at, "warning"))
        self.lexer = None

    def _feed(self, decoded: str, position: int) -> None:
        if self.state == _QKEY:
            self.key.append(decoded)
        elif self.lexer is not None:
            for ch in decoded:
                self.lexer.feed(ch, position)

    def _flush_pending(self) -> None:
        for position in self.pending:
            self.notes.add("url_space_encoded", position)
            self.out.text("%20")
            self._feed(" ", position)
        self.pending = []

    def _drop_pending(self) -> None:
        for position in self.pending:
            self.notes.add("url_space_trimmed", position)
        self.pending = []

    def _detect_language(self, start: int) -> str | None:
        decoded: list[str] = []
        items = self.items
        i = start
        while i < len(items) and len(decoded) < 64:
            item = items[i]
            if not isinstance(item, str) or item in "&#":
                break
            if item == "+":
                decoded.append(" ")
            elif item == "%" and _hex_pair(items, i + 1):
                code = int(f"{items[i + 1]}{items[i + 2]}", 16)
                decoded.append(chr(code) if code < 0x80 else "x")
                i += 2
            else:
                decoded.append(item)
            i += 1
        match = _LANGUAGE_RE.match("".join(decoded))
        return match.group(1).lower() if match else None

    def _start_segment(self, position: int) -> None:
        self.segment_start = self.out.flush()
        self.segment_literal = []
        self.segment_dynamic = False
        self.segment_position = position

    def _end_segment(self) -> None:
        if not self.segment_dynamic:
            return
        literal = "".join(self.segment_literal).replace("%2e", ".").replace("%2E", ".")
        if set(literal) <= {"."}:
            end = self.out.flush()
            self.out.dot_checks.append((self.segment_start, end, self.segment_position))
        self.segment_dynamic = False

    def _error(self, message: Message, position: int) -> None:
        self.problems.append(Problem(message, position))


# --- JSON -------------------------------------------------------------------------------


def _compile_json(nodes: Sequence[Node], out: Output, problems: list[Problem]) -> None:
    items, positions = atoms(nodes)
    neutral: list[str] = []
    neutral_positions: list[int] = []
    state = _OUT
    has_content = False
    for item, position in zip(items, positions, strict=True):
        if isinstance(item, str):
            out.text(item)
            neutral.append(item)
            neutral_positions.append(position)
            if not item.isspace():
                has_content = True
            if state == _OUT:
                if item == '"':
                    state = _STR
            elif state == _STR:
                if item == "\\":
                    state = _STR_ESC
                elif item == '"':
                    state = _OUT
            else:
                state = _STR
            continue
        has_content = True
        if state == _OUT:
            out.value(item, escaping.json_value)
            neutral.append('""')
            neutral_positions.append(position)
        else:
            if state == _STR_ESC:
                problems.append(Problem(Message("variable_after_backslash"), position))
                state = _STR
            out.value(item, escaping.json_string)
            neutral.append("x")
            neutral_positions.append(position)
    if not has_content:
        return
    try:
        json.loads("".join(neutral))
    except json.JSONDecodeError as exc:
        offset = _neutral_offset(neutral, exc.pos)
        position = neutral_positions[offset] if offset < len(neutral_positions) else positions[-1]
        message = Message("body_not_json", detail=exc.msg, position=position)
        problems.append(Problem(message, position, "warning"))
        out.json_error = message
    except RecursionError:
        message = Message("body_not_json.deep")
        problems.append(Problem(message, 0, "warning"))
        out.json_error = message


def _neutral_offset(pieces: list[str], char_pos: int) -> int:
    """Index of the piece that holds character ``char_pos`` of ``"".join(pieces)``."""
    total = 0
    for index, piece in enumerate(pieces):
        total += len(piece)
        if char_pos < total:
            return index
    return len(pieces)


# --- headers ------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _compile_headers(
    nodes: Sequence[Node], out: Output, problems: list[Problem], notes: Notes
) -> None:
    """Header block: one ``Name: value`` a line; values can never add a line."""
    items, positions = atoms(nodes)
    in_value = False
    name: list[str] = []
    line_start = positions[0] if positions else 0
    name_dynamic = False

    def end_line() -> None:
        text = "".join(name).strip()
        if not in_value and (text or name_dynamic):
            problems.append(Problem(Message("header_line"), line_start))

    for index, (item, position) in enumerate(zip(items, positions, strict=True)):
        if isinstance(item, str):
            if item == "\r":
                if index + 1 < len(items) and items[index + 1] == "\n":
                    notes.add("header_line_break", position)
                    continue
                item = "\n"
            if item == "\n":
                end_line()
                out.text("\n")
                in_value = False
                name = []
                name_dynamic = False
                line_start = position + 1
            elif in_value:
                out.text(item)
            elif item == ":":
                header = "".join(name).strip()
                if not name_dynamic and _TOKEN_RE.fullmatch(header) is None:
                    problems.append(Problem(Message("header_name", name=repr(header)), line_start))
                out.text(":")
                in_value = True
            else:
                name.append(item)
                out.text(item)
            continue
        if in_value:
            out.value(item, escaping.header_value)
        else:
            name_dynamic = True
            problems.append(Problem(Message("header_name_variable"), position))
            out.value(item, escaping.header_value)
    end_line()
