"""The configuration document as YAML text (PyYAML).

Reading: scalars stay text unless they are null (``~``, ``null``, empty); the field's
schema gives them their type. So a phone number keeps its leading zero
(``target: 0312345670`` is not the octal number YAML 1.1 would make of it), ``no`` is not
a boolean unless the field is one, and a time like ``12:30`` is not a sexagesimal number.
A key given twice and anchors/aliases are errors (PyYAML keeps the last duplicate
silently; aliases can multiply a small document into a huge one), so are a key that is no
name (a list, a mapping, null) and nesting deeper than ``MAX_DEPTH`` (the reader recurses
once a level: a few thousand brackets would exhaust the stack).

Writing: block style, keys in the schema's order, text with line breaks as ``|`` blocks,
Japanese as is.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node
from yaml.reader import ReaderError
from yaml.resolver import BaseResolver

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# An export nests 6 levels; a screen-pop lookup written by hand a few more.
MAX_DEPTH = 32


class DocumentSyntaxError(ValueError):
    """The text is no YAML document callbridge reads; the message names line and column."""


class _Loader(yaml.SafeLoader):
    depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ConstructorError(
                None, None, "anchors and aliases (*name) are not supported", event.start_mark
            )
        if self.depth >= MAX_DEPTH:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ConstructorError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# Only null is recognised by its spelling; every other plain scalar is text.
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _mapping(loader: _Loader, node: Node) -> dict[Any, Any]:
    assert isinstance(node, MappingNode)
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConstructorError(
                None,
                None,
                "a key must be a name, not a list, a mapping or null",
                key_node.start_mark,
            )
        if key in seen:
            raise ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse(text: str | bytes) -> Any:
    """The document's data; ``DocumentSyntaxError`` with line and column when unreadable."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentSyntaxError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentSyntaxError(f"the document is not UTF-8 text ({exc.reason})") from None
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise DocumentSyntaxError(_describe(exc)) from None
    except ReaderError as exc:
        raise DocumentSyntaxError(_unreadable_character(text, exc)) from None
    except yaml.YAMLError as exc:
        raise DocumentSyntaxError(str(exc)) from None
    if len(documents) > 1:
        raise DocumentSyntaxError("the text holds several YAML documents: give one")
    return documents[0] if documents else None


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "not readable"
    return f"{where}{problem}"


def _unreadable_character(text: str, exc: ReaderError) -> str:
    """A control character YAML does not allow (a NUL, say), by line and column."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    return (
        f"line {line}, column {column}: the character #x{exc.character:04x} is not allowed "
        "in a YAML document"
    )


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
