"""A rule's request, compiled with what a call event makes available: any PBX variable
of the event, and the ``RESPONSE_`` names earlier rules (and IVRs) extract."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from callbridge.requests import CompiledRequest, Finding, Scope, compile_request

EVENT_RANK = {"incoming": 0, "outgoing": 0, "queue": 1, "answer": 2, "disconnect": 3}

RULE_SCOPE = Scope(kind="rule", open_variables=True)


def compile_rule(
    values: Mapping[str, Any],
    *,
    available_responses: Collection[str] | None,
    secrets: Mapping[str, str | None] | None = None,
) -> tuple[CompiledRequest, list[Finding]]:
    """Compile ``values`` (the rule's fields); raises ``RequestInvalid`` with every error.

    ``available_responses``: the names earlier rules (and IVRs) can extract; a
    ``{RESPONSE_X}`` outside it is a warning. ``None`` skips that check (at run time).
    ``secrets``: the decrypted secrets, where the rule is run.
    """
    responses = frozenset(available_responses) if available_responses is not None else None
    return compile_request(values, replace(RULE_SCOPE, responses=responses), secrets=secrets)


def is_earlier(
    event: str,
    order: int,
    rule_id: int | None,
    other_event: str,
    other_order: int,
    other_id: int,
) -> bool:
    """Does the other rule run before this one within a call?"""
    rank, other_rank = EVENT_RANK.get(event, 0), EVENT_RANK.get(other_event, 0)
    if other_event != event:
        return other_rank < rank
    if rule_id is None:
        return other_order <= order
    return (other_order, other_id) < (order, rule_id)
