from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from callbridge.auth.deps import AdminAccess
from callbridge.db.session import SessionDep
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.tokens import service
from callbridge.tokens.schemas import TokenCreate, TokenCreated, TokenRead

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


@router.get("", operation_id="list_tokens")
async def list_tokens(
    session: SessionDep, principal: AdminAccess, page: Annotated[PageParams, Depends(page_params)]
) -> Page[TokenRead]:
    tokens, total = await service.list_tokens(session, page.limit, page.offset)
    return Page(items=[TokenRead.model_validate(t) for t in tokens], total=total)


@router.post("", status_code=201, operation_id="create_token")
async def create_token(
    session: SessionDep, principal: AdminAccess, data: TokenCreate
) -> TokenCreated:
    token, raw = await service.create_token(session, data, principal.label, principal.user_id)
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=raw)


@router.get("/{token_id}", operation_id="get_token")
async def get_token(session: SessionDep, principal: AdminAccess, token_id: int) -> TokenRead:
    return TokenRead.model_validate(await service.get_token_or_404(session, token_id))


@router.delete("/{token_id}", status_code=204, operation_id="delete_token")
async def delete_token(session: SessionDep, principal: AdminAccess, token_id: int) -> Response:
    token = await service.get_token_or_404(session, token_id)
    await service.revoke_token(session, token, principal.label)
    return Response(status_code=204)
