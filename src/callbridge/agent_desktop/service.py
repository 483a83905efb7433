"""Screen-pop profiles (DESIGN §12.2): validation and storage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.agent_desktop.schemas import ScreenPopFields, ScreenPopUpdate
from callbridge.audit import record_audit
from callbridge.errors import FieldError, FieldErrors, NotFound
from callbridge.history.service import object_errors
from callbridge.messages import Message, define
from callbridge.models import OAuthAccount, ScreenPopProfile

define(
    {
        "not_found.screen_pop": "screen-pop profile {id} does not exist",
        "not_found.screen_pop_account": "OAuth account {id} does not exist",
        "name_taken.screen_pop": "Another screen-pop profile is named '{name}'",
        "screen_pop_not_salesforce": "OAuth account '{name}' is not a Salesforce account",
        "screen_pop_custom_not_built": "custom lookups are not available yet in this "
        "version: use the 'salesforce' lookup, or no lookup",
    }
)

# Custom lookups (seed 002 カスタム連携) need the shared request definitions; until they
# exist, such a profile is refused rather than stored to do nothing.
CUSTOM_NOT_BUILT = Message("screen_pop_custom_not_built")


async def _validate(
    session: AsyncSession, data: ScreenPopFields, own_id: int | None = None
) -> dict[str, Any]:
    errors: list[FieldError] = []
    same_name = await session.scalar(
        select(ScreenPopProfile.id).where(
            func.lower(ScreenPopProfile.name) == data.name.lower(),
            ScreenPopProfile.id != (own_id or 0),
        )
    )
    if same_name is not None:
        errors.append(FieldError("name", Message("name_taken.screen_pop", name=data.name)))
    lookup = data.lookup
    if lookup is not None and lookup.kind == "custom":
        errors.append(FieldError(("lookup", "kind"), CUSTOM_NOT_BUILT))
    elif lookup is not None:
        errors.extend(object_errors(lookup.objects, ("lookup",)))
        account = await session.get(OAuthAccount, lookup.oauth_account_id)
        if account is None:
            errors.append(
                FieldError(
                    ("lookup", "oauth_account_id"),
                    Message("not_found.screen_pop_account", id=lookup.oauth_account_id),
                )
            )
        elif account.provider != "salesforce":
            errors.append(
                FieldError(
                    ("lookup", "oauth_account_id"),
                    Message("screen_pop_not_salesforce", name=account.name),
                )
            )
    if errors:
        raise FieldErrors(errors)
    return data.model_dump(mode="json")


async def list_profiles(session: AsyncSession) -> list[ScreenPopProfile]:
    return list(await session.scalars(select(ScreenPopProfile).order_by(ScreenPopProfile.id)))


async def get_profile_or_404(session: AsyncSession, profile_id: int) -> ScreenPopProfile:
    profile = await session.get(ScreenPopProfile, profile_id)
    if profile is None:
        raise NotFound(Message("not_found.screen_pop", id=profile_id))
    return profile


async def create_profile(
    session: AsyncSession, data: ScreenPopFields, actor: str
) -> ScreenPopProfile:
    profile = ScreenPopProfile(**await _validate(session, data))
    session.add(profile)
    await session.flush()
    record_audit(session, actor, "screen_pop.create", data.name)
    return profile


def _current(profile: ScreenPopProfile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in ScreenPopFields.model_fields}


async def update_profile(
    session: AsyncSession, profile: ScreenPopProfile, data: ScreenPopUpdate, actor: str
) -> ScreenPopProfile:
    merged = {**_current(profile), **data.model_dump(exclude_unset=True, mode="json")}
    fields = ScreenPopFields.model_validate(merged)
    for name, value in (await _validate(session, fields, profile.id)).items():
        setattr(profile, name, value)
    await session.flush()
    record_audit(
        session, actor, "screen_pop.update", profile.name, fields=sorted(data.model_fields_set)
    )
    return profile


async def delete_profile(session: AsyncSession, profile: ScreenPopProfile, actor: str) -> None:
    await session.delete(profile)
    record_audit(session, actor, "screen_pop.delete", profile.name)
