from __future__ import annotations

from fastapi import APIRouter, Request

from callbridge.auth.deps import AdminAccess
from callbridge.db.session import SessionDep
from callbridge.runtime import get_runtime
from callbridge.system_settings import service
from callbridge.system_settings.schemas import SystemSettingsRead, SystemSettingsUpdate

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])


@router.get("", operation_id="get_settings")
async def get_settings(
    request: Request, session: SessionDep, principal: AdminAccess
) -> SystemSettingsRead:
    return await service.get_system_settings(session, get_runtime(request).settings)


@router.patch("", operation_id="update_settings")
async def update_settings(
    request: Request, session: SessionDep, principal: AdminAccess, data: SystemSettingsUpdate
) -> SystemSettingsRead:
    return await service.update_system_settings(
        session, get_runtime(request).settings, data, principal.label
    )
