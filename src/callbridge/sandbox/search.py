"""Running SOQL queries and SOSL searches against the org's records.

SOSL subset: ``FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING Obj[(f1, f2
[WHERE …] [ORDER BY …] [LIMIT n])][, …]] [LIMIT n]``. Inside the braces the reserved
characters ``& | ! ( ) { } [ ] ^ " ~ * ? : \\ ' + -`` are taken literally when escaped with a
backslash; ``"…"`` is a phrase, ``*`` and ``?`` are wildcards, ``AND``/``OR``/``AND NOT`` and
parentheses combine terms, adjacent terms must all match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callbridge.sandbox.phone import is_phone_like, phone_key, phone_matches
from callbridge.sandbox.records import record_url
from callbridge.sandbox.schema import FieldDef, SObjectType
from callbridge.sandbox.soql import (
    Condition,
    FieldPath,
    OrderItem,
    Parser,
    ResolvedPath,
    compile_condition,
    order_records,
    parse_query,
    positioned_error,
    resolve_path,
    tokenize,
    unsupported_type,
)
from callbridge.sandbox.wire import SalesforceError

if TYPE_CHECKING:
    from callbridge.sandbox.state import SandboxState

SOSL_RESERVED = frozenset("&|!(){}[]^\"~*?:\\'+-")
SEARCH_RECORDS_SINCE = (37, 0)
DEFAULT_SEARCH_LIMIT = 2000
SEARCH_SCOPES = frozenset({"ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR"})
_SEARCHABLE_TYPES = frozenset({"string", "textarea", "phone", "email", "url", "combobox"})


# --- SOQL ---------------------------------------------------------------------------------


@dataclass
class QueryResult:
    records: list[dict[str, Any]]
    total: int


def _place(
    state: SandboxState,
    container: dict[str, Any],
    record: dict[str, Any] | None,
    resolved: ResolvedPath,
    depth: int,
    version: str,
) -> None:
    """Put one selected value into a rendered record, nesting relationship objects."""
    if depth == len(resolved.hops):
        container[resolved.field.name] = record.get(resolved.field.name) if record else None
        return
    hop = resolved.hops[depth]
    name = resolved.names[depth]
    target_id = record.get(hop.name) if record else None
    found = state.find(target_id) if target_id else None
    if found is None:
        container.setdefault(name, None)
        return
    target_type, target = found
    nested = container.get(name)
    if not isinstance(nested, dict):
        nested = {
            "attributes": {
                "type": target_type.name,
                "url": record_url(target_type, target, version),
            }
        }
        container[name] = nested
    _place(state, nested, target, resolved, depth + 1, version)


def render_selected(
    state: SandboxState,
    sobject: SObjectType,
    record: dict[str, Any],
    selected: list[ResolvedPath],
    version: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "attributes": {"type": sobject.name, "url": record_url(sobject, record, version)}
    }
    for resolved in selected:
        _place(state, body, record, resolved, 0, version)
    return body


def run_query(
    state: SandboxState, text: str, version: str, *, include_deleted: bool = False
) -> QueryResult:
    """Execute a SOQL query: every record it returns, rendered, and the total size."""
    query = parse_query(text)
    sobject = state.schema.get(query.object_name)
    if sobject is None:
        raise unsupported_type(text, query.object_pos, query.object_name)
    schema = state.schema
    selected: list[ResolvedPath] = []
    if query.fields is not None:
        seen: set[str] = set()
        for path in query.fields:
            resolved = resolve_path(schema, sobject, path, text)
            key = ".".join(resolved.names).lower()
            if key not in seen:
                seen.add(key)
                selected.append(resolved)
    with state.lock:
        rows = state.all_records(sobject) if include_deleted else state.live_records(sobject)
        if query.where is not None:
            test = compile_condition(schema, sobject, query.where, text, state.find)
            rows = [row for row in rows if test(row)]
        if query.order_by:
            rows = order_records(schema, sobject, rows, query.order_by, text, state.find)
        if query.offset:
            rows = rows[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]
        if query.fields is None:
            return QueryResult([], len(rows))
        rendered = [render_selected(state, sobject, row, selected, version) for row in rows]
    return QueryResult(rendered, len(rendered))


# --- SOSL: the search expression ----------------------------------------------------------


@dataclass
class Word:
    text: str  # unescaped; wildcards kept as "*" / "?" when unescaped
    wildcard: bool
    phrase: bool


@dataclass
class TermOp:
    op: str  # AND OR ANDNOT
    left: Term
    right: Term


Term = Word | TermOp


@dataclass
class SearchTerm:
    """The text between the braces, decoded, and the expression it means."""

    raw: str
    text: str  # escapes removed
    expression: Term


def _malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_SEARCH", message)


def _no_term() -> SalesforceError:
    return _malformed("No search term found. The search term must be enclosed in braces.")


def _lex_term(raw: str) -> list[tuple[str, str]]:
    """Tokens of a search term: (kind, text) with kinds WORD, PHRASE, LPAREN, RPAREN."""
    tokens: list[tuple[str, str]] = []
    current: list[str] = []
    wildcard = False

    def flush() -> None:
        nonlocal wildcard
        if current:
            tokens.append(("WILD" if wildcard else "WORD", "".join(current)))
            current.clear()
        wildcard = False

    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            current.append(raw[i + 1])
            i += 2
            continue
        if char.isspace():
            flush()
        elif char == '"':
            flush()
            end = i + 1
            phrase: list[str] = []
            while end < len(raw) and raw[end] != '"':
                if raw[end] == "\\" and end + 1 < len(raw):
                    end += 1
                phrase.append(raw[end])
                end += 1
            tokens.append(("PHRASE", "".join(phrase)))
            i = end + 1
            continue
        elif char in "()":
            flush()
            tokens.append(("LPAREN" if char == "(" else "RPAREN", char))
        elif char in "*?":
            current.append(char)
            wildcard = True
        else:
            current.append(char)
        i += 1
    flush()
    return tokens


def _parse_term_expression(tokens: list[tuple[str, str]]) -> Term:
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def primary() -> Term:
        nonlocal position
        token = peek()
        if token is None:
            raise _malformed("search term must be longer than one character")
        position += 1
        kind, text = token
        if kind == "LPAREN":
            inner = disjunction()
            if peek() == ("RPAREN", ")"):
                position += 1
            return inner
        if kind == "RPAREN":
            raise _malformed("search term must be longer than one character")
        return Word(text, kind == "WILD", kind == "PHRASE")

    def conjunction() -> Term:
        nonlocal position
        left = primary()
        while True:
            token = peek()
            if token is None or token[0] == "RPAREN" or token == ("WORD", "OR"):
                return left
            op = "AND"
            if token == ("WORD", "AND"):
                position += 1
                if peek() == ("WORD", "NOT"):
                    position += 1
                    op = "ANDNOT"
            left = TermOp(op, left, primary())

    def disjunction() -> Term:
        nonlocal position
        left = conjunction()
        while peek() == ("WORD", "OR"):
            position += 1
            left = TermOp("OR", left, conjunction())
        return left

    return disjunction()


def parse_search_term(raw: str) -> SearchTerm:
    text = re.sub(r"\\(.)", r"\1", raw)
    significant = [c for c in text if not c.isspace() and c not in '*?"()']
    if len(significant) < 2:
        raise _malformed("search term must be longer than one character")
    return SearchTerm(raw, text, _parse_term_expression(_lex_term(raw)))


# --- SOSL: the statement ------------------------------------------------------------------


@dataclass
class ReturningSpec:
    object_name: str
    pos: int
    fields: list[FieldPath] | None = None
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    where_text: str | None = None  # parameterizedSearch: the WHERE clause as its own text


@dataclass
class SearchSpec:
    term: SearchTerm
    scope: str = "ALL"  # ALL NAME EMAIL PHONE
    returning: list[ReturningSpec] | None = None
    limit: int | None = None


def parse_sosl(text: str) -> SearchSpec:
    match = re.match(r"\s*FIND\b", text, re.IGNORECASE)
    if not match:
        tokens = tokenize(text) if text.strip() else []
        if tokens and tokens[0].kind != "EOF":
            raise positioned_error(
                text, tokens[0].pos, f"unexpected token: '{tokens[0].text}'", "MALFORMED_SEARCH"
            )
        raise _no_term()
    i = match.end()
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        raise _no_term()
    start = i + 1
    j = start
    while j < len(text) and text[j] != "}":
        j += 2 if text[j] == "\\" else 1
    if j >= len(text):
        raise _no_term()
    spec = SearchSpec(parse_search_term(text[start:j]))
    try:
        _parse_clauses(spec, Parser(text, tokenize(text, j + 1)))
    except SalesforceError as error:
        if error.error_code == "MALFORMED_QUERY":
            error.error_code = "MALFORMED_SEARCH"
        raise
    return spec


def _parse_clauses(spec: SearchSpec, parser: Parser) -> None:
    if parser.at_keyword("IN"):
        parser.advance()
        scope = parser.current
        if scope.kind != "IDENT" or scope.text.upper() not in SEARCH_SCOPES:
            raise parser.unexpected()
        parser.advance()
        fields_word = parser.current
        if fields_word.kind != "IDENT" or fields_word.text.upper() != "FIELDS":
            raise parser.unexpected()
        parser.advance()
        spec.scope = "ALL" if scope.text.upper() == "SIDEBAR" else scope.text.upper()
    if parser.current.kind == "IDENT" and parser.current.text.upper() == "RETURNING":
        parser.advance()
        spec.returning = [_returning(parser)]
        while parser.current.kind == "COMMA":
            parser.advance()
            spec.returning.append(_returning(parser))
    if parser.at_keyword("LIMIT"):
        parser.advance()
        spec.limit = parser.integer()
    if parser.current.kind != "EOF":
        raise parser.unexpected()


def _returning(parser: Parser) -> ReturningSpec:
    token = parser.current
    if token.kind != "IDENT" or "." in token.text:
        raise parser.unexpected()
    parser.advance()
    spec = ReturningSpec(token.text, token.pos)
    if parser.current.kind != "LPAREN":
        return spec
    parser.advance()
    spec.fields = parser.select_list() or []
    if parser.at_keyword("WHERE"):
        parser.advance()
        spec.where = parser.condition()
    if parser.at_keyword("ORDER"):
        parser.advance()
        parser.expect_keyword("BY")
        spec.order_by = parser.order_by()
    if parser.at_keyword("LIMIT"):
        parser.advance()
        spec.limit = parser.integer()
    if parser.current.kind != "RPAREN":
        raise parser.unexpected()
    parser.advance()
    return spec


# --- SOSL: matching -----------------------------------------------------------------------


def _scope_fields(sobject: SObjectType, scope: str) -> list[FieldDef]:
    if scope == "PHONE":
        return [f for f in sobject.fields if f.type == "phone"]
    if scope == "EMAIL":
        return [f for f in sobject.fields if f.type == "email"]
    if scope == "NAME":
        names = {"FirstName", "LastName", "Company"}
        return [f for f in sobject.fields if f.name_field or f.name in names]
    return [f for f in sobject.fields if f.type in _SEARCHABLE_TYPES]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _word_matches(word: Word, value: str, definition: FieldDef, country: str) -> bool:
    folded = _fold(value)
    needle = _fold(word.text)
    if word.phrase:
        return needle in folded
    phone_like = definition.type == "phone" and is_phone_like(word.text)
    if phone_like and phone_matches(word.text, value, country):
        return True
    if word.wildcard:
        pattern = re.escape(needle).replace(r"\*", ".*").replace(r"\?", ".")
        return any(re.fullmatch(pattern, token) for token in _tokens(folded)) or (
            not needle.isascii() and re.search(pattern, folded) is not None
        )
    if needle.isascii():
        tokens = _tokens(folded)
        parts = [t for t in re.split(r"\W+", needle) if t]
        # Punctuation separates words in the index: "(Tokyo)" finds "Tokyo".
        return needle in tokens or (bool(parts) and all(p in tokens for p in parts))
    return needle in folded  # CJK text is indexed by n-grams: any substring matches


def _tokens(folded: str) -> set[str]:
    """Words of a field value: whole whitespace-separated chunks and their alphanumeric parts."""
    chunks = {t for t in re.split(r"[\s,;()\[\]{}<>\"']+", folded) if t}
    return chunks | {t for t in re.split(r"\W+", folded) if t}


def _term_matches(term: Term, record: dict[str, Any], fields: list[FieldDef], country: str) -> bool:
    if isinstance(term, TermOp):
        left = _term_matches(term.left, record, fields, country)
        if term.op == "OR":
            return left or _term_matches(term.right, record, fields, country)
        right = _term_matches(term.right, record, fields, country)
        return left and (not right if term.op == "ANDNOT" else right)
    return any(
        record.get(f.name) is not None and _word_matches(term, str(record[f.name]), f, country)
        for f in fields
    )


def _record_matches(
    term: SearchTerm, record: dict[str, Any], fields: list[FieldDef], scope: str, country: str
) -> bool:
    """Phone numbers are indexed whole: a phone-like term also matches a number as one unit."""
    if is_phone_like(term.text):
        whole = Word(term.text.strip(), "*" in term.text or "?" in term.text, False)
        phones = [f for f in fields if f.type == "phone"]
        if _term_matches(whole, record, phones, country):
            return True
        if scope == "PHONE":
            return False
    return _term_matches(term.expression, record, fields, country)


def _phone_keys(term: Term, country: str) -> set[str] | None:
    """The keys of a term made only of whole phone numbers joined with OR, else None."""
    if isinstance(term, TermOp):
        if term.op != "OR":
            return None
        left = _phone_keys(term.left, country)
        right = _phone_keys(term.right, country) if left is not None else None
        return left | right if left is not None and right is not None else None
    if term.wildcard or term.phrase or not is_phone_like(term.text):
        return None
    key = phone_key(term.text, country)
    return {key} if key is not None else None


def run_search(
    state: SandboxState, spec: SearchSpec, text: str, version: str
) -> list[dict[str, Any]]:
    """Every record the search finds, rendered, in RETURNING order."""
    schema = state.schema
    returning = spec.returning
    if returning is None:
        returning = [ReturningSpec(t.name, 0) for t in schema.all() if t.searchable]
    results: list[dict[str, Any]] = []
    overall = spec.limit if spec.limit is not None else DEFAULT_SEARCH_LIMIT
    with state.lock:
        for item in returning:
            sobject = schema.get(item.object_name)
            if sobject is None:
                raise unsupported_type(text, item.pos, item.object_name)
            clause_text = item.where_text if item.where_text is not None else text
            selected = [resolve_path(schema, sobject, p, text) for p in item.fields or []]
            if not selected:
                selected = [resolve_path(schema, sobject, FieldPath(["Id"], item.pos), text)]
            fields = _scope_fields(sobject, spec.scope)
            country = state.default_country_code
            keys = (
                _phone_keys(spec.term.expression, country)
                if spec.scope == "PHONE" and isinstance(spec.term.expression, TermOp)
                else None
            )
            if keys is not None:
                # Numbers joined with OR (a phone lookup of many calls at once): the same
                # matches as term by term, compared by each number's key.
                rows = [
                    r
                    for r in state.live_records(sobject)
                    if any(
                        r.get(f.name) is not None and phone_key(str(r[f.name]), country) in keys
                        for f in fields
                    )
                ]
            else:
                rows = [
                    r
                    for r in state.live_records(sobject)
                    if _record_matches(spec.term, r, fields, spec.scope, country)
                ]
            if item.where is not None:
                test = compile_condition(schema, sobject, item.where, clause_text, state.find)
                rows = [r for r in rows if test(r)]
            if item.order_by:
                rows = order_records(schema, sobject, rows, item.order_by, text, state.find)
            if item.limit is not None:
                rows = rows[: item.limit]
            for row in rows:
                if len(results) >= overall:
                    return results
                results.append(render_selected(state, sobject, row, selected, version))
    return results


def search_body(records: list[dict[str, Any]], version: str) -> Any:
    """``{"searchRecords":[…]}`` from v37.0; a bare array before."""
    major, minor = (int(part) for part in version.split("."))
    if (major, minor) >= SEARCH_RECORDS_SINCE:
        return {"searchRecords": records}
    return records
