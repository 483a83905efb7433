"""The ``salesforce`` lookup of a screen pop (DESIGN §12.2): one SOSL search over the
phone fields of the profile's objects; the highest-priority object with a match wins."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from callbridge.agent_desktop.schemas import Match
from callbridge.history import phones
from callbridge.history.salesforce import error_message, search_url
from callbridge.messages import Message, define
from callbridge.models import OAuthAccount
from callbridge.outbound import OAuthAuth, OutboundRequest, RetryPolicy, get_outbound
from callbridge.runtime import Runtime
from callbridge.templating.escaping import sosl_term_wrapped

# Why a pop's lookup failed (the card's ``lookup_error``): catalogue messages, shown in
# the reading agent's language; what the CRM itself said is a verbatim parameter. The
# English texts are the ones the SSE field carried before it had ids.
define(
    {
        "pop_lookup_not_connected": "OAuth account {id} is not connected",
        "pop_lookup_salesforce": "{salesforce}",
        "pop_lookup_status": "HTTP {status}",
        "pop_lookup_unreadable": (
            "Salesforce's answer could not be read: it began with {salesforce}"
        ),
        "pop_lookup_invalid": "the lookup is invalid and was not run: {reason}",
        "pop_lookup_secrets": "the lookup's secrets cannot be read: {detail}",
        "pop_lookup_crashed": "the lookup stopped on an internal error: {detail}",
    }
)


@dataclass
class Found:
    matches: list[Match] = field(default_factory=list)
    url: str | None = None
    new_record_url: str | None = None
    error: Message | None = None


async def _account_exists(runtime: Runtime, account_id: int) -> bool:
    from callbridge.calls.writes import read_session

    async with read_session(runtime) as session:
        return await session.get(OAuthAccount, account_id) is not None


def record_url(base: str, sobject: str, record_id: str) -> str:
    return f"{base.rstrip('/')}/lightning/r/{sobject}/{record_id}/view"


def new_record_url(base: str, sobject: str, tel: str) -> str:
    """The new-record form of ``sobject`` with the caller's number already in Phone."""
    values = quote(f"Phone={tel}", safe="")
    return f"{base.rstrip('/')}/lightning/o/{sobject}/new?defaultFieldValues={values}"


def _returning(objects: list[dict[str, Any]]) -> str:
    parts = []
    for obj in objects:
        name = obj["api_name"]
        if name == "Lead":
            parts.append("Lead(Id, Name WHERE IsConverted = false)")
        else:
            parts.append(f"{name}(Id, Name)")
    return ", ".join(parts)


def choose(base: str, objects: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[Match]:
    """The records of the highest-priority object that has any, as card matches."""
    for obj in objects:
        name = obj["api_name"]
        found = [r for r in records if r.get("attributes", {}).get("type") == name]
        if found:
            return [
                Match(
                    object=name,
                    id=str(r["Id"]),
                    name=str(r.get("Name") or ""),
                    url=record_url(base, name, str(r["Id"])),
                )
                for r in found
            ]
    return []


async def salesforce_lookup(runtime: Runtime, lookup: dict[str, Any], tel: str) -> Found:
    objects = sorted(lookup.get("objects") or [], key=lambda o: int(o["priority"]))
    outbound = get_outbound(runtime)
    account_id = int(lookup["oauth_account_id"])
    base = await outbound.instance_url(account_id)
    if not base:
        if not await _account_exists(runtime, account_id):
            return Found(error=Message("screen_pop_account_deleted", id=account_id))
        return Found(error=Message("pop_lookup_not_connected", id=account_id))
    found = Found(new_record_url=new_record_url(base, objects[0]["api_name"], tel))
    forms = phones.search_forms(tel, runtime.settings.history_phone_region)
    if not forms:
        found.url = found.new_record_url
        return found
    terms = " OR ".join(sosl_term_wrapped(form) for form in forms)
    result = await outbound.send(
        OutboundRequest(
            method="GET",
            url=base.rstrip("/")
            + search_url(f"FIND {{{terms}}} IN PHONE FIELDS RETURNING {_returning(objects)}"),
            headers=(("Accept", "application/json"),),
            timeout=float(lookup.get("timeout_seconds") or 5.0),
            auth=OAuthAuth(account_id),
            retry=RetryPolicy.NONE,
        )
    )
    if result.error is not None and result.status is None:
        found.error = (
            result.error.said
            if isinstance(result.error.said, Message)
            else Message("pop_lookup_salesforce", salesforce=result.error.said)
        )
        return found
    try:
        body = json.loads(result.text)
    except ValueError:
        body = None
    if result.status is not None and result.status >= 400:
        text = error_message(body)
        found.error = (
            Message("pop_lookup_salesforce", salesforce=text)
            if text
            else Message("pop_lookup_status", status=result.status)
        )
        return found
    records = body.get("searchRecords") if isinstance(body, dict) else None
    if not isinstance(records, list):
        found.error = Message("pop_lookup_unreadable", salesforce=repr(result.text[:80]))
        return found
    found.matches = choose(base, objects, [r for r in records if isinstance(r, dict)])
    if len(found.matches) == 1:
        found.url = found.matches[0].url
    elif not found.matches:
        found.url = found.new_record_url
    return found
