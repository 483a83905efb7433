"""IVR configurations: create, update, delete with save-time validation and warnings;
the values an invocation reads from the stored call. Services never commit."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.calls import store
from callbridge.errors import Conflict, FieldError, FieldErrors, NotFound
from callbridge.ivr import repository
from callbridge.ivr.compiler import CompiledIvr, IvrInvalid, compile_ivr
from callbridge.ivr.schemas import IvrCreate, IvrRead, IvrUpdate
from callbridge.kit.crypto import SecretBox
from callbridge.messages import Message, define
from callbridge.models.ivr import Ivr, IvrResponse, IvrStep
from callbridge.requests import Finding, produced_names, secret_errors
from callbridge.requests import service as requests_service
from callbridge.requests.fields import SECRET_FIELDS, normalise_empty_words
from callbridge.requests.schemas import Warning_
from callbridge.requests.secrets import (
    decrypted_secrets,
    secret_flags,
    secrets_set_after,
    store_secret,
)

FEATURE = "ivr"

TEXT_FIELDS = ("headers", "body", "extract_pattern", "digits_pattern")
RESPONSE_TEXT_FIELDS = (
    "response_pattern",
    "extract_pattern",
    "condition_code",
    "condition_pattern",
)
STEP_TEXT_FIELDS = ("headers", "body", "extract_pattern", "condition_code", "condition_pattern")
RESPONSE_FIELDS = (
    "priority",
    "response_code",
    "response_pattern",
    "extract_pattern",
    "condition_code",
    "condition_pattern",
    "step",
    "guidance",
    "transfer",
    "memo",
)
STEP_FIELDS = (
    "name",
    "url",
    "method",
    "headers",
    "body",
    "auth_type",
    "oauth_account_id",
    "extract_pattern",
    "condition_code",
    "condition_pattern",
)
SCALAR_FIELDS = (
    "key",
    "name",
    "auth_type",
    "oauth_account_id",
    "basic_username",
    "url",
    "method",
    "headers",
    "body",
    "timeout_seconds",
    "extract_pattern",
    "max_digits",
    "digits_pattern",
    "pre_guidance",
    "on_error",
    "on_input_invalid",
    "on_no_match",
    "pbx_variables",
    "memo",
)


define(
    {
        "not_null": "This field cannot be null.",
        "not_found.ivr": "IVR '{key}' does not exist",
        "key_taken.ivr": "an IVR with key '{key}' already exists",
    }
)


class PathFieldError(FieldError):
    """A field error whose location may hold list indices (``responses.0.guidance.text``)."""

    def __init__(self, path: str, message: str | Message, position: int | None = None) -> None:
        super().__init__(path, message, position)
        self.path: tuple[str | int, ...] = tuple(
            int(part) if part.isdigit() else part for part in path.split(".")
        )

    def detail(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {
            "loc": ["body", *self.path],
            "msg": self.message,
            "type": "value_error",
        }
        if self.position is not None:
            item["position"] = self.position
        item["code"] = self.code
        return [item]


# ---- values -------------------------------------------------------------------------


def response_values(response: IvrResponse) -> dict[str, Any]:
    return {"id": response.id, **{name: getattr(response, name) for name in RESPONSE_FIELDS}}


def step_values(step: IvrStep) -> dict[str, Any]:
    return {"id": step.id, **{name: getattr(step, name) for name in STEP_FIELDS}}


def ivr_values(ivr: Ivr) -> dict[str, Any]:
    """The IVR's fields by API name (secrets as ``*_set`` flags), children included."""
    values: dict[str, Any] = {name: getattr(ivr, name) for name in SCALAR_FIELDS}
    values.update(
        id=ivr.id,
        revision=ivr.revision,
        **secret_flags(ivr),
        responses=[response_values(r) for r in ivr.responses],
        steps=[step_values(s) for s in ivr.steps],
    )
    return values


def _normalise_empty_words(values: dict[str, Any]) -> list[Finding]:
    """「なし」 as the manuals print it in empty cells, pasted verbatim, means empty."""
    found = normalise_empty_words(values, TEXT_FIELDS)
    for index, response in enumerate(values.get("responses") or []):
        found += normalise_empty_words(response, RESPONSE_TEXT_FIELDS, f"responses.{index}.")
    for index, step in enumerate(values.get("steps") or []):
        found += normalise_empty_words(step, STEP_TEXT_FIELDS, f"steps.{index}.")
    return found


# ---- validation -----------------------------------------------------------------------


async def available_response_names(session: AsyncSession) -> set[str]:
    """What the other features (call-action rules) can put on a call: an IVR may run at
    any point of it."""
    return await requests_service.names_from_others(session, FEATURE)


async def produced_by_ivrs(session: AsyncSession) -> set[str]:
    """Every name an IVR stores on calls (for the other features' "not produced"
    warnings: a rule using ``{RESPONSE_NAME}`` from an IVR gets none)."""
    names: set[str] = set()
    for ivr in await repository.all_ivrs(session):
        names.update(
            produced_names(
                ivr.extract_pattern,
                *(step.extract_pattern for step in ivr.steps),
                *(response.extract_pattern for response in ivr.responses),
            )
        )
    return names


requests_service.register_names(FEATURE, produced_by_ivrs)


async def check_ivr(
    session: AsyncSession,
    values: dict[str, Any],
    *,
    secrets_set: dict[str, bool],
    available: set[str] | None = None,
) -> tuple[CompiledIvr, list[Warning_]]:
    """Validate every field; all errors at once as 422, else the warnings.
    ``available``: the names call-action rules extract (read here when not given)."""
    notes = _normalise_empty_words(values)
    if available is None:
        available = await available_response_names(session)
    findings: list[Finding] = []
    compiled: CompiledIvr | None = None
    try:
        compiled = compile_ivr(values, available_responses=available)
    except IvrInvalid as exc:
        findings.extend(exc.findings)
    steps = values.get("steps") or []
    accounts = [
        (f"steps.{index}.oauth_account_id", step.get("oauth_account_id") or None)
        for index, step in enumerate(steps)
        if step.get("auth_type") == "oauth"
    ]
    if values.get("auth_type") == "oauth":
        accounts.append(("oauth_account_id", values.get("oauth_account_id")))
    findings += await requests_service.missing_accounts(session, accounts)
    uses = {values.get("auth_type")} | {step.get("auth_type") for step in steps}
    findings += secret_errors(uses, secrets_set)
    if findings:
        raise FieldErrors([PathFieldError(f.field, f.said, f.position) for f in findings])
    assert compiled is not None
    warnings = [Warning_(**f.as_warning()) for f in (*notes, *compiled.warnings)]
    return compiled, warnings


def compile_for_run(ivr: Ivr, secrets: SecretBox) -> CompiledIvr:
    """The IVR ready to invoke (secrets decrypted, no save-time warnings computed)."""
    values = ivr_values(ivr)
    _normalise_empty_words(values)
    return compile_ivr(values, secrets=decrypted_secrets(ivr, secrets), available_responses=None)


# ---- reads --------------------------------------------------------------------------------


def to_read(ivr: Ivr, compiled: CompiledIvr | None, warnings: list[Warning_]) -> IvrRead:
    values = ivr_values(ivr)
    produces = compiled.produces if compiled is not None else ()
    return IvrRead(
        **values,
        produces=[f"RESPONSE_{name}" for name in produces],
        created_at=ivr.created_at,
        updated_at=ivr.updated_at,
        warnings=warnings,
    )


async def describe(session: AsyncSession, ivr: Ivr, available: set[str] | None = None) -> IvrRead:
    """The IVR as read, with the warnings it has now (rules and accounts may have changed).
    ``available``: as for ``check_ivr`` (a list reads it once for all its IVRs)."""
    values = ivr_values(ivr)
    try:
        compiled, warnings = await check_ivr(
            session, values, secrets_set=secrets_set_after({}, ivr), available=available
        )
    except FieldErrors as exc:
        # Saved before something it depends on changed (its OAuth account was deleted):
        # shown as warnings; invocations answer request_error with the reason.
        warnings = [
            Warning_.of_error(e, ".".join(str(p) for p in getattr(e, "path", e.loc)))
            for e in exc.errors
        ]
        return to_read(ivr, None, warnings)
    return to_read(ivr, compiled, warnings)


async def get_ivr_or_404(session: AsyncSession, key_or_id: str) -> Ivr:
    """By key; a number that is no key is taken as an id."""
    ivr = await repository.get_by_key(session, key_or_id)
    if ivr is None and key_or_id.isascii() and key_or_id.isdigit() and len(key_or_id) < 10:
        ivr = await repository.get_by_id(session, int(key_or_id))
    if ivr is None:
        raise NotFound(Message("not_found.ivr", key=key_or_id))
    return ivr


# ---- writes ------------------------------------------------------------------------------


Row = TypeVar("Row", IvrResponse, IvrStep)


def _kept_rows(
    rows: list[Row], wanted: list[dict[str, Any]], fields: Iterable[str], make: type[Row]
) -> list[Row]:
    """The rows of a list given whole, keeping the ids of the rows already saved (their
    pages' addresses): an item equal to a saved row is that row, the others take the
    remaining rows in order, and only what is left over is added or removed. Saving one
    response setting or step from its page so leaves every id as it was."""
    names = tuple(fields)
    free = list(rows)
    kept: list[Row | None] = []
    for item in wanted:
        same = next((r for r in free if all(getattr(r, f) == item.get(f) for f in names)), None)
        if same is not None:
            free.remove(same)
        kept.append(same)
    found: list[Row] = []
    for item, row in zip(wanted, kept, strict=True):
        if row is None:
            row = free.pop(0) if free else make()
            for f in names:
                setattr(row, f, item.get(f))
        found.append(row)
    return found


def _apply(ivr: Ivr, values: dict[str, Any], changed: set[str], secrets: SecretBox) -> None:
    for name in changed:
        value = values.get(name)
        if name in SECRET_FIELDS:
            store_secret(ivr, name, value, secrets)
        elif name == "responses":
            ivr.responses = _kept_rows(ivr.responses, value or [], RESPONSE_FIELDS, IvrResponse)
        elif name == "steps":
            ivr.steps = _kept_rows(ivr.steps, value or [], STEP_FIELDS, IvrStep)
            for index, step in enumerate(ivr.steps):
                step.position = index
        elif name in SCALAR_FIELDS:
            setattr(ivr, name, value)


def _dump(data: IvrCreate | IvrUpdate, *, exclude_unset: bool) -> dict[str, Any]:
    values = data.model_dump(mode="json", exclude_unset=exclude_unset)
    # A list given replaces the whole list: its items with their defaults, as in a POST.
    for name in ("responses", "steps"):
        items = getattr(data, name)
        if name in values and items is not None:
            values[name] = [item.model_dump(mode="json") for item in items]
    return values


async def create_ivr(
    session: AsyncSession, data: IvrCreate, secrets: SecretBox, actor: str
) -> IvrRead:
    values = _dump(data, exclude_unset=False)
    if await repository.key_taken(session, data.key):
        raise Conflict(Message("key_taken.ivr", key=data.key))
    compiled, warnings = await check_ivr(session, values, secrets_set=secrets_set_after(values))
    ivr = Ivr(revision=1, responses=[], steps=[])
    _apply(ivr, values, set(values), secrets)
    session.add(ivr)
    await session.flush()
    record_audit(session, actor, "ivr.create", ivr.key)
    return to_read(ivr, compiled, warnings)


async def update_ivr(
    session: AsyncSession, ivr: Ivr, data: IvrUpdate, secrets: SecretBox, actor: str
) -> IvrRead:
    changes = _dump(data, exclude_unset=True)
    for name in ("key", "url", "method", "auth_type", "timeout_seconds", "max_digits"):
        if name in changes and changes[name] is None:
            raise PathFieldError(name, Message("not_null"))
    if "key" in changes and await repository.key_taken(session, changes["key"], ivr.id):
        raise Conflict(Message("key_taken.ivr", key=changes["key"]))
    values = ivr_values(ivr)
    values.update(changes)
    for name in ("responses", "steps", "pbx_variables"):
        if values.get(name) is None:
            values[name] = []
    compiled, warnings = await check_ivr(
        session, values, secrets_set=secrets_set_after(changes, ivr)
    )
    _apply(ivr, values, set(changes), secrets)
    ivr.revision = ivr.revision + 1
    await session.flush()
    record_audit(session, actor, "ivr.update", ivr.key, fields=sorted(changes))
    return to_read(ivr, compiled, warnings)


# Required values a form can get wrong, and what stands in for them while the other fields
# are checked (any error about the stand-in is dropped with the field's own error).
_STAND_INS: dict[str, Any] = {"priority": 1}


def _drop(payload: Any, path: tuple[Any, ...]) -> None:
    """Remove the value at ``path`` (an error location) from nested dicts and lists."""
    *parents, last = path
    for part in parents:
        try:
            payload = payload[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(payload, dict):
        if last in _STAND_INS:
            payload[last] = _STAND_INS[last]
        else:
            payload.pop(last, None)


async def errors_beside(
    session: AsyncSession, payload: dict[str, Any], invalid: ValidationError, ivr: Ivr | None
) -> list[FieldError]:
    """The save's own checks on what passed the type checks, so a form with one bad number
    also hears about its bad header or pattern: every error at once, not in rounds."""
    bad = [tuple(error["loc"]) for error in invalid.errors() if error["loc"]]
    pruned = copy.deepcopy(payload)
    for path in bad:
        _drop(pruned, path)
    try:
        changes = _dump(IvrUpdate.model_validate(pruned), exclude_unset=True)
    except ValidationError:
        return []
    if ivr is not None:
        values = ivr_values(ivr)
    else:  # placeholders for required fields the form got wrong (their errors are known)
        values = _dump(IvrCreate(key="new", url="https://example.com/"), exclude_unset=False)
    values.update({k: v for k, v in changes.items() if v is not None})
    try:
        await check_ivr(session, values, secrets_set=secrets_set_after(changes, ivr))
    except FieldErrors as found:
        return [
            error
            for error in found.errors
            if not any(
                tuple(getattr(error, "path", error.loc))[: len(path)] == path for path in bad
            )
        ]
    return []


async def delete_ivr(session: AsyncSession, ivr: Ivr, actor: str) -> None:
    await session.delete(ivr)
    record_audit(session, actor, "ivr.delete", ivr.key)


# ---- the stored call ---------------------------------------------------------------------


async def call_values(session: AsyncSession, call_id: str) -> dict[str, str]:
    """What the call store knows of a call, as template values (for IVRs that use an
    earlier rule's ``{RESPONSE_X}`` or a column the invoke body does not carry)."""
    call = await store.find_call(session, call_id)
    if call is None:
        return {}
    values = await store.get_variables(session, call.id)
    for name, value in (
        ("TEL", call.tel),
        ("TELNAME", call.tel_name),
        ("CALLED", call.called),
        ("CALLEDNAME", call.called_name),
        ("DIRECTION", call.direction),
        ("QUEUE", call.queue),
        ("UNIQUE_ID", call.unique_id),
        ("EVENT", call.last_event),
    ):
        if value:
            values[name] = value
    return values
