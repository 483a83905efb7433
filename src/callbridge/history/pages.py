"""Admin pages of the history link (履歴連携 / History link): the links, the form with every
field of seed 001 §3 and seed 004's subject and mappings, 設定確認, and 連携通話履歴.
Built on the same services as ``/api/v1/history-links``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from callbridge.admin.filters import chosen, date_bounds, page_number
from callbridge.admin.rendering import (
    add_template_dir,
    gettext_for,
    keep_line_endings,
    pydantic_text,
    render,
    render_message,
)
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.db.session import SessionDep
from callbridge.errors import FieldErrors
from callbridge.history import service
from callbridge.history.check import check_link
from callbridge.history.schemas import DEFAULT_SUBJECT, HistoryLinkCreate, HistoryLinkUpdate
from callbridge.i18n import N_
from callbridge.kit.time import utcnow
from callbridge.models import Call, CallEvent, HistoryRow, OAuthAccount
from callbridge.outbound import get_outbound
from callbridge.requests.schemas import Warning_
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")

CHOICES: dict[str, list[tuple[str, str]]] = {
    "status": [
        ("enabled", N_("Enabled (有効)")),
        ("disabled", N_("Disabled (無効)")),
        ("paused", N_("Paused (一時停止)")),
    ],
    "on_multiple": [
        ("fallback", N_("Link to the fallback record")),
        ("first", N_("The most recently modified record")),
        ("all", N_("Every matching record")),
    ],
    "on_no_match": [
        ("fallback", N_("Link to the fallback record")),
        ("unlinked", N_("A Task without a related record")),
        ("skip", N_("Create nothing")),
    ],
    "activity": [
        ("task", N_("Create an activity on the record")),
        ("case_and_task", N_("Create a case and an activity on the record")),
    ],
    "language": [("ja", "日本語"), ("en", "English")],
}
STATE_LABELS = {
    "held": N_("held"),
    "waiting": N_("waiting"),
    "searching": N_("searching"),
    "synced": N_("synced"),
    "no_match": N_("no match"),
    "failed": N_("failed"),
}
# 連携通話履歴 columns: (key, label, shown by default) as in seed 001 §5.
COLUMNS = [
    ("unique_id", N_("Unique ID"), False),
    ("call_id", N_("Request ID"), False),
    ("phone_from", N_("From"), True),
    ("phone_to", N_("To"), True),
    ("started_at", N_("Call start"), True),
    ("ended_at", N_("Call end"), True),
    ("agent_id_from", N_("Calling agent ID"), False),
    ("agent_id_to", N_("Answering agent ID"), False),
    ("naisen_from", N_("Calling extension"), True),
    ("naisen_to", N_("Answering extension"), True),
    ("processed_at", N_("Processed at"), True),
    ("retry_count", N_("Retry count"), True),
    ("next_retry_at", N_("Next retry"), True),
]
CHECKBOXES = ("api_consent", "owner_from_agent")
SCALARS = (
    "name",
    "oauth_account_id",
    "fallback_record",
    "memo",
    "on_multiple",
    "on_no_match",
    "activity",
    "status",
    "search_retries",
    "retry_minutes",
    "language",
    "subject_template",
)
PAGE_SIZE = 50


def form_rows(
    values: dict[str, list[str]],
    prefix: str,
    names: tuple[str, ...],
    kept: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    """``objects-0-api_name``… → rows, in index order; a row with ``delete`` or all blank
    is dropped. Cells are trimmed but those of ``kept`` (texts taken as typed: a
    mapping's template and default)."""
    indexes = sorted(
        {
            int(k.split("-")[1])
            for k in values
            if k.startswith(prefix + "-") and k.split("-")[1].isdigit()
        }
    )
    rows = []
    for index in indexes:
        row = {name: (values.get(f"{prefix}-{index}-{name}") or [""])[0] for name in names}
        row = {name: v if name in kept else v.strip() for name, v in row.items()}
        if values.get(f"{prefix}-{index}-delete") or not any(v.strip() for v in row.values()):
            continue
        rows.append(row)
    return rows


def _conditions(text: str) -> list[dict[str, str]]:
    """``VARIABLE=value => result`` per line."""
    found = []
    for line in text.splitlines():
        left, arrow, result = line.partition("=>")
        variable, equals_sign, equals = left.partition("=")
        if not line.strip():
            continue
        if not arrow or not equals_sign:
            found.append({"variable": line.strip(), "equals": "", "value": ""})
            continue
        found.append(
            {"variable": variable.strip(), "equals": equals.strip(), "value": result.strip()}
        )
    return found


async def _form_input(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted form → (API payload, the form as shown again)."""
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)

    def one(name: str) -> str:
        return (values.get(name) or [""])[0]

    payload: dict[str, Any] = {name: one(name) for name in SCALARS}
    for name in CHECKBOXES:
        payload[name] = one(name) == "1"
    objects = form_rows(values, "objects", ("api_name", "tab_name", "key_prefix", "priority"))
    payload["objects"] = objects
    mappings = form_rows(
        values,
        "mappings",
        ("field", "template", "default", "conditions"),
        kept=("template", "default"),
    )
    payload["field_mappings"] = [
        {**m, "conditions": _conditions(m["conditions"])} for m in mappings
    ]
    numbers = [n for n in values.get("phone_numbers", []) if n.strip()]
    numbers += [n.strip() for n in one("more_numbers").split() if n.strip()]
    payload["phone_numbers"] = numbers
    shown = {
        **payload,
        "objects": objects,
        "field_mappings": mappings,
        "more_numbers": "",
    }
    return payload, shown


def _form_of(read: Any) -> dict[str, Any]:
    data = read.model_dump() if hasattr(read, "model_dump") else dict(read)
    data["field_mappings"] = [
        {
            **m,
            "conditions": "\n".join(
                f"{c['variable']}={c['equals']} => {c['value']}" for c in m["conditions"]
            ),
        }
        for m in data["field_mappings"]
    ]
    data["more_numbers"] = ""
    return data


BLANK: dict[str, Any] = {
    "name": "",
    "oauth_account_id": "",
    "fallback_record": "",
    "api_consent": False,
    "memo": "",
    "on_multiple": "fallback",
    "on_no_match": "fallback",
    "activity": "task",
    "status": "disabled",
    "objects": [
        {"api_name": "Contact", "tab_name": "取引先責任者", "key_prefix": "003", "priority": 1},
        {"api_name": "Account", "tab_name": "取引先", "key_prefix": "001", "priority": 2},
        {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 3},
    ],
    "phone_numbers": [],
    "more_numbers": "",
    "search_retries": 3,
    "retry_minutes": 5,
    "language": "ja",
    "subject_template": DEFAULT_SUBJECT,
    "field_mappings": [],
    "owner_from_agent": False,
}


def _errors_of(
    exc: ValidationError | FieldErrors, request: Request, user: AdminUser
) -> dict[str, str]:
    """Field path → the error in the admin's language."""
    _ = gettext_for(request, user)
    found: dict[str, str] = {}
    if isinstance(exc, FieldErrors):
        for error in exc.errors:
            found.setdefault(".".join(error.loc), render_message(error.msg or error.message, _))
        return found
    for detail in exc.errors():
        loc = [str(p) for p in detail["loc"]]
        if loc and loc[0] == "field_mappings" and len(loc) > 2 and loc[2] == "conditions":
            loc = [*loc[:2], "conditions"]
        found.setdefault(".".join(loc), pydantic_text(detail, _))
    return found


def _shown_warning(note: str) -> Warning_:
    """A save warning passed on to the page after a redirect: its message JSON (rendered in
    the admin's language) or, from an older link, its English text."""
    try:
        data = json.loads(note)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return Warning_(field="", message="", msg=data)
    return Warning_(field="", message=note[:300])


async def seen_numbers(session: SessionDep) -> list[str]:
    """Own numbers of recent calls: the dialled numbers and the agents' extensions."""
    since = utcnow() - timedelta(days=30)
    called = await session.scalars(
        select(Call.called)
        .where(Call.started_at >= since, Call.called.is_not(None))
        .distinct()
        .limit(500)
    )
    found = {str(n) for n in called if n}
    events = await session.scalars(
        select(CallEvent.payload)
        .where(CallEvent.received_at >= since)
        .order_by(CallEvent.id.desc())
        .limit(2000)
    )
    for payload in events:
        extension = (payload or {}).get("extension")
        if extension:
            found.add(str(extension))
    return sorted(found)


async def number_choices(session: SessionDep, chosen: list[str]) -> list[str]:
    """The numbers a form offers as checkboxes: the chosen ones first, in their saved
    order (a save sends them back in page order, so sorting them would reorder the list),
    then the other numbers of recent calls."""
    seen = await seen_numbers(session)
    return list(dict.fromkeys([*chosen, *sorted(set(seen) - set(chosen))]))


async def _form_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    form: dict[str, Any],
    link_id: int | None,
    errors: dict[str, str] | None = None,
    warnings: list[Warning_] | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    _ = gettext_for(request, user)
    accounts = list(
        await session.execute(
            select(OAuthAccount.id, OAuthAccount.name).where(OAuthAccount.provider == "salesforce")
        )
    )
    numbers = await number_choices(session, form.get("phone_numbers") or [])
    return await render(
        request,
        "history/form.html",
        {
            "title": _("Edit history link") if link_id else _("New history link"),
            "form": form,
            "link_id": link_id,
            "errors": errors or {},
            "warnings": warnings or [],
            "accounts": [(str(i), n) for i, n in accounts],
            "choices": {k: [(v, _(label)) for v, label in opts] for k, opts in CHOICES.items()},
            "numbers": numbers,
            "saved": saved,
        },
        user=user,
        session=session,
        active="history_links",
        status_code=status_code,
    )


@router.get("/history-links")
async def links_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    links, _total = await service.list_links(session, limit=1000)
    described = [await service.describe(session, link) for link in links]
    return await render(
        request,
        "history/list.html",
        {
            "links": described,
            "choices": CHOICES,
            "state_labels": STATE_LABELS,
            "flash": request.query_params.get("saved"),
        },
        user=user,
        session=session,
        active="history_links",
    )


@router.get("/history-links/new")
async def new_link_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _form_page(request, session, user, form=dict(BLANK), link_id=None)


@router.post("/history-links/new", dependencies=[CsrfChecked])
async def create_link(request: Request, session: SessionDep, user: AdminUser) -> Response:
    payload, shown = await _form_input(request)
    form = {**BLANK, **shown}
    try:
        data = HistoryLinkCreate.model_validate(payload)
        link, warnings = await service.create_link(session, data, f"user:{user.username}")
    except (ValidationError, FieldErrors) as exc:
        return await _form_page(
            request,
            session,
            user,
            form=form,
            link_id=None,
            errors=_errors_of(exc, request, user),
            status_code=422,
        )
    notes = "".join(f"&w={quote(json.dumps(w.msg) if w.msg else w.message)}" for w in warnings)
    return RedirectResponse(f"/history-links/{link.id}?saved=1{notes}", status_code=303)


@router.get("/history-links/{link_id}")
async def edit_link_page(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    read = await service.describe(session, link)
    return await _form_page(
        request,
        session,
        user,
        form=_form_of(read),
        link_id=link_id,
        saved=bool(request.query_params.get("saved")),
        warnings=[_shown_warning(note[:1000]) for note in request.query_params.getlist("w")[:10]],
    )


@router.post("/history-links/{link_id}", dependencies=[CsrfChecked])
async def update_link(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    payload, shown = await _form_input(request)
    payload = keep_line_endings(payload, (await service.describe(session, link)).model_dump())
    form = {**BLANK, **shown}
    try:
        data = HistoryLinkUpdate.model_validate(payload)
        warnings = await service.update_link(session, link, data, f"user:{user.username}")
    except (ValidationError, FieldErrors) as exc:
        await session.rollback()
        return await _form_page(
            request,
            session,
            user,
            form=form,
            link_id=link_id,
            errors=_errors_of(exc, request, user),
            status_code=422,
        )
    read = await service.describe(session, link, warnings)
    return await _form_page(
        request, session, user, form=_form_of(read), link_id=link_id, warnings=warnings, saved=True
    )


@router.post("/history-links/{link_id}/delete", dependencies=[CsrfChecked])
async def delete_link(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    await service.delete_link(session, link, f"user:{user.username}")
    return RedirectResponse("/history-links?saved=1", status_code=303)


@router.post("/history-links/{link_id}/check", dependencies=[CsrfChecked])
async def check_page(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    """設定確認 (htmx): the answer as a panel under the button."""
    link = await service.get_link_or_404(session, link_id)
    account = await session.get(OAuthAccount, link.oauth_account_id)
    result = await check_link(link, account, get_outbound(request), gettext_for(request, user))
    return await render(
        request, "history/_check.html", {"result": result}, user=user, session=session
    )


@router.get("/history-links/{link_id}/histories")
async def histories_page(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    _ = gettext_for(request, user)
    params = request.query_params
    page = page_number(params)
    # Whole days in the configured time zone, ``to`` included, and a state from the list,
    # read as every list page reads its filters.
    errors: dict[str, str] = {}
    state = chosen(params, "state", STATE_LABELS, errors, _)
    bounds = date_bounds(params, get_runtime(request).settings.timezone, errors, _)
    rows: list[HistoryRow] = []
    total = 0
    if not errors:
        rows, total = await service.list_rows(
            session,
            link.id,
            q=params.get("q") or None,
            date_from=bounds.get("since"),
            date_to=bounds.get("until"),
            state=state,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    instance = await get_outbound(request).instance_url(link.oauth_account_id)
    items = [(row, service.task_urls(instance, row.task_ids)) for row in rows]
    return await render(
        request,
        "history/histories.html",
        {
            "link": link,
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
            "columns": COLUMNS,
            "state_labels": STATE_LABELS,
            "state_options": [("", "—"), *((v, _(label)) for v, label in STATE_LABELS.items())],
            "filters": {
                "q": params.get("q", ""),
                "from": params.get("from", ""),
                "to": params.get("to", ""),
                "state": params.get("state", ""),
            },
            "errors": errors,
            "flash": params.get("retried"),
        },
        user=user,
        session=session,
        active="history_links",
        status_code=422 if errors else 200,
    )


@router.post("/history-links/{link_id}/histories/retry", dependencies=[CsrfChecked])
async def retry_page(
    request: Request, session: SessionDep, user: AdminUser, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    form = await request.form()
    raw = form.get("row_id")
    ids = [int(raw)] if isinstance(raw, str) and raw.isdigit() else None
    count = await service.retry_rows(session, link, ids, f"user:{user.username}")
    return RedirectResponse(f"/history-links/{link_id}/histories?retried={count}", status_code=303)
