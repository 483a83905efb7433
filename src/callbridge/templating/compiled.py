"""Compile a template once for one context; expand it many times."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType

from callbridge.messages import Message, define
from callbridge.templating.contexts import Notes, Output, compile_context
from callbridge.templating.escaping import Refusal, clean_value, is_dot_segment
from callbridge.templating.functions import (
    DEFAULT_REGION,
    FUNCTIONS,
    MONITOR_LINK,
    _monitor_link_path,
)
from callbridge.templating.names import DATE_NAMES, RESPONSE_PREFIX, SYSTEM_URL_NAMES, Context
from callbridge.templating.parser import Literal, NameScope, Node, Ref, iter_refs, parse_template
from callbridge.templating.problems import (
    Problem,
    Severity,
    TemplateError,
    TemplateExpansionError,
    errors_of,
)

define(
    {
        "dot_segment": (
            "A value would make the URL path segment at position {position} '.' or '..', "
            "which would change the path; the request is not sent."
        ),
        "value_refused": "{label} at position {position}: {reason}",
    }
)

_NO_URLS: Mapping[str, str] = MappingProxyType({})

LinkMaker = Callable[[str], str]
"""Makes the playback link of a call reference (``MONITOR_LINK``)."""


class _Env:
    """What one expansion reads: the values, the trusted URLs and the clock."""

    __slots__ = ("_local", "link_maker", "now", "region", "system_urls", "tz", "values")

    def __init__(
        self,
        values: Mapping[str, str],
        system_urls: Mapping[str, str],
        now: datetime | None,
        tz: tzinfo,
        region: str,
        link_maker: LinkMaker | None = None,
    ) -> None:
        self.values = values
        self.system_urls = system_urls
        self.now = now
        self.tz = tz
        self.region = region
        self.link_maker = link_maker
        self._local: datetime | None = None

    def monitor_link(self, call_ref: str) -> str:
        """``MONITOR_LINK(x)``: the caller's link maker, else ``{SVADDR}monitor_link/x``."""
        if self.link_maker is not None:
            return self.link_maker(call_ref)
        base = self.system_url("SVADDR")
        return (base.rstrip("/") + "/" if base else "") + _monitor_link_path(call_ref, "")

    def local_time(self) -> datetime:
        if self._local is None:
            now = self.now if self.now is not None else datetime.now(self.tz)
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            self._local = now.astimezone(self.tz)
        return self._local

    def system_url(self, name: str) -> str:
        urls = self.system_urls
        value = urls.get(name)
        if not value and name == "SFAPI":
            value = urls.get("OAUTH_INSTANCE_URL")
        elif not value and name == "OAUTH_INSTANCE_URL":
            value = urls.get("SFAPI")
        return clean_value(value)


Getter = Callable[[_Env], str]


def _calls(node: Node, name: str) -> bool:
    if isinstance(node, Literal | Ref):
        return False
    return node.name == name or any(_calls(arg, name) for arg in node.args)


def _getter(node: Node) -> Getter:
    if isinstance(node, Literal):
        text = node.text
        return lambda env: text
    if isinstance(node, Ref):
        name = node.name
        if name in SYSTEM_URL_NAMES:
            return lambda env: env.system_url(name)
        if name in DATE_NAMES:
            fmt = DATE_NAMES[name]
            return lambda env: env.local_time().strftime(fmt)
        return lambda env: clean_value(env.values.get(name))
    getters = [_getter(arg) for arg in node.args]
    if node.name == MONITOR_LINK:
        return lambda env: env.monitor_link("".join([g(env) for g in getters]))
    function = FUNCTIONS[node.name]
    if len(getters) == 1:
        only = getters[0]
        return lambda env: function(only(env), env.region)
    return lambda env: function("".join([g(env) for g in getters]), env.region)


class CompiledTemplate:
    """A parsed template bound to one context; ``expand`` is cheap and never re-parses.

    Attributes: ``text`` and ``context`` as given; ``variables`` (every name referenced,
    such as ``TEL`` or ``RESPONSE_CONTACT_ID``); ``response_names`` (the ``<NAME>`` parts of
    ``{RESPONSE_<NAME>}``); ``warnings`` (problems that do not prevent saving) and
    ``normalisations`` (what was changed in the literal text, such as a space removed
    from a URL path). ``notices`` is both, in text order, for a save answer.
    """

    __slots__ = (
        "_dot_checks",
        "_json_error",
        "_labels",
        "_parts",
        "_slots",
        "_static",
        "context",
        "normalisations",
        "response_names",
        "text",
        "uses_monitor_link",
        "variables",
        "warnings",
    )

    def __init__(
        self,
        text: str,
        context: Context,
        out: Output,
        variables: frozenset[str],
        warnings: tuple[Problem, ...],
        normalisations: tuple[Problem, ...],
    ) -> None:
        self.text = text
        self.context = context
        self.variables = variables
        self.response_names = frozenset(
            n[len(RESPONSE_PREFIX) :] for n in variables if n.startswith(RESPONSE_PREFIX)
        )
        self.warnings = warnings
        self.normalisations = normalisations
        self._parts = out.parts
        self._slots = tuple((s.index, _getter(s.node), s.escape) for s in out.slots)
        self._labels = tuple((text[s.node.start : s.node.end], s.node.start) for s in out.slots)
        self._dot_checks = tuple(out.dot_checks)
        self._json_error = out.json_error
        self._static = "".join(out.parts) if not out.slots else ""
        self.uses_monitor_link = any(_calls(s.node, MONITOR_LINK) for s in out.slots)

    @property
    def notices(self) -> list[Problem]:
        return sorted(self.warnings + self.normalisations, key=lambda p: p.position)

    @property
    def is_static(self) -> bool:
        """True when the template contains no variable at all."""
        return not self._slots

    def expand(
        self,
        values: Mapping[str, str],
        *,
        system_urls: Mapping[str, str] = _NO_URLS,
        now: datetime | None = None,
        tz: tzinfo = UTC,
        region: str = DEFAULT_REGION,
        link_maker: LinkMaker | None = None,
    ) -> str:
        """Insert ``values`` (untrusted: from the PBX, the caller or a CRM response).

        ``system_urls`` holds the trusted base URLs by name (``OAUTH_INSTANCE_URL``,
        ``SVADDR``; ``SFAPI`` falls back to ``OAUTH_INSTANCE_URL``); those names are never
        read from ``values``. ``now`` (default: the current time) and ``tz`` give the
        ``{DATE-…}`` variables; ``region`` is the default country of ``E164()`` and
        ``NATIONAL()``. ``link_maker`` gives ``MONITOR_LINK(…)`` its value (the playback
        link, signed when playback uses signed links); without it the link is
        ``{SVADDR}monitor_link/…``. A missing value expands to an empty string.

        Raises :class:`TemplateExpansionError` when a value cannot be inserted without
        changing the structure (the request must then not be sent).
        """
        if self._json_error is not None:
            raise TemplateExpansionError(self._json_error)
        slots = self._slots
        if not slots:
            return self._static
        env = _Env(values, system_urls, now, tz, region, link_maker)
        parts = self._parts.copy()
        try:
            for index, getter, escape in slots:
                parts[index] = escape(getter(env))
        except Refusal:
            self._raise_refusal(env)
        for start, end, position in self._dot_checks:
            if is_dot_segment("".join(parts[start:end])):
                raise TemplateExpansionError(Message("dot_segment", position=position), position)
        return "".join(parts)

    def expand_headers(
        self,
        values: Mapping[str, str],
        *,
        system_urls: Mapping[str, str] = _NO_URLS,
        now: datetime | None = None,
        tz: tzinfo = UTC,
        region: str = DEFAULT_REGION,
        link_maker: LinkMaker | None = None,
    ) -> list[tuple[str, str]]:
        """For the ``header`` context: the expanded ``(name, value)`` pairs, in order."""
        if self.context is not Context.HEADER:
            raise ValueError("expand_headers() needs a template compiled for Context.HEADER")
        expanded = self.expand(
            values, system_urls=system_urls, now=now, tz=tz, region=region, link_maker=link_maker
        )
        return split_header_lines(expanded)

    def _raise_refusal(self, env: _Env) -> None:
        for (_index, getter, escape), (label, position) in zip(
            self._slots, self._labels, strict=True
        ):
            try:
                escape(getter(env))
            except Refusal as exc:
                raise TemplateExpansionError(
                    Message("value_refused", label=label, position=position, reason=exc.msg),
                    position,
                ) from None

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.text!r}, {self.context.value!r})"


def split_header_lines(text: str) -> list[tuple[str, str]]:
    """Split an expanded header block into ``(name, value)`` pairs; blank lines are skipped.

    Only ``\\n`` separates lines (values never contain CR or LF after expansion).
    """
    pairs = []
    for line in text.split("\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            pairs.append((name.strip(), value.strip()))
    return pairs


def compile_template(
    text: str,
    context: Context | str,
    *,
    response_names: Collection[str] | None = None,
    extra_names: Collection[str] = (),
    unknown_names: Severity = "error",
) -> CompiledTemplate:
    """Parse and validate ``text`` for ``context``; raises :class:`TemplateError`.

    ``response_names``: the names earlier steps can extract (``CONTACT_ID`` or
    ``RESPONSE_CONTACT_ID``); a ``{RESPONSE_X}`` outside that set is a warning. ``None``
    skips the check. ``extra_names``: variables valid here besides the built-ins (an IVR's
    own extracted names and ``CODE1``…, declared PBX variables). ``unknown_names``:
    ``"warning"`` accepts other ``{NAME}`` references (they expand from ``values``).
    """
    ctx = Context(context)
    text = clean_value(text)
    scope = NameScope.build(extra_names, response_names, unknown_names)
    nodes, problems = parse_template(text, scope, angle_refs=ctx is not Context.BODY_XML)
    notes = Notes()
    out = compile_context(ctx, nodes, problems, notes)
    normalisations = notes.problems()
    if errors_of(problems):
        raise TemplateError(problems + normalisations)
    variables = frozenset(ref.name for ref in iter_refs(nodes))
    warnings = tuple(sorted(problems, key=lambda p: p.position))
    return CompiledTemplate(
        text,
        ctx,
        out,
        variables,
        warnings,
        tuple(sorted(normalisations, key=lambda p: p.position)),
    )


def body_context_for(content_type: str | None) -> Context:
    """The context for a request body with this ``Content-Type`` header value."""
    if not content_type:
        return Context.BODY_TEXT
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/json", "text/json") or media.endswith("+json"):
        return Context.BODY_JSON
    if media == "application/x-www-form-urlencoded":
        return Context.BODY_FORM
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return Context.BODY_XML
    return Context.BODY_TEXT


__all__ = [
    "CompiledTemplate",
    "body_context_for",
    "compile_template",
    "split_header_lines",
]
