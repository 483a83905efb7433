from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from callbridge.auth.deps import AdminAccess
from callbridge.db.session import SessionDep
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.users import repository, service
from callbridge.users.schemas import UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", operation_id="list_users")
async def list_users(
    session: SessionDep, principal: AdminAccess, page: Annotated[PageParams, Depends(page_params)]
) -> Page[UserRead]:
    users, total = await repository.list_users(session, page.limit, page.offset)
    return Page(items=[UserRead.model_validate(u) for u in users], total=total)


@router.post("", status_code=201, operation_id="create_user")
async def create_user(session: SessionDep, principal: AdminAccess, data: UserCreate) -> UserRead:
    user = await service.create_user(session, data, principal.label)
    return UserRead.model_validate(user)


@router.get("/{user_id}", operation_id="get_user")
async def get_user(session: SessionDep, principal: AdminAccess, user_id: int) -> UserRead:
    return UserRead.model_validate(await service.get_user_or_404(session, user_id))


@router.patch("/{user_id}", operation_id="update_user")
async def update_user(
    session: SessionDep, principal: AdminAccess, user_id: int, data: UserUpdate
) -> UserRead:
    user = await service.get_user_or_404(session, user_id)
    await service.update_user(session, user, data, principal.label)
    return UserRead.model_validate(user)


@router.delete("/{user_id}", status_code=204, operation_id="delete_user")
async def delete_user(session: SessionDep, principal: AdminAccess, user_id: int) -> Response:
    user = await service.get_user_or_404(session, user_id)
    await service.delete_user(session, user, principal.label)
    return Response(status_code=204)
