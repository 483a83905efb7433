"""``/api/v1/history-links``: configuration, 設定確認, the history list, retry now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from callbridge.auth.deps import AdminAccess
from callbridge.db.session import SessionDep
from callbridge.history import service
from callbridge.history.check import check_link
from callbridge.history.reasons import reason_code, shown_reason
from callbridge.history.schemas import (
    CheckResult,
    HistoryItem,
    HistoryLinkCreate,
    HistoryLinkRead,
    HistoryLinkUpdate,
    RetryResult,
    RowState,
)
from callbridge.i18n import language_for, translations
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.kit.query import period
from callbridge.models import OAuthAccount
from callbridge.outbound import get_outbound

router = APIRouter(prefix="/api/v1/history-links", tags=["history-links"])


def _gettext(request: Request, principal: Any, default: str = "en") -> Callable[[str], str]:
    """The reader's language: the signed-in user's, else the language cookie, else
    Accept-Language, else ``default``."""
    user = principal.user
    language = language_for(request, user.language if user else None, default)
    return translations(language).gettext


@router.get("", operation_id="list_history_links")
async def list_history_links(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[HistoryLinkRead]:
    links, total = await service.list_links(session, limit=page.limit, offset=page.offset)
    gettext = _gettext(request, principal)
    return Page(
        items=[await service.describe(session, link, gettext=gettext) for link in links],
        total=total,
    )


@router.post("", status_code=201, operation_id="create_history_link")
async def create_history_link(
    session: SessionDep, principal: AdminAccess, data: HistoryLinkCreate
) -> HistoryLinkRead:
    """Create a link; the answer lists warnings (a pasted URL reduced to its id…)."""
    link, warnings = await service.create_link(session, data, principal.label)
    return await service.describe(session, link, warnings)


@router.get("/{link_id}", operation_id="get_history_link")
async def get_history_link(
    request: Request, session: SessionDep, principal: AdminAccess, link_id: int
) -> HistoryLinkRead:
    link = await service.get_link_or_404(session, link_id)
    return await service.describe(session, link, gettext=_gettext(request, principal))


@router.patch("/{link_id}", operation_id="update_history_link")
async def update_history_link(
    session: SessionDep, principal: AdminAccess, link_id: int, data: HistoryLinkUpdate
) -> HistoryLinkRead:
    link = await service.get_link_or_404(session, link_id)
    warnings = await service.update_link(session, link, data, principal.label)
    return await service.describe(session, link, warnings)


@router.delete("/{link_id}", status_code=204, operation_id="delete_history_link")
async def delete_history_link(
    session: SessionDep, principal: AdminAccess, link_id: int
) -> Response:
    link = await service.get_link_or_404(session, link_id)
    await service.delete_link(session, link, principal.label)
    return Response(status_code=204)


@router.post("/{link_id}/check", operation_id="check_history_link")
async def check_history_link(
    request: Request, session: SessionDep, principal: AdminAccess, link_id: int
) -> CheckResult:
    """設定確認: the account, each object and its key prefix, the Task fields, the fallback
    record and the phone numbers, in the language of the session or Accept-Language."""
    link = await service.get_link_or_404(session, link_id)
    account = await session.get(OAuthAccount, link.oauth_account_id)
    # DESIGN §11.5: the check answers in Japanese unless the reader asks for another language.
    gettext = _gettext(request, principal, default="ja")
    return await check_link(link, account, get_outbound(request), gettext)


@router.get("/{link_id}/histories", operation_id="list_history_link_histories")
async def list_histories(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    link_id: int,
    page: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str | None, Query(max_length=200, description="keyword")] = None,
    date_from: Annotated[
        datetime | None,
        Query(alias="from", description="Calls that ended on or after (a date: that whole day)"),
    ] = None,
    date_to: Annotated[
        datetime | None,
        Query(alias="to", description="Calls that ended before (a date: up to that day's end)"),
    ] = None,
    state: RowState | None = None,
) -> Page[HistoryItem]:
    """連携通話履歴: newest call first. ``from``/``to`` are in the configured time zone
    unless they carry an offset; a bare date is a whole day, ``to`` included."""
    link = await service.get_link_or_404(session, link_id)
    date_from, date_to = period(request, date_from, date_to)
    rows, total = await service.list_rows(
        session,
        link.id,
        q=q,
        date_from=date_from,
        date_to=date_to,
        state=state,
        limit=page.limit,
        offset=page.offset,
    )
    instance = await get_outbound(request).instance_url(link.oauth_account_id)
    gettext = _gettext(request, principal)
    items = []
    for row in rows:
        item = HistoryItem.model_validate(row)
        item.task_urls = service.task_urls(instance, row.task_ids)
        item.reason = shown_reason(row.reason, row.reason_msg, gettext)
        item.reason_code = reason_code(row.reason_msg)
        items.append(item)
    return Page(items=items, total=total)


class RetryRequest(BaseModel):
    ids: list[int] | None = None


@router.post("/{link_id}/histories/retry", operation_id="retry_history_link_histories")
async def retry_histories(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    link_id: int,
    data: RetryRequest | None = None,
) -> RetryResult:
    """ "Retry now" for failed rows (the given ``ids``, or all of the link's)."""
    link = await service.get_link_or_404(session, link_id)
    count = await service.retry_rows(session, link, data.ids if data else None, principal.label)
    return RetryResult(retried=count)
