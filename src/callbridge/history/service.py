"""History links: validation, create/update/delete, status semantics (DESIGN §11.1, §11.3),
the history rows created at ``disconnect``, the history list and "retry now"."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.errors import FieldError, FieldErrors, NotFound
from callbridge.history.reasons import reason_code, shown_reason
from callbridge.history.schemas import (
    HistoryLinkCreate,
    HistoryLinkFields,
    HistoryLinkRead,
    HistoryLinkUpdate,
    LinkedObject,
)
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define
from callbridge.models import HistoryLink, HistoryRow, OAuthAccount
from callbridge.requests.schemas import Warning_
from callbridge.templating import Context, TemplateError, compile_template

define(
    {
        "name_taken.history_link": "Another history link is named '{name}'",
        "not_found.oauth_account": "OAuth account {id} does not exist",
        "history_link_not_salesforce": "OAuth account '{name}' is not a Salesforce account: "
        "the history link writes Salesforce Tasks",
        "history_link_record_id": "No Salesforce record id found: give a 15/18-character id or "
        "paste the record's URL (…/lightning/r/Account/0012v000032fR15AAE/view)",
        "history_link_url_reduced": "The URL was reduced to its record id {record_id}.",
        "history_link_fallback_required": "A fallback record is required when several or no "
        "records match and the behaviour is 'fallback'",
        "history_link_consent": "API consent is required before the status can be '{status}'",
        "history_link_no_objects": "At least one linked object is required",
        "history_link_key_prefix": "The key prefix must be exactly 3 letters or digits "
        "(got '{key_prefix}')",
        "history_link_listed_twice": "{name} is listed twice",
        "history_link_priority_taken": "Priority {priority} is used by another object",
        "history_link_reserved_field": "{name} is set by callbridge itself and cannot be mapped",
        "history_link_not_task_field": "{name} is not a Task field (standard fields: "
        "{fields}; custom fields end in __c)",
        "history_link_mapped_twice": "{name} is mapped twice",
        "not_found.history_link": "history link {id} does not exist",
    }
)

# Names a subject or mapping template may use besides the call's variables.
EXTRA_NAMES = ("DIRECTION_LABEL", "NOTES", "WRAPUP")

# Task fields callbridge writes itself for matching and idempotency: not mappable.
RESERVED_FIELDS = frozenset({"WhoId", "WhatId", "B_UniqueId__c", "CallObject", "TaskSubtype"})
# Standard Task fields a mapping may set (custom fields end in __c; the check asks describe).
TASK_FIELDS = frozenset(
    {
        "Subject",
        "Status",
        "Priority",
        "ActivityDate",
        "Description",
        "Type",
        "CallType",
        "CallDurationInSeconds",
        "CallDisposition",
        "OwnerId",
        "ReminderDateTime",
        "IsReminderSet",
        "RecurrenceInterval",
    }
)

_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_LIGHTNING_RE = re.compile(
    r"/lightning/r/(?:[A-Za-z0-9_]+/)?([A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)(?:/|$)"
)
_CLASSIC_RE = re.compile(r"^https?://[^/]+/([A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)(?:[/?#]|$)")
_KEY_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{3}$")


def parse_record_ref(raw: str) -> tuple[str, bool] | None:
    """A record id from an id or a pasted Lightning/Classic URL: (id, was_url); None when
    there is no id in it."""
    text = raw.strip()
    if _ID_RE.match(text):
        return text, False
    for pattern in (_LIGHTNING_RE, _CLASSIC_RE):
        found = pattern.search(text)
        if found:
            return found.group(1), True
    return None


# ---- validation --------------------------------------------------------------------


def object_errors(objects: list[LinkedObject], at: tuple[str, ...] = ()) -> list[FieldError]:
    """The linked objects' problems: a key prefix that is not 3 letters or digits, an object
    or a priority listed twice (``at``: where the list is, for the error's location)."""
    errors: list[FieldError] = []
    seen_names: set[str] = set()
    seen_priorities: set[int] = set()
    for index, obj in enumerate(objects):
        if not _KEY_PREFIX_RE.match(obj.key_prefix):
            errors.append(
                FieldError(
                    (*at, "objects", str(index), "key_prefix"),
                    Message("history_link_key_prefix", key_prefix=obj.key_prefix),
                )
            )
        if obj.api_name.lower() in seen_names:
            errors.append(
                FieldError(
                    (*at, "objects", str(index), "api_name"),
                    Message("history_link_listed_twice", name=obj.api_name),
                )
            )
        if obj.priority in seen_priorities:
            errors.append(
                FieldError(
                    (*at, "objects", str(index), "priority"),
                    Message("history_link_priority_taken", priority=obj.priority),
                )
            )
        seen_names.add(obj.api_name.lower())
        seen_priorities.add(obj.priority)
    return errors


async def _validate(
    session: AsyncSession, data: HistoryLinkFields, own_id: int | None = None
) -> tuple[dict[str, Any], list[Warning_]]:
    """Every problem of the link at once (FieldErrors), else the values to store and the
    warnings (normalisations)."""
    errors: list[FieldError] = []
    warnings: list[Warning_] = []
    values = data.model_dump()
    same_name = await session.scalar(
        select(HistoryLink.id).where(
            func.lower(HistoryLink.name) == data.name.lower(),
            HistoryLink.id != (own_id or 0),
        )
    )
    if same_name is not None:
        errors.append(FieldError("name", Message("name_taken.history_link", name=data.name)))
    account = await session.get(OAuthAccount, data.oauth_account_id)
    if account is None:
        errors.append(
            FieldError(
                "oauth_account_id",
                Message("not_found.oauth_account", id=data.oauth_account_id),
            )
        )
    elif account.provider != "salesforce":
        errors.append(
            FieldError(
                "oauth_account_id",
                Message("history_link_not_salesforce", name=account.name),
            )
        )
    fallback = data.fallback_record.strip()
    if fallback:
        parsed = parse_record_ref(fallback)
        if parsed is None:
            errors.append(
                FieldError(
                    "fallback_record",
                    Message("history_link_record_id"),
                )
            )
        else:
            record_id, was_url = parsed
            if was_url:
                warnings.append(
                    _warning(
                        "fallback_record", Message("history_link_url_reduced", record_id=record_id)
                    )
                )
            fallback = record_id
    elif "fallback" in (data.on_multiple, data.on_no_match):
        errors.append(
            FieldError(
                "fallback_record",
                Message("history_link_fallback_required"),
            )
        )
    values["fallback_record"] = fallback
    if data.status in ("enabled", "paused") and not data.api_consent:
        errors.append(
            FieldError(
                "api_consent",
                Message("history_link_consent", status=data.status),
            )
        )
    if not data.objects:
        errors.append(FieldError("objects", Message("history_link_no_objects")))
    errors.extend(object_errors(data.objects))
    values["objects"] = sorted(values["objects"], key=lambda o: o["priority"])
    numbers: list[str] = []
    for number in data.phone_numbers:
        if number not in numbers:
            numbers.append(number)
    values["phone_numbers"] = numbers
    errors.extend(_template_errors("subject_template", data.subject_template, warnings))
    mapped: set[str] = set()
    for index, mapping in enumerate(data.field_mappings):
        loc = ("field_mappings", str(index), "field")
        name = mapping.field
        if name in RESERVED_FIELDS:
            errors.append(FieldError(loc, Message("history_link_reserved_field", name=name)))
        elif name not in TASK_FIELDS and not name.endswith("__c"):
            errors.append(
                FieldError(
                    loc,
                    Message(
                        "history_link_not_task_field",
                        name=name,
                        fields=", ".join(sorted(TASK_FIELDS)),
                    ),
                )
            )
        elif name in mapped:
            errors.append(FieldError(loc, Message("history_link_mapped_twice", name=name)))
        mapped.add(name)
        errors.extend(
            _template_errors(("field_mappings", str(index), "template"), mapping.template, warnings)
        )
    if errors:
        raise FieldErrors(errors)
    return values, warnings


def _template_errors(
    loc: str | tuple[str, ...], text: str, warnings: list[Warning_]
) -> list[FieldError]:
    field = loc if isinstance(loc, str) else ".".join(loc)
    try:
        compiled = compile_subject(text)
    except TemplateError as exc:
        return [FieldError(loc, p.msg, p.position) for p in exc.problems if p.severity == "error"]
    warnings.extend(_warning(field, p.msg, p.position) for p in compiled.notices)
    return []


def _warning(field: str, message: Message, position: int | None = None) -> Warning_:
    """A save warning: English text and code in the API, the message for the pages."""
    return Warning_(
        field=field,
        message=message.text,
        position=position,
        code=message.code,
        msg=message.to_json(),
    )


def compile_subject(text: str) -> Any:
    return compile_template(
        text, Context.PLAIN, extra_names=EXTRA_NAMES, unknown_names="warning", response_names=None
    )


# ---- reads -------------------------------------------------------------------------


async def get_link_or_404(session: AsyncSession, link_id: int) -> HistoryLink:
    link = await session.get(HistoryLink, link_id)
    if link is None:
        raise NotFound(Message("not_found.history_link", id=link_id))
    return link


async def row_counts(session: AsyncSession, link_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(HistoryRow.state, func.count())
        .where(HistoryRow.link_id == link_id)
        .group_by(HistoryRow.state)
    )
    return {state: int(count) for state, count in rows}


async def describe(
    session: AsyncSession,
    link: HistoryLink,
    warnings: list[Warning_] | None = None,
    gettext: Callable[[str], str] | None = None,
) -> HistoryLinkRead:
    """The link as the API shows it; ``backoff_reason`` in the language of ``gettext``
    (English without one)."""
    read = HistoryLinkRead.model_validate(link)
    read.counts = await row_counts(session, link.id)
    read.warnings = warnings or []
    read.backoff_reason_code = reason_code(link.backoff_reason_msg)
    if gettext is not None:
        read.backoff_reason = shown_reason(link.backoff_reason, link.backoff_reason_msg, gettext)
    return read


async def list_links(
    session: AsyncSession, *, limit: int = 50, offset: int = 0
) -> tuple[list[HistoryLink], int]:
    total = await session.scalar(select(func.count()).select_from(HistoryLink)) or 0
    links = await session.scalars(
        select(HistoryLink).order_by(HistoryLink.id).limit(limit).offset(offset)
    )
    return list(links), int(total)


# ---- writes ------------------------------------------------------------------------


async def create_link(
    session: AsyncSession, data: HistoryLinkCreate, actor: str
) -> tuple[HistoryLink, list[Warning_]]:
    values, warnings = await _validate(session, data)
    link = HistoryLink(**values)
    session.add(link)
    await session.flush()
    record_audit(session, actor, "history_link.create", link.name, status=link.status)
    return link, warnings


async def update_link(
    session: AsyncSession, link: HistoryLink, data: HistoryLinkUpdate, actor: str
) -> list[Warning_]:
    changes = data.model_dump(exclude_unset=True)
    current = HistoryLinkFields.model_validate(link, from_attributes=True).model_dump()
    merged = HistoryLinkFields.model_validate({**current, **changes})
    values, warnings = await _validate(session, merged, link.id)
    old_status = link.status
    for name, value in values.items():
        setattr(link, name, value)
    if values["status"] != old_status:
        await apply_status_change(session, link, old_status, values["status"], actor)
    record_audit(session, actor, "history_link.update", link.name, fields=sorted(changes))
    await session.flush()
    return warnings


async def apply_status_change(
    session: AsyncSession, link: HistoryLink, old: str, new: str, actor: str
) -> None:
    """Seed 001 ステータス変更時の動作: rows are kept (held) while the link is not enabled,
    and the held rows are synced when it is enabled again."""
    now = utcnow()
    if new == "enabled":
        await session.execute(
            update(HistoryRow)
            .where(HistoryRow.link_id == link.id, HistoryRow.state == "held")
            .values(state="waiting", due_at=now, reason=None, reason_msg=None)
        )
        link.backoff_until = None
        link.backoff_count = 0
        link.backoff_reason = None
        link.backoff_reason_msg = None
    elif old == "enabled":
        await session.execute(
            update(HistoryRow)
            .where(HistoryRow.link_id == link.id, HistoryRow.state.in_(("waiting", "searching")))
            .values(state="held")
        )
    record_audit(session, actor, "history_link.status", link.name, old=old, new=new)


async def delete_link(session: AsyncSession, link: HistoryLink, actor: str) -> None:
    await session.execute(delete(HistoryRow).where(HistoryRow.link_id == link.id))
    await session.delete(link)
    record_audit(session, actor, "history_link.delete", link.name)


# ---- the history list --------------------------------------------------------------


async def list_rows(
    session: AsyncSession,
    link_id: int,
    *,
    q: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[HistoryRow], int]:
    conditions: list[Any] = [HistoryRow.link_id == link_id]
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        conditions.append(
            or_(
                *(
                    column.like(like, escape="\\")
                    for column in (
                        HistoryRow.call_id,
                        HistoryRow.unique_id,
                        HistoryRow.phone_from,
                        HistoryRow.phone_to,
                        HistoryRow.agent_id_from,
                        HistoryRow.agent_id_to,
                        HistoryRow.naisen_from,
                        HistoryRow.naisen_to,
                        HistoryRow.reason,
                    )
                )
            )
        )
    if date_from is not None:
        conditions.append(HistoryRow.ended_at >= date_from)
    if date_to is not None:
        conditions.append(HistoryRow.ended_at < date_to)
    if state:
        conditions.append(HistoryRow.state == state)
    total = await session.scalar(select(func.count()).select_from(HistoryRow).where(*conditions))
    rows = await session.scalars(
        select(HistoryRow)
        .where(*conditions)
        .order_by(HistoryRow.ended_at.desc(), HistoryRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


def task_urls(instance_url: str | None, task_ids: list[str]) -> list[str]:
    if not instance_url:
        return []
    base = lightning_base(instance_url)
    return [f"{base}/lightning/r/Task/{task_id}/view" for task_id in task_ids]


def lightning_base(instance_url: str) -> str:
    """``https://acme.my.salesforce.com`` → ``https://acme.lightning.force.com``; other
    hosts (the sandbox) are kept."""
    base = instance_url.rstrip("/")
    match = re.match(r"^https://([^.]+)\.my\.salesforce\.com$", base)
    if match:
        return f"https://{match.group(1)}.lightning.force.com"
    return base


async def retry_rows(
    session: AsyncSession, link: HistoryLink, row_ids: list[int] | None, actor: str
) -> int:
    """ "Retry now": failed rows (all of the link's, or the given ones) are due again."""
    conditions: list[Any] = [HistoryRow.link_id == link.id, HistoryRow.state == "failed"]
    if row_ids is not None:
        conditions.append(HistoryRow.id.in_(row_ids))
    state = "waiting" if link.status == "enabled" else "held"
    result = await session.execute(
        update(HistoryRow)
        .where(*conditions)
        .values(state=state, due_at=utcnow(), next_retry_at=None)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    record_audit(session, actor, "history_link.retry", link.name, rows=count)
    return count


# ---- agent call notes (DESIGN §12.4; the agent desktop calls this) ------------------


async def set_call_notes(session: AsyncSession, call_pk: int, notes: str) -> int:
    """Store the agent's notes as the Task Description of every history row of the call.
    A row already synced is marked so the worker updates its Tasks (an update, never a
    second Task); a row not synced yet sends them with its Tasks. Returns the rows touched."""
    result = await session.execute(
        update(HistoryRow)
        .where(HistoryRow.call_pk == call_pk)
        .values(
            description=notes,
            notes_dirty=HistoryRow.state == "synced",
            due_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def retry_delay(link: HistoryLink) -> timedelta:
    return timedelta(minutes=link.retry_minutes)


# What the agent saves on the call card (DESIGN §12.4): the call's variables.
AGENT_VARIABLES = ("NOTES", "WRAPUP")


def uses_variable(mapping: Mapping[str, Any], name: str) -> bool:
    """The mapping's template or one of its conditions uses the variable."""
    if re.search(r"\{" + name + r"\}", mapping.get("template") or ""):
        return True
    return any(c.get("variable") == name for c in mapping.get("conditions") or [])


def agent_mappings(link: HistoryLink) -> list[Mapping[str, Any]]:
    """The link's field mappings that the agent's notes or wrap-up set."""
    return [
        m
        for m in link.field_mappings or []
        if any(uses_variable(m, name) for name in AGENT_VARIABLES)
    ]


def task_description_of(
    link: HistoryLink, stored: str | None, saved: Mapping[str, str] | None
) -> str:
    """The Task's Description: the agent's notes, and the wrap-up reason on a line of its
    own unless a field mapping takes ``WRAPUP`` into a field of its own. ``stored``: the
    row's description, for calls whose notes are not among the call's variables."""
    if not saved:
        return stored or ""
    notes, wrapup = saved.get("NOTES", ""), saved.get("WRAPUP", "")
    if any(uses_variable(m, "WRAPUP") for m in link.field_mappings or []):
        return notes
    return task_description(notes, wrapup)


def task_description(notes: str, wrapup: str) -> str:
    """Notes, then the wrap-up reason on a line of its own."""
    if not wrapup:
        return notes
    return f"{notes}\n\n[{wrapup}]" if notes else f"[{wrapup}]"


def mapping_value(mapping: Mapping[str, Any], values: Mapping[str, str], expand: Any) -> str:
    """Seed 004: the first condition whose variable equals its value, else the template,
    else the default."""
    for condition in mapping.get("conditions") or []:
        if values.get(condition["variable"], "") == condition.get("equals", ""):
            return str(condition.get("value", ""))
    template = mapping.get("template") or ""
    if template:
        expanded = str(expand(template))
        if expanded:
            return expanded
    return str(mapping.get("default") or "")
