"""Admin pages: the audit log and the execution search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.filters import chosen, date_bounds, page_number
from callbridge.admin.rendering import add_template_dir, gettext_for, render
from callbridge.agent_desktop import service as screen_pop_service
from callbridge.auth.deps import AdminUser
from callbridge.call_actions import repository as call_action_repository
from callbridge.call_actions.service import rule_label
from callbridge.db.session import SessionDep
from callbridge.ivr import repository as ivr_repository
from callbridge.ivr.pages import OUTCOME_LABELS
from callbridge.monitoring import rollup, search
from callbridge.monitoring.dashboard import build_charts, range_of
from callbridge.monitoring.schemas import (
    ERROR_KINDS,
    AuditFilters,
    AuditRead,
    ExecutionFilters,
    ExecutionHit,
)
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")

PAGE_SIZE = 50
EXECUTION_FIELDS = ("rule", "status", "error_kind", "outcome", "from", "to", "url")
AUDIT_FIELDS = ("actor", "kind", "from", "to")


def _pages(total: int) -> int:
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)


async def rule_choices(session: AsyncSession, _: Callable[[str], str]) -> list[tuple[str, str]]:
    """The execution search's "rule" list: every call-action rule, every IVR, then every
    screen-pop profile (its accesses sent by callbridge)."""
    choices = [
        ("", _("Any")),
        ("call_action", _("Every call-action rule")),
        ("ivr", _("Every IVR")),
        ("screen_pop", _("Every screen-pop profile")),
    ]
    for rule in await call_action_repository.all_rules(session):
        choices.append((f"call_action:{rule.id}", f"{rule.event} · {rule_label(rule)}"))
    for ivr in await ivr_repository.all_ivrs(session):
        choices.append((f"ivr:{ivr.id}", f"IVR · {ivr.key}"))
    for profile in await screen_pop_service.list_profiles(session):
        choices.append((f"screen_pop:{profile.id}", f"{_('Screen pop')} · {profile.name}"))
    return choices


@router.get("/executions")
async def executions_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    _ = gettext_for(request, user)
    query = request.query_params
    form = {name: query.get(name, "").strip() for name in EXECUTION_FIELDS}
    errors: dict[str, str] = {}
    values: dict[str, Any] = date_bounds(form, get_runtime(request).settings.timezone, errors, _)
    source, _sep, rule_id = form["rule"].partition(":")
    if form["rule"] in rollup.SOURCES:
        values.update(source=form["rule"])
    elif form["rule"]:
        if source in rollup.SOURCES and rule_id.isdigit():
            values.update(source=source, rule_id=int(rule_id))
        else:
            errors["rule"] = _("Choose a rule from the list.")
    values.update(
        status=form["status"] or None,
        error_kind=form["error_kind"] or None,
        outcome=form["outcome"] or None,
        url=form["url"] or None,
    )
    filters: ExecutionFilters | None = None
    try:
        filters = ExecutionFilters.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0])
            errors.setdefault(
                field,
                _("Use a status code such as 404, a class such as 5xx, or none.")
                if field == "status"
                else _("Choose a value from the list."),
            )
    page = page_number(query)
    hits: list[ExecutionHit] = []
    total = 0
    if filters is not None and not errors:
        hits, total = await search.search_executions(
            session, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    context = {
        "form": form,
        "errors": errors,
        "hits": hits,
        "total": total,
        "page": page,
        "pages": _pages(total),
        "rules": await rule_choices(session, _),
        "kind_options": [
            ("", _("Any")),
            ("any", _("Every error")),
            *((kind, kind) for kind in ERROR_KINDS),
        ],
        "outcome_options": [
            ("", _("Any")),
            *((outcome, _(label)) for outcome, label in OUTCOME_LABELS.items()),
        ],
    }
    return await render(
        request,
        "monitoring/executions.html",
        context,
        user=user,
        session=session,
        active="executions",
        status_code=422 if errors else 200,
    )


@router.get("/audit")
async def audit_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    _ = gettext_for(request, user)
    query = request.query_params
    form = {name: query.get(name, "").strip() for name in AUDIT_FIELDS}
    errors: dict[str, str] = {}
    values = date_bounds(form, get_runtime(request).settings.timezone, errors, _)
    actors, kinds = await search.audit_choices(session)
    actor = chosen(form, "actor", actors, errors, _)
    kind = chosen(form, "kind", kinds, errors, _)
    filters = AuditFilters.model_validate({**values, "actor": actor, "kind": kind})
    page = page_number(query)
    entries: list[AuditRead] = []
    total = 0
    if not errors:
        entries, total = await search.list_audit(
            session, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    context = {
        "form": form,
        "errors": errors,
        "entries": entries,
        "total": total,
        "page": page,
        "pages": _pages(total),
        "actor_options": [("", _("Any")), *((a, a) for a in actors)],
        "kind_options": [("", _("Any")), *((k, k) for k in kinds)],
    }
    return await render(
        request,
        "monitoring/audit.html",
        context,
        user=user,
        session=session,
        active="audit",
        status_code=422 if errors else 200,
    )


async def dashboard_charts(request: Request, session: AsyncSession) -> dict[str, Any]:
    """The dashboard's chart section (``?range=24h`` or ``7d``)."""
    user = getattr(request.state, "user", None)
    _ = gettext_for(request, user)
    chosen = range_of(request.query_params.get("range"))
    runtime = get_runtime(request)
    tz = runtime.settings.timezone
    async with runtime.sessionmaker() as own:  # it commits: not the request's transaction
        await rollup.fold(own)
    return {"charts": await build_charts(session, chosen, tz, _), "chart_range": chosen}
