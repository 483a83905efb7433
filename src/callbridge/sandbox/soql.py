"""A SOQL subset: lexer, parser and evaluator with Salesforce's literal and error rules.

Supported: ``SELECT f1, Rel.f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]``; conditions with ``= != <> < <= > >=``,
``LIKE``, ``IN (…)``, ``NOT IN (…)``, ``AND``, ``OR``, ``NOT`` and parentheses (mixing
``AND`` and ``OR`` needs parentheses, as in Salesforce); string, number, boolean, null, date
and dateTime literals.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callbridge.sandbox.ids import normalize_id
from callbridge.sandbox.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    Schema,
    SObjectType,
)
from callbridge.sandbox.wire import SalesforceError

KEYWORDS = frozenset(
    {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "LIKE", "IN", "NULL", "TRUE", "FALSE",
     "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "GROUP",
     "HAVING", "WITH", "FOR", "USING", "INCLUDES", "EXCLUDES"}
)  # fmt: skip

_SIMPLE_ESCAPES = {
    "n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t",
    "b": "\b", "B": "\b", "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\",
}  # fmt: skip

_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})"
)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">")


# --- errors -------------------------------------------------------------------------------


def positioned_error(
    text: str, pos: int, message: str, code: str = "MALFORMED_QUERY"
) -> SalesforceError:
    """Salesforce's parse error: the offending row, a caret, its row and column, the reason."""
    pos = max(0, min(pos, len(text)))
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    if line_end == -1:
        line_end = len(text)
    column = pos - line_start + 1
    message = (
        f"\n{text[line_start:line_end]}\n{' ' * (column - 1)}^\n"
        f"ERROR at Row:{row}:Column:{column}\n{message}"
    )
    return SalesforceError(400, code, message)


def no_such_column(text: str, pos: int, name: str, entity: str) -> SalesforceError:
    return positioned_error(
        text,
        pos,
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a "
        "custom field, be sure to append the '__c' after the custom field name. Please "
        "reference your WSDL or the describe call for the appropriate names.",
        "INVALID_FIELD",
    )


def unsupported_type(text: str, pos: int, name: str) -> SalesforceError:
    return positioned_error(
        text,
        pos,
        f"sObject type '{name}' is not supported. If you are attempting to use a custom "
        "object, be sure to append the '__c' after the entity name. Please reference your "
        "WSDL or the describe call for the appropriate names.",
        "INVALID_TYPE",
    )


# --- lexer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StringLiteral:
    """A decoded string literal; ``like`` is its LIKE pattern as a regular expression."""

    value: str
    like: str
    like_escape_at: int | None  # offset of a \_ or \% (valid only inside LIKE)


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT KEYWORD STRING NUMBER DATE DATETIME OP LPAREN RPAREN COMMA EOF
    text: str
    pos: int
    value: Any = None


def _read_string(text: str, start: int) -> tuple[StringLiteral, int]:
    """Decode the literal opening at ``start``; returns it and the offset after its quote."""
    value: list[str] = []
    like: list[str] = []
    like_escape_at: int | None = None
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "'":
            return StringLiteral("".join(value), "".join(like), like_escape_at), i + 1
        if char == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt in _SIMPLE_ESCAPES:
                decoded = _SIMPLE_ESCAPES[nxt]
                value.append(decoded)
                like.append(re.escape(decoded))
                i += 2
                continue
            if nxt in ("_", "%"):
                if like_escape_at is None:
                    like_escape_at = i
                value.append(nxt)
                like.append(re.escape(nxt))
                i += 2
                continue
            if nxt in ("u", "U") and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                decoded = chr(int(text[i + 2 : i + 6], 16))
                value.append(decoded)
                like.append(re.escape(decoded))
                i += 6
                continue
            end = text.find("'", i + 2)
            literal = text[start : end + 1] if end != -1 else text[start:]
            raise positioned_error(
                text,
                start,
                f"Invalid string literal {literal}. Illegal character sequence "
                f"'\\{nxt}' in string literal.",
            )
        value.append(char)
        like.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    raise positioned_error(text, len(text), "unexpected token: <EOF>")


def tokenize(text: str, start: int = 0) -> list[Token]:
    tokens: list[Token] = []
    i = start
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            tokens.append(Token("EOF", "<EOF>", len(text)))
            return tokens
        char = text[i]
        if char == "'":
            literal, end = _read_string(text, i)
            tokens.append(Token("STRING", text[i:end], i, literal))
            i = end
            continue
        if char in "(),":
            kind = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA"}[char]
            tokens.append(Token(kind, char, i))
            i += 1
            continue
        op = next((op for op in _OPERATORS if text.startswith(op, i)), None)
        if op is not None:
            tokens.append(Token("OP", op, i))
            i += len(op)
            continue
        for kind, pattern in (("DATETIME", _DATETIME_RE), ("DATE", _DATE_RE)):
            match = pattern.match(text, i)
            if match:
                tokens.append(Token(kind, match.group(), i, match.group()))
                i = match.end()
                break
        else:
            match = _NUMBER_RE.match(text, i)
            if match and not (i + len(match.group()) < len(text) and text[match.end()].isalpha()):
                number = match.group()
                value: float | int = float(number) if "." in number else int(number)
                tokens.append(Token("NUMBER", number, i, value))
                i = match.end()
                continue
            match = _IDENT_RE.match(text, i)
            if match:
                word = match.group()
                kind = "KEYWORD" if word.upper() in KEYWORDS else "IDENT"
                tokens.append(Token(kind, word, i, word.upper()))
                i = match.end()
                continue
            end = i + 1
            while end < len(text) and not text[end].isspace() and text[end] not in "(),'":
                end += 1
            raise positioned_error(text, i, f"unexpected token: '{text[i:end]}'")


# --- syntax tree --------------------------------------------------------------------------


@dataclass
class FieldPath:
    parts: list[str]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass
class Literal:
    kind: str  # STRING NUMBER DATE DATETIME TRUE FALSE NULL
    value: Any
    pos: int
    text: str


@dataclass
class Comparison:
    field: FieldPath
    op: str  # = != < <= > >= LIKE IN NOTIN
    values: list[Literal]


@dataclass
class BoolOp:
    op: str  # AND OR
    items: list[Condition]


@dataclass
class Not:
    item: Condition


Condition = Comparison | BoolOp | Not


@dataclass
class OrderItem:
    field: FieldPath
    descending: bool
    nulls_last: bool


@dataclass
class SelectQuery:
    object_name: str
    object_pos: int
    fields: list[FieldPath] | None  # None: SELECT COUNT()
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


# --- parser -------------------------------------------------------------------------------


class Parser:
    """Recursive descent over the tokens; the SOSL parser reuses its clause methods."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def unexpected(self, token: Token | None = None) -> SalesforceError:
        token = token or self.current
        shown = "<EOF>" if token.kind == "EOF" else f"'{token.text}'"
        return positioned_error(self.text, token.pos, f"unexpected token: {shown}")

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "KEYWORD" and self.current.value in words

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str) -> Token:
        if self.current.kind != kind:
            raise self.unexpected()
        return self.advance()

    def field_path(self) -> FieldPath:
        token = self.current
        if token.kind != "IDENT":
            raise self.unexpected()
        self.advance()
        return FieldPath(token.text.split("."), token.pos)

    def select_list(self) -> list[FieldPath] | None:
        token = self.current
        if (
            token.kind == "IDENT"
            and token.text.upper() == "COUNT"
            and self.tokens[self.index + 1].kind == "LPAREN"
        ):
            self.advance()
            self.advance()
            self.expect("RPAREN")
            return None
        fields = [self.field_path()]
        while self.current.kind == "COMMA":
            self.advance()
            fields.append(self.field_path())
        return fields

    def literal(self) -> Literal:
        token = self.current
        if token.kind in ("STRING", "NUMBER", "DATE", "DATETIME"):
            self.advance()
            return Literal(token.kind, token.value, token.pos, token.text)
        if token.kind == "KEYWORD" and token.value in ("TRUE", "FALSE", "NULL"):
            self.advance()
            value = {"TRUE": True, "FALSE": False, "NULL": None}[token.value]
            return Literal(token.value, value, token.pos, token.text)
        raise self.unexpected()

    def condition(self) -> Condition:
        first = self.unary()
        if not self.at_keyword("AND", "OR"):
            return first
        connector = self.current.value
        items = [first]
        while self.at_keyword("AND", "OR"):
            if self.current.value != connector:
                raise self.unexpected()
            self.advance()
            items.append(self.unary())
        return BoolOp(connector, items)

    def unary(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.unary())
        if self.current.kind == "LPAREN":
            self.advance()
            inner = self.condition()
            self.expect("RPAREN")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        path = self.field_path()
        token = self.current
        if token.kind == "OP":
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return Comparison(path, op, [self.literal()])
        if self.at_keyword("LIKE"):
            self.advance()
            return Comparison(path, "LIKE", [self.literal()])
        negate = False
        if self.at_keyword("NOT"):
            self.advance()
            negate = True
            if not self.at_keyword("IN"):
                raise self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect("LPAREN")
            values = [self.literal()]
            while self.current.kind == "COMMA":
                self.advance()
                values.append(self.literal())
            self.expect("RPAREN")
            return Comparison(path, "NOTIN" if negate else "IN", values)
        raise self.unexpected()

    def order_by(self) -> list[OrderItem]:
        items = []
        while True:
            path = self.field_path()
            descending = False
            if self.at_keyword("ASC", "DESC"):
                descending = self.advance().value == "DESC"
            nulls_last = descending
            if self.at_keyword("NULLS"):
                self.advance()
                if not self.at_keyword("FIRST", "LAST"):
                    raise self.unexpected()
                nulls_last = self.advance().value == "LAST"
            items.append(OrderItem(path, descending, nulls_last))
            if self.current.kind != "COMMA":
                return items
            self.advance()

    def integer(self) -> int:
        token = self.current
        if token.kind != "NUMBER" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected()
        self.advance()
        return int(token.value)


@functools.lru_cache(maxsize=512)
def parse_query(text: str) -> SelectQuery:
    """Parse a SELECT statement (cached: call actions repeat the same few queries)."""
    parser = Parser(text, tokenize(text))
    parser.expect_keyword("SELECT")
    fields = parser.select_list()
    parser.expect_keyword("FROM")
    object_token = parser.current
    if object_token.kind != "IDENT" or "." in object_token.text:
        raise parser.unexpected()
    parser.advance()
    query = SelectQuery(object_token.text, object_token.pos, fields)
    if parser.at_keyword("WHERE"):
        parser.advance()
        query.where = parser.condition()
    if parser.at_keyword("ORDER"):
        parser.advance()
        parser.expect_keyword("BY")
        query.order_by = parser.order_by()
    if parser.at_keyword("LIMIT"):
        parser.advance()
        query.limit = parser.integer()
    if parser.at_keyword("OFFSET"):
        parser.advance()
        query.offset = parser.integer()
    if parser.current.kind != "EOF":
        raise parser.unexpected()
    return query


# --- resolution against the schema and evaluation -----------------------------------------

RecordLookup = Callable[[str], tuple[SObjectType, dict[str, Any]] | None]


@dataclass
class ResolvedPath:
    """A field path checked against the schema: relationship hops, then the final field."""

    hops: list[FieldDef]  # reference fields followed, in order
    field: FieldDef
    names: list[str]  # canonical names: relationship names, then the field name


def resolve_path(schema: Schema, sobject: SObjectType, path: FieldPath, text: str) -> ResolvedPath:
    parts = list(path.parts)
    if (
        len(parts) > 1
        and parts[0].lower() == sobject.name.lower()
        and not sobject.relationship(parts[0])
    ):
        parts = parts[1:]  # "Contact.Name" FROM Contact
    current = sobject
    hops: list[FieldDef] = []
    names: list[str] = []
    for index, part in enumerate(parts[:-1]):
        reference = current.relationship(part)
        if reference is None:
            raise positioned_error(
                text,
                path.pos,
                f"Didn't understand relationship '{part}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after "
                "the custom relationship name. Please reference your WSDL or the describe call "
                "for the appropriate names.",
                "INVALID_FIELD",
            )
        hops.append(reference)
        names.append(reference.relationship_name or part)
        targets = [t for t in (schema.get(name) for name in reference.reference_to) if t]
        following = parts[index + 1]
        last = index + 1 == len(parts) - 1
        # Polymorphic (Who, What): the first target type that knows the next name decides.
        current = next(
            (t for t in targets if (t.field(following) if last else t.relationship(following))),
            targets[0],
        )
    definition = current.field(parts[-1])
    if definition is None:
        raise no_such_column(text, path.pos, parts[-1], current.name)
    names.append(definition.name)
    return ResolvedPath(hops, definition, names)


def path_value(resolved: ResolvedPath, record: dict[str, Any], lookup: RecordLookup) -> Any:
    current: dict[str, Any] | None = record
    for hop in resolved.hops:
        if current is None:
            return None
        target_id = current.get(hop.name)
        found = lookup(target_id) if target_id else None
        current = found[1] if found else None
    if current is None:
        return None
    return current.get(resolved.field.name)


def _filter_type_error(text: str, literal: Literal, definition: FieldDef) -> SalesforceError:
    soap = {
        "boolean": "boolean",
        "date": "date",
        "datetime": "dateTime",
        "double": "double",
        "currency": "double",
        "percent": "double",
        "int": "int",
        "id": "id",
        "reference": "id",
    }.get(definition.type, "string")
    quoting = (
        "should be enclosed in quotes"
        if soap in ("string", "id")
        else "should not be enclosed in quotes"
    )
    return positioned_error(
        text,
        literal.pos,
        f"value of filter criterion for field '{definition.name}' must be of type {soap} "
        f"and {quoting}",
        "INVALID_QUERY_FILTER_OPERATOR",
    )


def parse_datetime(value: str) -> float:
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).timestamp()


def check_literal(text: str, definition: FieldDef, literal: Literal, op: str) -> Any:
    """The comparable value of a literal for a field, or the error Salesforce gives."""
    if literal.kind == "NULL":
        return None
    kind = definition.type
    if literal.kind == "STRING":
        string: StringLiteral = literal.value
        if op != "LIKE" and string.like_escape_at is not None:
            at = string.like_escape_at
            raise positioned_error(
                text,
                literal.pos,
                f"Invalid string literal {literal.text}. Illegal character sequence "
                f"'{text[at : at + 2]}' in string literal.",
            )
        if kind in ID_TYPES:
            if string.value == "":
                return None
            id15 = normalize_id(string.value)
            if id15 is None:
                raise positioned_error(
                    text,
                    literal.pos,
                    f"invalid ID field: {string.value}",
                    "INVALID_QUERY_FILTER_OPERATOR",
                )
            return id15
        if kind in TEXT_TYPES:
            # Empty strings are stored as null, so = '' finds the records without a value.
            return string if string.value != "" or op == "LIKE" else None
        raise _filter_type_error(text, literal, definition)
    if literal.kind in ("TRUE", "FALSE"):
        if kind == "boolean":
            return literal.value
        raise _filter_type_error(text, literal, definition)
    if literal.kind == "NUMBER":
        if kind in NUMBER_TYPES:
            return float(literal.value)
        raise _filter_type_error(text, literal, definition)
    if literal.kind == "DATE":
        if kind == "date":
            return literal.value
        raise _filter_type_error(text, literal, definition)
    if literal.kind == "DATETIME":
        if kind == "datetime":
            return parse_datetime(literal.value)
        raise _filter_type_error(text, literal, definition)
    raise _filter_type_error(text, literal, definition)  # pragma: no cover


def _comparable(definition: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if definition.type in ID_TYPES:
        return normalize_id(str(value))
    if definition.type == "datetime":
        return parse_datetime(value)
    if definition.type in NUMBER_TYPES:
        return float(value)
    if definition.type in TEXT_TYPES:
        return str(value).casefold()
    return value


def compile_condition(
    schema: Schema, sobject: SObjectType, condition: Condition, text: str, lookup: RecordLookup
) -> Callable[[dict[str, Any]], bool]:
    if isinstance(condition, BoolOp):
        parts = [compile_condition(schema, sobject, c, text, lookup) for c in condition.items]
        if condition.op == "AND":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    if isinstance(condition, Not):
        inner = compile_condition(schema, sobject, condition.item, text, lookup)
        return lambda record: not inner(record)
    resolved = resolve_path(schema, sobject, condition.field, text)
    definition = resolved.field
    op = condition.op
    checked = [check_literal(text, definition, literal, op) for literal in condition.values]

    def value_of(record: dict[str, Any]) -> Any:
        return _comparable(definition, path_value(resolved, record, lookup))

    if op == "LIKE":
        pattern = checked[0]
        if pattern is None:
            return lambda record: False
        if not isinstance(pattern, StringLiteral):
            raise _filter_type_error(text, condition.values[0], definition)
        regex = re.compile(pattern.like, re.IGNORECASE | re.DOTALL)
        return lambda record: (
            (v := path_value(resolved, record, lookup)) is not None
            and regex.fullmatch(str(v)) is not None
        )
    targets = [_literal_comparable(value) for value in checked]
    if op in ("IN", "NOTIN"):
        present = set(targets)
        if op == "IN":
            return lambda record: (v := value_of(record)) is not None and v in present
        return lambda record: value_of(record) not in present
    target = targets[0]
    if op == "=":
        return lambda record: value_of(record) == target
    if op == "!=":
        return lambda record: value_of(record) != target
    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]
    if target is None:
        return lambda record: False

    def ordered(record: dict[str, Any]) -> bool:
        value = value_of(record)
        return value is not None and compare(value, target)

    return ordered


def _literal_comparable(value: Any) -> Any:
    if isinstance(value, StringLiteral):
        return value.value.casefold()
    return value


def _sort_key(resolved: ResolvedPath, lookup: RecordLookup) -> Callable[[dict[str, Any]], Any]:
    return lambda record: _comparable(resolved.field, path_value(resolved, record, lookup))


def order_records(
    schema: Schema,
    sobject: SObjectType,
    records: list[dict[str, Any]],
    order_by: list[OrderItem],
    text: str,
    lookup: RecordLookup,
) -> list[dict[str, Any]]:
    result = list(records)
    for item in reversed(order_by):
        resolved = resolve_path(schema, sobject, item.field, text)
        present = [r for r in result if path_value(resolved, r, lookup) is not None]
        missing = [r for r in result if path_value(resolved, r, lookup) is None]
        present.sort(key=_sort_key(resolved, lookup), reverse=item.descending)
        result = present + missing if item.nulls_last else missing + present
    return result
