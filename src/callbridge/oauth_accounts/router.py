"""``/api/v1/oauth-accounts``: the configuration API of OAuth accounts (DESIGN.md §3.6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from callbridge.auth.deps import AdminAccess
from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.db.session import SessionDep
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.oauth_accounts import repository, service
from callbridge.oauth_accounts.schemas import (
    AuthorizeAnswer,
    OAuthAccountCreate,
    OAuthAccountRead,
    OAuthAccountUpdate,
    TestReport,
)
from callbridge.runtime import get_runtime

router = APIRouter(prefix="/api/v1/oauth-accounts", tags=["oauth-accounts"])

REVOCATION_HEADER = "Callbridge-Revocation"


@router.get("", operation_id="list_oauth_accounts")
async def list_oauth_accounts(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[OAuthAccountRead]:
    runtime = get_runtime(request)
    rows, total = await repository.list_accounts(session, page.limit, page.offset)
    callback = await service.callback_url(session, runtime)
    return Page(items=[service.to_read(a, runtime, callback) for a in rows], total=total)


@router.post("", status_code=201, operation_id="create_oauth_account")
async def create_oauth_account(
    request: Request, session: SessionDep, principal: AdminAccess, data: OAuthAccountCreate
) -> OAuthAccountRead:
    runtime = get_runtime(request)
    account = await service.create_account(session, runtime, data, principal.label)
    return service.to_read(account, runtime, await service.callback_url(session, runtime))


@router.get("/{account_id}", operation_id="get_oauth_account")
async def get_oauth_account(
    request: Request, session: SessionDep, principal: AdminAccess, account_id: int
) -> OAuthAccountRead:
    runtime = get_runtime(request)
    account = await service.get_account_or_404(session, account_id)
    return service.to_read(account, runtime, await service.callback_url(session, runtime))


@router.patch("/{account_id}", operation_id="update_oauth_account")
async def update_oauth_account(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    account_id: int,
    data: OAuthAccountUpdate,
) -> OAuthAccountRead:
    runtime = get_runtime(request)
    account = await service.get_account_or_404(session, account_id)
    await service.update_account(session, runtime, account, data, principal.label)
    return service.to_read(account, runtime, await service.callback_url(session, runtime))


@router.delete(
    "/{account_id}",
    status_code=204,
    operation_id="delete_oauth_account",
    responses={
        204: {
            "description": f"Deleted; the {REVOCATION_HEADER} header says whether "
            "the tokens were revoked at the provider"
        }
    },
)
async def delete_oauth_account(
    request: Request, session: SessionDep, principal: AdminAccess, account_id: int
) -> Response:
    account = await service.get_account_or_404(session, account_id)
    report = await service.delete_account(session, get_runtime(request), account, principal.label)
    outcome = (
        "revoked" if report.ok and report.attempted else ("not-needed" if report.ok else "failed")
    )
    return Response(status_code=204, headers={REVOCATION_HEADER: f"{outcome}; {report.message}"})


@router.post(
    "/{account_id}/connect",
    operation_id="connect_oauth_account",
    response_model=AuthorizeAnswer | OAuthAccountRead,
    responses={
        400: {"description": "The provider refused the credentials; `detail` says why"},
        502: {"description": "The provider could not be reached or answered nonsense"},
    },
)
async def connect_oauth_account(
    request: Request, session: SessionDep, principal: AdminAccess, account_id: int
) -> AuthorizeAnswer | OAuthAccountRead | JSONResponse:
    """authorization_code: answers the provider URL to open in the admin's browser (the
    callback must arrive in a browser signed in to callbridge as an admin — the same
    session when this call was made with one). Other grants: a token is requested now."""
    runtime = get_runtime(request)
    account = await service.get_account_or_404(session, account_id)
    if account.grant_type == "authorization_code":
        url = await service.start_authorization(
            session,
            runtime,
            account,
            user_id=principal.user_id,
            session_cookie=request.cookies.get(SESSION_COOKIE) if principal.user else None,
        )
        return AuthorizeAnswer(authorize_url=url)
    outcome = await service.connect_direct(session, runtime, account, principal.label)
    read = service.to_read(account, runtime, await service.callback_url(session, runtime))
    if outcome.ok:
        return read
    status = (
        502
        if outcome.failure and outcome.failure.kind in ("unreachable", "invalid_response")
        else 400
    )
    # Answered, not raised: the account's "error" status and detail are kept.
    return JSONResponse(
        {"detail": outcome.message, "account": read.model_dump(mode="json")}, status_code=status
    )


@router.post("/{account_id}/test", operation_id="test_oauth_account")
async def test_oauth_account(
    request: Request, session: SessionDep, principal: AdminAccess, account_id: int
) -> TestReport:
    account = await service.get_account_or_404(session, account_id)
    return await service.test_account(session, get_runtime(request), account)
