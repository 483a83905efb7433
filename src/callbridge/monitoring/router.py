"""``/api/v1/executions`` (the search across calls) and ``/api/v1/audit``."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request

from callbridge.auth.deps import AdminAccess
from callbridge.db.session import SessionDep
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.kit.query import period
from callbridge.monitoring import search
from callbridge.monitoring.schemas import AuditFilters, AuditRead, ExecutionFilters, ExecutionHit

router = APIRouter(prefix="/api/v1", tags=["monitoring"])

Filters = TypeVar("Filters", ExecutionFilters, AuditFilters)


def _in_utc(request: Request, filters: Filters) -> Filters:
    """``since``/``until`` as every API reads a period (``kit.query.period``)."""
    since, until = period(request, filters.since, filters.until, ("since", "until"))
    return filters.model_copy(update={"since": since, "until": until})


@router.get("/executions", operation_id="search_executions")
async def search_executions(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
    filters: Annotated[ExecutionFilters, Query()],
) -> Page[ExecutionHit]:
    """Requests made for calls (rules and IVRs), newest first: where to look when "the
    CRM says the Case was not created"."""
    items, total = await search.search_executions(
        session, _in_utc(request, filters), limit=page.limit, offset=page.offset
    )
    return Page(items=items, total=total)


@router.get("/audit", operation_id="list_audit")
async def list_audit(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
    filters: Annotated[AuditFilters, Query()],
) -> Page[AuditRead]:
    """Who changed what, when and from where, newest first."""
    items, total = await search.list_audit(
        session, _in_utc(request, filters), limit=page.limit, offset=page.offset
    )
    return Page(items=items, total=total)
