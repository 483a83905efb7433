"""Sending a compiled request: expansion with the run's values, the one outbound path
(``Outbound``), and the parts of its execution record every feature keeps alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from callbridge.outbound import (
    BasicAuth,
    NoAuth,
    OutboundRequest,
    OutboundResult,
    RequestView,
    RetryPolicy,
)
from callbridge.requests.compiler import CompiledRequest


@dataclass(frozen=True)
class Expansion:
    """What a run expands templates with: untrusted ``values`` (call data, extractions),
    trusted ``system_urls`` ({SVADDR}, {OAUTH_INSTANCE_URL}) and the clock."""

    values: Mapping[str, str]
    system_urls: Mapping[str, str]
    tz: tzinfo
    now: datetime | None = None
    link_maker: Callable[[str], str] | None = None

    def expand(self, template: Any) -> str:
        text: str = template.expand(
            self.values,
            system_urls=self.system_urls,
            now=self.now,
            tz=self.tz,
            link_maker=self.link_maker,
        )
        return text


@dataclass(frozen=True)
class Expanded:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str | None

    def view(self, *, auth: Any = None) -> RequestView:
        """The request as shown and recorded before it is sent (credentials as a word)."""
        shown = list(self.headers)
        if auth is not None and not isinstance(auth, NoAuth):
            scheme = "Basic" if isinstance(auth, BasicAuth) else "Bearer"
            shown.append(("Authorization", f"{scheme} credentials"))
        return RequestView.build(self.method, self.url, shown, self.body)


def expand_request(request: CompiledRequest, expansion: Expansion) -> Expanded:
    """Expand URL, headers and the body the method carries (raises
    ``TemplateExpansionError`` when a value cannot be inserted)."""
    url = expansion.expand(request.url)
    headers: list[tuple[str, str]] = []
    if request.headers is not None:
        headers = request.headers.expand_headers(
            expansion.values,
            system_urls=expansion.system_urls,
            now=expansion.now,
            tz=expansion.tz,
            link_maker=expansion.link_maker,
        )
    body: str | None = None
    if request.body is not None and request.send_body:
        body = expansion.expand(request.body)
    if request.implied_content_type and body is not None:
        headers.append(("Content-Type", request.implied_content_type))
    return Expanded(request.method, url, headers, body)


def outbound_request(
    expanded: Expanded,
    *,
    auth: Any,
    timeout: float,
    retry: RetryPolicy,
    deadline: float | None = None,
) -> OutboundRequest:
    return OutboundRequest(
        method=expanded.method,
        url=expanded.url,
        headers=tuple(expanded.headers),
        body=expanded.body,
        timeout=timeout,
        auth=auth,
        retry=retry,
        deadline=deadline,
    )


def error_record(result: OutboundResult) -> dict[str, Any] | None:
    """The outbound error as an execution records it (with the CRM's code, if any)."""
    if result.error is None:
        return None
    return {
        **result.error.as_dict(),
        **({"code": result.error.code} if result.error.code else {}),
    }


def unsent_record(method: str, url: str) -> dict[str, Any]:
    """The request of an execution that failed before anything was sent."""
    return {"method": method, "url": url, "headers": {}, "body": None, "sent": False}
