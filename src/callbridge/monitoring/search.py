"""The audit log and the execution search: one query each, filtered and paged in SQL.
JSON fields are read with the database's own JSON functions (SQLAlchemy renders
``json_extract`` on SQLite and ``->>`` on PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models import AuditEntry
from callbridge.models.call import Call, Execution
from callbridge.monitoring.schemas import (
    AuditFilters,
    AuditRead,
    ExecutionFilters,
    ExecutionHit,
)

response_status = Execution.response["status"].as_integer()
error_kind = Execution.error["kind"].as_string()
error_message = Execution.error["message"].as_string()
request_url = Execution.request["url"].as_string()
request_method = Execution.request["method"].as_string()


def execution_conditions(filters: ExecutionFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.source:
        conditions.append(Execution.source == filters.source)
    if filters.rule_id is not None:
        conditions.append(Execution.rule_id == filters.rule_id)
    if filters.status == "none":
        conditions.append(response_status.is_(None))
    elif filters.status and filters.status.endswith("xx"):
        low = int(filters.status[0]) * 100
        conditions.append(response_status.between(low, low + 99))
    elif filters.status:
        conditions.append(response_status == int(filters.status))
    if filters.error_kind == "any":
        conditions.append(error_kind.is_not(None))
    elif filters.error_kind:
        conditions.append(error_kind == filters.error_kind)
    if filters.outcome:
        conditions.append(Execution.outcome == filters.outcome)
    if filters.since is not None:
        conditions.append(Execution.at >= filters.since)
    if filters.until is not None:
        conditions.append(Execution.at < filters.until)
    if filters.url:
        conditions.append(func.lower(request_url).contains(filters.url.lower(), autoescape=True))
    return conditions


async def search_executions(
    session: AsyncSession, filters: ExecutionFilters, *, limit: int, offset: int
) -> tuple[list[ExecutionHit], int]:
    """Newest first, with the call each belongs to."""
    conditions = execution_conditions(filters)
    total = await session.scalar(select(func.count()).select_from(Execution).where(*conditions))
    statement: Select[Any] = (
        select(
            Execution.id,
            Call.call_id,
            Execution.at,
            Execution.source,
            Execution.rule_id,
            Execution.label,
            Execution.event,
            request_method.label("method"),
            request_url.label("url"),
            response_status.label("status"),
            error_kind.label("error_kind"),
            error_message.label("error_message"),
            Execution.duration_ms,
            Execution.outcome,
        )
        .join(Call, Call.id == Execution.call_pk)
        .where(*conditions)
        .order_by(Execution.at.desc(), Execution.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = await session.execute(statement)
    return [ExecutionHit.model_validate(row._mapping) for row in rows], int(total or 0)


def audit_conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.actor:
        conditions.append(AuditEntry.actor == filters.actor)
    if filters.kind:
        kind = filters.kind.rstrip(".")
        conditions.append(
            (AuditEntry.action == kind) | AuditEntry.action.startswith(f"{kind}.", autoescape=True)
        )
    if filters.since is not None:
        conditions.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntry.at < filters.until)
    return conditions


async def list_audit(
    session: AsyncSession, filters: AuditFilters, *, limit: int, offset: int
) -> tuple[list[AuditRead], int]:
    """Newest first."""
    conditions = audit_conditions(filters)
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
    rows = await session.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [AuditRead.model_validate(row, from_attributes=True) for row in rows], int(total or 0)


async def audit_choices(session: AsyncSession) -> tuple[list[str], list[str]]:
    """The actors and the kinds of action the log holds (for the filters' lists)."""
    actors = await session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor))
    actions = await session.scalars(select(AuditEntry.action).distinct())
    kinds = sorted({action.split(".")[0] for action in actions})
    return list(actors), kinds
