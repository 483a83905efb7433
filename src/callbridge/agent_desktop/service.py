"""Screen-pop profiles (DESIGN §12.2): validation and storage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.agent_desktop.custom import PREFIX, compile_custom, lookup_values
from callbridge.agent_desktop.schemas import ScreenPopFields, ScreenPopRead, ScreenPopUpdate
from callbridge.audit import record_audit
from callbridge.errors import FieldError, FieldErrors, NotFound
from callbridge.history.service import object_errors
from callbridge.kit.crypto import SecretBox
from callbridge.messages import Message, define
from callbridge.models import OAuthAccount, ScreenPopProfile
from callbridge.requests import Finding, RequestInvalid, secret_errors
from callbridge.requests import service as requests_service
from callbridge.requests.fields import SECRET_FIELDS, normalise_empty_words
from callbridge.requests.schemas import Warning_
from callbridge.requests.secrets import secret_flags, secrets_set_after, store_secret

define(
    {
        "not_found.screen_pop": "screen-pop profile {id} does not exist",
        "not_found.screen_pop_account": "OAuth account {id} does not exist",
        "name_taken.screen_pop": "Another screen-pop profile is named '{name}'",
        "screen_pop_not_salesforce": "OAuth account '{name}' is not a Salesforce account",
    }
)

FEATURE = "screen_pop"
# The texts of an access that may be pasted as 「なし」 (none).
ACCESS_TEXT_FIELDS = ("headers", "body")


def _field_error(finding: Finding) -> FieldError:
    return FieldError(tuple(finding.field.split(".")), finding.said, finding.position)


def _is_custom(lookup: Any) -> bool:
    return isinstance(lookup, dict) and lookup.get("kind") == "custom"


async def check_custom(
    session: AsyncSession,
    lookup: dict[str, Any],
    trigger: str,
    secrets_set: dict[str, bool],
) -> list[Finding]:
    """Every error of a custom lookup at once (raised as 422s), else its warnings."""
    warnings: list[Finding] = []
    for name, access in (lookup.get("accesses") or {}).items():
        if access:
            warnings += normalise_empty_words(
                access, ACCESS_TEXT_FIELDS, f"{PREFIX}accesses.{name}."
            )
    findings: list[Finding] = []
    try:
        compiled = compile_custom(
            lookup,
            trigger=trigger,
            responses=await requests_service.names_from_others(session, FEATURE),
        )
        warnings += compiled.warnings
    except RequestInvalid as exc:
        findings += exc.findings
    if lookup.get("auth_type") == "oauth":
        findings += await requests_service.missing_accounts(
            session, [(f"{PREFIX}oauth_account_id", lookup.get("oauth_account_id"))]
        )
    for finding in secret_errors({lookup.get("auth_type")}, secrets_set):
        finding.field = PREFIX + finding.field
        findings.append(finding)
    if findings:
        raise FieldErrors([_field_error(f) for f in findings])
    return warnings


async def _validate(
    session: AsyncSession,
    data: ScreenPopFields,
    own_id: int | None = None,
    row: ScreenPopProfile | None = None,
) -> tuple[dict[str, Any], list[Finding]]:
    errors: list[FieldError] = []
    warnings: list[Finding] = []
    same_name = await session.scalar(
        select(ScreenPopProfile.id).where(
            func.lower(ScreenPopProfile.name) == data.name.lower(),
            ScreenPopProfile.id != (own_id or 0),
        )
    )
    if same_name is not None:
        errors.append(FieldError("name", Message("name_taken.screen_pop", name=data.name)))
    lookup = data.lookup
    values = data.model_dump(mode="json")
    if lookup is not None and lookup.kind == "custom":
        custom = values["lookup"]
        try:
            warnings = await check_custom(
                session, custom, data.trigger, secrets_set_after(custom, row)
            )
        except FieldErrors as exc:
            errors.extend(exc.errors)
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
    return values, warnings


def _store(profile: ScreenPopProfile, values: dict[str, Any], secrets: SecretBox | None) -> None:
    """The profile's fields; a custom lookup's authentication goes to its own columns,
    the secrets encrypted (write-only), the rest of the lookup to ``lookup``."""
    lookup = values.get("lookup")
    for name, value in values.items():
        if name != "lookup":
            setattr(profile, name, value)
    if not isinstance(lookup, dict) or not _is_custom(lookup):
        profile.lookup = lookup
        profile.auth_type = "none"
        profile.oauth_account_id = None
        profile.basic_username = ""
        profile.basic_password_encrypted = None
        profile.bearer_token_encrypted = None
        return
    custom = dict(lookup)
    # Only the accesses configured (an access left out is not run).
    custom["accesses"] = {k: v for k, v in (custom.get("accesses") or {}).items() if v}
    profile.auth_type = str(custom.pop("auth_type", None) or "none")
    profile.oauth_account_id = custom.pop("oauth_account_id", None)
    profile.basic_username = str(custom.pop("basic_username", None) or "")
    for secret in SECRET_FIELDS:
        value = custom.pop(secret, None)
        if value is not None and secrets is None:
            raise RuntimeError("a secret to store needs the runtime's SecretBox")
        if secrets is not None:
            store_secret(profile, secret, value, secrets)
    profile.lookup = custom


def profile_values(profile: ScreenPopProfile) -> dict[str, Any]:
    """The profile's fields as the API gives them (a custom lookup with its
    authentication; secrets never)."""
    current = {name: getattr(profile, name) for name in ScreenPopFields.model_fields}
    if _is_custom(profile.lookup):
        current["lookup"] = lookup_values(profile)
    return current


async def describe(session: AsyncSession, profile: ScreenPopProfile) -> ScreenPopRead:
    """The profile as read: a custom lookup with its authentication and the ``*_set``
    flags of its secrets, and the warnings it has now (as warnings, also what became an
    error after saving, e.g. a deleted OAuth account)."""
    read = ScreenPopRead.model_validate(profile)
    if not _is_custom(profile.lookup):
        account_id = (profile.lookup or {}).get("oauth_account_id")
        if account_id is not None and await session.get(OAuthAccount, int(account_id)) is None:
            deleted = Message("screen_pop_account_deleted", id=int(account_id))
            read.warnings = [
                Warning_(
                    field="lookup.oauth_account_id",
                    message=deleted.text,
                    code=deleted.code,
                    msg=deleted.to_json(),
                )
            ]
        return read
    lookup = lookup_values(profile)
    read.lookup = {**lookup, **secret_flags(profile)}
    try:
        found = await check_custom(session, lookup, profile.trigger, secrets_set_after({}, profile))
    except FieldErrors as exc:
        read.warnings = [
            Warning_(
                field=".".join(str(p) for p in e.loc),
                message=e.message,
                position=e.position,
                code=e.code,
                msg=e.msg.to_json() if e.msg else None,
            )
            for e in exc.errors
        ]
        return read
    read.warnings = [Warning_(**w.as_warning()) for w in found]
    return read


async def list_profiles(session: AsyncSession) -> list[ScreenPopProfile]:
    return list(await session.scalars(select(ScreenPopProfile).order_by(ScreenPopProfile.id)))


async def page_of_profiles(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[ScreenPopProfile], int]:
    """One page of the profiles in creation order (the order calls try them), and how many
    there are: the API's list reads ``limit``/``offset`` as every other list does."""
    total = await session.scalar(select(func.count()).select_from(ScreenPopProfile)) or 0
    profiles = await session.scalars(
        select(ScreenPopProfile).order_by(ScreenPopProfile.id).limit(limit).offset(offset)
    )
    return list(profiles), int(total)


async def get_profile_or_404(session: AsyncSession, profile_id: int) -> ScreenPopProfile:
    profile = await session.get(ScreenPopProfile, profile_id)
    if profile is None:
        raise NotFound(Message("not_found.screen_pop", id=profile_id))
    return profile


async def create_profile(
    session: AsyncSession, data: ScreenPopFields, actor: str, secrets: SecretBox | None = None
) -> ScreenPopProfile:
    """``secrets``: the runtime's box, to store a custom lookup's password or token."""
    values, _warnings = await _validate(session, data)
    profile = ScreenPopProfile()
    _store(profile, values, secrets)
    session.add(profile)
    await session.flush()
    record_audit(session, actor, "screen_pop.create", data.name)
    return profile


async def update_profile(
    session: AsyncSession,
    profile: ScreenPopProfile,
    data: ScreenPopUpdate,
    actor: str,
    secrets: SecretBox | None = None,
) -> ScreenPopProfile:
    """A field left out keeps its value; a custom lookup given for a custom lookup keeps
    the lookup's fields it leaves out (its authentication, timeouts; secrets as always)."""
    current = profile_values(profile)
    changes = data.model_dump(exclude_unset=True, mode="json")
    if data.lookup is not None and _is_custom(current["lookup"]) and data.lookup.kind == "custom":
        given = data.lookup.model_dump(exclude_unset=True, mode="json")
        changes["lookup"] = {**current["lookup"], **given}
    fields = ScreenPopFields.model_validate({**current, **changes})
    values, _warnings = await _validate(session, fields, profile.id, profile)
    _store(profile, values, secrets)
    await session.flush()
    record_audit(
        session, actor, "screen_pop.update", profile.name, fields=sorted(data.model_fields_set)
    )
    return profile


async def delete_profile(session: AsyncSession, profile: ScreenPopProfile, actor: str) -> None:
    await session.delete(profile)
    record_audit(session, actor, "screen_pop.delete", profile.name)
