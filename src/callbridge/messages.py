"""The message catalogue: every sentence the compilers, services and engines give an admin.

A :class:`Message` is a message id (a key of :data:`CATALOGUE`) with its parameters. The
catalogue maps each id to its English text, which is also the gettext msgid: the UI
renders a message in the request's language with the Babel catalogs of ``callbridge.i18n``
(``message.render(gettext)``), the JSON API answers the English text exactly as before
(``message.text`` / ``str(message)``) plus the id as a machine-readable ``code``.

Parameters are written ``{lower_case}`` in the text; upper-case ``{TEL}`` is the template
language's own notation and is left as it is. Parameters are values (names, numbers, the
admin's own text, already formatted), never sentences; a value
that is itself a sentence is a ``Message`` and is rendered in the same language. A message
may go on with further sentences (``first.then(second)``), rendered one after the other.

The ``code`` (what the API answers) is the first message's id up to its first dot: the
variants of one finding share their code (``url_variable_host`` and
``url_variable_host.start`` are both ``url_variable_host``).

Pure code (standard library only), so the template and pattern compilers can use it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any, Union

Param = Union[str, int, float, "Message"]
Gettext = Callable[[str], str]

# id → English text (the msgid). Grouped by the code that raises them; ids are stable
# (they are the API's ``code``), English texts are stable (they are the API's message).
CATALOGUE: dict[str, str] = {}


def define(entries: Mapping[str, str]) -> None:
    """Add catalogue entries; an id keeps one text (a second, different one is a bug)."""
    for code, text in entries.items():
        if CATALOGUE.setdefault(code, text) != text:
            raise ValueError(f"message id {code!r} is defined twice")


_PARAM_RE = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def _english(text: str) -> str:
    return text


class Message:
    """A catalogue message: ``Message("unknown_variable", variable="{TELNAM}")``."""

    __slots__ = ("id", "more", "params")

    id: str
    params: tuple[tuple[str, Param], ...]
    more: tuple[Message, ...]

    def __init__(self, id: str, /, **params: Param) -> None:
        if id not in CATALOGUE:
            raise KeyError(f"unknown message id {id!r}")
        self.id = id
        self.params = tuple(params.items())
        self.more = ()

    def then(self, *others: Message) -> Message:
        """This message followed by further sentences (the code stays this one's)."""
        joined = Message.__new__(Message)
        joined.id, joined.params, joined.more = self.id, self.params, self.more + others
        return joined

    @property
    def code(self) -> str:
        """The machine-readable code: the id up to its first dot."""
        return self.id.partition(".")[0]

    def render(self, gettext: Gettext) -> str:
        """The message in the language of ``gettext`` (a translations' gettext)."""
        values = {
            name: value.render(gettext) if isinstance(value, Message) else value
            for name, value in self.params
        }
        text = _PARAM_RE.sub(
            lambda match: str(values.get(match[1], match[0])), gettext(CATALOGUE[self.id])
        )
        for other in self.more:
            following = other.render(gettext)
            # Sentences in English are separated by a space; Japanese ones are not.
            text += following if not text[-1:].isascii() else " " + following
        return text

    @property
    def text(self) -> str:
        """The English text (what the JSON API answers)."""
        return self.render(_english)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Message({self.id!r}, {dict(self.params)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.id, self.params, self.more) == (
            other.id,
            other.params,
            other.more,
        )

    def __hash__(self) -> int:
        return hash((self.id, self.params, self.more))

    def to_json(self) -> dict[str, Any]:
        """A JSON form, for messages stored with a record and rendered later."""
        data: dict[str, Any] = {
            "id": self.id,
            "params": {
                name: value.to_json() if isinstance(value, Message) else value
                for name, value in self.params
            },
        }
        if self.more:
            data["more"] = [other.to_json() for other in self.more]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        params = {
            name: cls.from_json(value) if isinstance(value, dict) else value
            for name, value in dict(data.get("params") or {}).items()
        }
        message = cls(str(data["id"]), **params)
        more = [cls.from_json(other) for other in data.get("more") or ()]
        return message.then(*more) if more else message


define(
    {
        # Text that has no id of its own (a provider's or a library's words), as a message.
        "text": "{text}",
        # Two parts of one sentence: "first; then".
        "joined": "{first}; {then}",
    }
)


def as_message(value: str | Message) -> Message:
    return value if isinstance(value, Message) else Message("text", text=value)


def joined(first: Message, *others: Message) -> Message:
    """Parts one after the other: "first; second; …" (the code stays the first's)."""
    result = first
    for other in others:
        result = Message("joined", first=result, then=other)
    return result


class MessageError(ValueError):
    """A ``ValueError`` with a catalogue message (pydantic validators raise it; the UI
    renders it translated, the API adds its code)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.msg = message


def message_of(value: str | Message) -> Message | None:
    return value if isinstance(value, Message) else None


def english(value: str | Message) -> str:
    return value.text if isinstance(value, Message) else value


def render(value: str | Message | Mapping[str, Any] | None, gettext: Gettext) -> str:
    """Render a message in the language of ``gettext``. Accepted: a ``Message``, its JSON
    form, or a stored record holding one as ``msg`` beside its English ``message`` (an
    execution's error or note); plain text is shown as it is (values, or records stored
    before messages had ids)."""
    if value is None:
        return ""
    if isinstance(value, Message):
        return value.render(gettext)
    if isinstance(value, Mapping):
        data = value.get("msg") if "id" not in value else value
        if isinstance(data, Mapping):
            try:
                return Message.from_json(data).render(gettext)
            except (KeyError, ValueError, TypeError):
                pass  # an id this version does not know: its English text
        return str(value.get("message") or "")
    return value


# Parameters that, by convention, hold a server's or a library's own words (a CRM's error
# message, the start of an unreadable answer, an exception's text): shown as they are.
VERBATIM_PARAMS = frozenset({"salesforce", "detail", "text"})


def render_html(
    value: str | Message | Mapping[str, Any] | None,
    gettext: Gettext,
    verbatim: frozenset[str] = VERBATIM_PARAMS,
) -> str:
    """As :func:`render`, as HTML: the text escaped, and the parameters named in
    ``verbatim`` (a server's own words, shown as they are in every language) each in a
    ``<code>``."""
    message: Message | None = None
    if isinstance(value, Message):
        message = value
    elif isinstance(value, Mapping):
        data = value.get("msg") if "id" not in value else value
        if isinstance(data, Mapping):
            try:
                message = Message.from_json(data)
            except (KeyError, ValueError, TypeError):
                message = None
        if message is None:
            return html.escape(str(value.get("message") or ""))
    if message is None:
        return html.escape(str(value or ""))
    return _html(message, gettext, verbatim)


def _html(message: Message, gettext: Gettext, verbatim: frozenset[str]) -> str:
    values = dict(message.params)
    template = gettext(CATALOGUE[message.id])
    parts: list[str] = []
    plain: list[str] = []  # the text as render() gives it, for the sentence separator
    position = 0
    for match in _PARAM_RE.finditer(template):
        parts.append(html.escape(template[position : match.start()]))
        plain.append(template[position : match.start()])
        name = match[1]
        if name not in values:
            parts.append(html.escape(match[0]))
            plain.append(match[0])
        elif isinstance(values[name], Message):
            inner = values[name]
            assert isinstance(inner, Message)
            parts.append(_html(inner, gettext, verbatim))
            plain.append(inner.render(gettext))
        elif name in verbatim:
            parts.append(f"<code>{html.escape(str(values[name]))}</code>")
            plain.append(str(values[name]))
        else:
            parts.append(html.escape(str(values[name])))
            plain.append(str(values[name]))
        position = match.end()
    parts.append(html.escape(template[position:]))
    plain.append(template[position:])
    text, shown = "".join(parts), "".join(plain)
    for other in message.more:
        following = _html(other, gettext, verbatim)
        text += following if not shown[-1:].isascii() else " " + following
        shown += other.render(gettext)
    return text


def stored(message: Message) -> dict[str, Any]:
    """A message as a record keeps it: the English ``message`` and the ``msg``."""
    return {"message": message.text, "msg": message.to_json()}


# Keys under which records keep a message's id and parameters for the UI.
STORED_KEYS = frozenset({"msg", "reason_msg"})


def without_stored(value: Any) -> Any:
    """``value`` without the stored messages (the JSON API answers the English text)."""
    if isinstance(value, dict):
        return {k: without_stored(v) for k, v in value.items() if k not in STORED_KEYS}
    if isinstance(value, list):
        return [without_stored(item) for item in value]
    return value
