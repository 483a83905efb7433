"""The sections of the configuration document, one class each.

A section writes its objects in the document's shape (names instead of ids, no secrets,
no run-time state) and applies a document's objects through the feature's own create,
update and delete services, so every rule of the UI and the API applies to an import too.
A feature added later adds a section to ``sections()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import partial
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.agent_desktop import service as screen_pop_service
from callbridge.agent_desktop.schemas import ScreenPopCreate, ScreenPopFields, ScreenPopUpdate
from callbridge.call_actions import repository as call_action_repository
from callbridge.call_actions import service as call_action_service
from callbridge.call_actions.schemas import CallActionCreate, CallActionUpdate
from callbridge.config_io.context import ImportContext, Path, document_loc, path_text
from callbridge.errors import CallbridgeError
from callbridge.history import service as history_service
from callbridge.history.schemas import HistoryLinkCreate, HistoryLinkUpdate
from callbridge.ivr import repository as ivr_repository
from callbridge.ivr import service as ivr_service
from callbridge.ivr.schemas import IvrCreate, IvrUpdate
from callbridge.models import (
    CallAction,
    HistoryLink,
    Ivr,
    IvrStep,
    OAuthAccount,
    ScreenPopProfile,
)
from callbridge.oauth_accounts import repository as oauth_repository
from callbridge.oauth_accounts import service as oauth_service
from callbridge.oauth_accounts.schemas import OAuthAccountCreate, OAuthAccountUpdate
from callbridge.system_settings import service as settings_service
from callbridge.system_settings.schemas import SystemSettingsUpdate

Item = dict[str, Any]
AccountNames = dict[int, str]

# Write-only fields a document may carry (never exported).
RULE_SECRETS = ("basic_password", "bearer_token")
ACCOUNT_SECRETS = oauth_service.SECRET_FIELDS
IDS = ("id", "oauth_account_id")


def _account_name(names: AccountNames, account_id: int | None) -> str | None:
    return names.get(account_id) if account_id is not None else None


def _without(values: Item, *names: str) -> Item:
    return {k: v for k, v in values.items() if k not in names}


class Section(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        """The section as the document holds it."""

    @abstractmethod
    def entries(self, exported: Any) -> dict[str, Any]:
        """The exported section by label (what the difference names each object by)."""

    @abstractmethod
    async def apply(self, ctx: ImportContext, data: Any) -> None:
        """Create and update what the document says (problems go to ``ctx``)."""

    async def remove_absent(self, ctx: ImportContext) -> None:  # noqa: B027 (optional)
        """With prune: delete what the document does not hold (after every section is
        applied, last section first)."""


class ListSection(Section):
    """A section that is a list of objects, each with a label unique in the section."""

    def entries(self, exported: Any) -> dict[str, Any]:
        return {self.label(item): item for item in exported}

    @abstractmethod
    def label(self, item: Item) -> str: ...

    @staticmethod
    def items(ctx: ImportContext, name: str, data: Any) -> list[tuple[Path, Item]]:
        if data is None:
            return []
        if not isinstance(data, list):
            ctx.problem((name,), "expected a list")
            return []
        found: list[tuple[Path, Item]] = []
        for index, item in enumerate(data):
            path: Path = (name, index)
            if not isinstance(item, dict):
                ctx.problem(path, "expected a mapping of fields")
                continue
            for id_name in IDS:
                if id_name in item:
                    ctx.problem(
                        (*path, id_name),
                        "database ids differ between callbridges: refer by name "
                        "(oauth_account: NAME)"
                        if id_name == "oauth_account_id"
                        else "database ids differ between callbridges: leave the id out",
                    )
            found.append((path, _without(item, *IDS)))
        return found

    @staticmethod
    def secrets_given(ctx: ImportContext, path: Path, item: Item, names: tuple[str, ...]) -> None:
        for name in names:
            if item.get(name):
                ctx.secrets_set.append(path_text((*path, name)))

    @staticmethod
    def changed_fields(wanted: Item, current: Item) -> list[str]:
        return [name for name, value in wanted.items() if current.get(name) != value]


M = TypeVar("M", bound=BaseModel)


def validated(ctx: ImportContext, path: Path, schema: type[M], values: Item) -> M | None:
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        ctx.invalid(path, exc, values)
        return None


# ---- OAuth accounts ----------------------------------------------------------------------

ACCOUNT_FIELDS = tuple(f for f in OAuthAccountCreate.model_fields if f not in ACCOUNT_SECRETS)


class OAuthAccounts(ListSection):
    """By name; secrets and tokens stay where they are (a new account is created without
    them and says so); status, instance URL and API usage are run-time state."""

    name = "oauth_accounts"

    def __init__(self) -> None:
        self._absent: list[OAuthAccount] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        rows = await oauth_repository.list_accounts(session, limit=100_000, offset=0)
        # Sorted here: the databases' collations order names differently.
        return sorted((self.item(account) for account in rows[0]), key=self.label)

    @staticmethod
    def item(account: OAuthAccount) -> Item:
        return {name: getattr(account, name) for name in ACCOUNT_FIELDS}

    def label(self, item: Item) -> str:
        return str(item["name"])

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        session, runtime = ctx.session, ctx.runtime
        existing = {
            a.name.lower(): a
            for a in (await oauth_repository.list_accounts(session, 100_000, 0))[0]
        }
        seen: set[str] = set()
        for path, raw in self.items(ctx, self.name, data):
            wanted = validated(ctx, path, OAuthAccountCreate, raw)
            if wanted is None:
                continue
            lowered = wanted.name.lower()
            if lowered in seen:
                ctx.problem((*path, "name"), f"the account '{wanted.name}' is given twice")
                continue
            seen.add(lowered)
            self.secrets_given(ctx, path, raw, ACCOUNT_SECRETS)
            account = existing.get(lowered)
            try:
                if account is None:
                    account = await oauth_service.create_account(
                        session, runtime, wanted, ctx.actor, secrets_later=True
                    )
                    if account.status_detail:
                        ctx.warn(path, account.status_detail)
                    continue
                values = wanted.model_dump()
                changes = self.changed_fields(
                    {n: values[n] for n in ACCOUNT_FIELDS}, self.item(account)
                )
                changes += [n for n in ACCOUNT_SECRETS if values.get(n)]
                if changes:
                    update = OAuthAccountUpdate.model_validate({n: values[n] for n in changes})
                    await oauth_service.update_account(session, runtime, account, update, ctx.actor)
            except CallbridgeError as exc:
                ctx.refused(path, exc)
        for lowered, account in existing.items():
            if lowered not in seen:
                self._absent.append(account)
                if not ctx.prune:
                    ctx.kept.append((self.name, account.name))
        ctx.account_ids = {
            a.name.lower(): a.id
            for a in (await oauth_repository.list_accounts(session, 100_000, 0))[0]
        }

    async def remove_absent(self, ctx: ImportContext) -> None:
        runtime = ctx.runtime
        for account in self._absent:
            # Removed as the API removes it (kept references fail until another account
            # is chosen, as they say): what still uses it is named in a warning. The
            # objects the document left out were removed before (last section first).
            users = await _account_users(ctx.session, account.id)
            await oauth_service.delete_account(
                ctx.session, runtime, account, ctx.actor, revoke_now=False
            )
            ctx.after_commit.append(partial(oauth_service.revoke_tokens, account, runtime))
            if users:
                ctx.warn(
                    (self.name,),
                    f"OAuth account '{account.name}' was removed but is still used by "
                    f"{', '.join(users)}: they fail until you choose another account",
                )


def _uses_account(value: Any, account_id: int) -> bool:
    """Whether a stored lookup (a screen-pop profile's) names the account anywhere."""
    if isinstance(value, dict):
        return any(
            (k == "oauth_account_id" and v == account_id) or _uses_account(v, account_id)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_uses_account(v, account_id) for v in value)
    return False


async def _account_users(session: AsyncSession, account_id: int) -> list[str]:
    """What names the account: call-action rules, IVRs (and their steps), history links,
    screen-pop profiles."""
    users = [
        f"call-action rule #{rule_id}"
        for rule_id in await session.scalars(
            select(CallAction.id).where(CallAction.oauth_account_id == account_id)
        )
    ]
    ivrs = await session.scalars(
        select(Ivr.name)
        .where(
            (Ivr.oauth_account_id == account_id)
            | Ivr.id.in_(select(IvrStep.ivr_id).where(IvrStep.oauth_account_id == account_id))
        )
        .order_by(Ivr.id)
    )
    users += [f"IVR '{name}'" for name in ivrs]
    links = await session.scalars(
        select(HistoryLink.name).where(HistoryLink.oauth_account_id == account_id)
    )
    users += [f"history link '{name}'" for name in links]
    users += [
        f"screen-pop profile '{profile.name}'"
        for profile in await screen_pop_service.list_profiles(session)
        if _uses_account(profile.lookup, account_id)
    ]
    return users


# ---- call-action rules -----------------------------------------------------------------

# The document's fields of a rule: the schema's, the account by name, no secrets.
RULE_FIELDS = tuple(
    "oauth_account" if f == "oauth_account_id" else f
    for f in CallActionCreate.model_fields
    if f not in RULE_SECRETS
)


def _effective_orders(rules: list[CallAction]) -> list[tuple[CallAction, int]]:
    """Rules by event in run order, each with an order unique in its event: a stored order
    equal to an earlier rule's (possible through the API) is raised just past it, which
    keeps the run order."""
    placed: list[tuple[CallAction, int]] = []
    last: dict[str, int] = {}
    for rule in sorted(rules, key=lambda r: (r.event, r.execution_order, r.id)):
        order = max(rule.execution_order, last.get(rule.event, -1) + 1)
        last[rule.event] = order
        placed.append((rule, order))
    return placed


class CallActions(ListSection):
    """By event and order (``incoming #2``); the OAuth account by name."""

    name = "call_actions"

    def __init__(self) -> None:
        self._absent: list[CallAction] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        rules = await call_action_repository.all_rules(session)
        return [self.item(rule, order, accounts) for rule, order in _effective_orders(rules)]

    @staticmethod
    def item(rule: CallAction, order: int, accounts: AccountNames) -> Item:
        values = call_action_service.rule_values(rule)
        values["order"] = order
        values["oauth_account"] = _account_name(accounts, rule.oauth_account_id)
        return {name: values[name] for name in RULE_FIELDS}

    def label(self, item: Item) -> str:
        return f"{item['event']} #{item['order']}"

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        session, secrets = ctx.session, ctx.runtime.secrets
        accounts = {v: k for k, v in ctx.account_ids.items()}
        existing = {
            (rule.event, order): (rule, self.item(rule, order, accounts))
            for rule, order in _effective_orders(await call_action_repository.all_rules(session))
        }
        seen: dict[tuple[str, int], Path] = {}
        placed: dict[str, int] = {}
        for path, raw in self.items(ctx, self.name, data):
            known = len(ctx.problems)
            values = _without(raw, "oauth_account")
            values["oauth_account_id"] = ctx.account_id(
                (*path, "oauth_account"), raw.get("oauth_account")
            )
            wanted = validated(ctx, path, CallActionCreate, values)
            if wanted is None or len(ctx.problems) > known:
                continue
            if "order" not in raw:
                # Left out: the rule's place among the document's rules of its event.
                wanted.order = placed.get(wanted.event, 0) + 1
            placed[wanted.event] = wanted.order
            key: tuple[str, int] = (wanted.event, wanted.order)
            if key in seen:
                ctx.problem(
                    (*path, "order"),
                    f"{wanted.event} #{wanted.order} is given twice (also at "
                    f"{path_text(seen[key])}): orders are unique within an event",
                )
                continue
            seen[key] = path
            self.secrets_given(ctx, path, raw, RULE_SECRETS)
            try:
                found = existing.get(key)
                if found is None:
                    read = await call_action_service.create_rule(
                        session, wanted, secrets, ctx.actor
                    )
                else:
                    rule, current = found
                    dumped = wanted.model_dump()
                    document = {**dumped, "oauth_account": raw.get("oauth_account") or None}
                    changes = self.changed_fields(
                        {n: document[n] for n in current if n != "oauth_account"}, current
                    )
                    if current.get("oauth_account") != _account_name(
                        accounts, wanted.oauth_account_id
                    ):
                        changes.append("oauth_account_id")
                    changes += [n for n in RULE_SECRETS if dumped.get(n)]
                    if not changes:
                        continue
                    update = CallActionUpdate.model_validate({n: dumped[n] for n in changes})
                    read = await call_action_service.update_rule(
                        session, rule, update, secrets, ctx.actor
                    )
            except CallbridgeError as exc:
                ctx.refused(path, exc)
                continue
            for warning in read.warnings:
                ctx.warn((*path, warning.field), warning.message)
        for key, (rule, _item) in existing.items():
            if key not in seen:
                self._absent.append(rule)
                if not ctx.prune:
                    ctx.kept.append((self.name, f"{key[0]} #{key[1]}"))

    async def remove_absent(self, ctx: ImportContext) -> None:
        for rule in self._absent:
            await call_action_service.delete_rule(ctx.session, rule, ctx.actor)


# ---- IVRs --------------------------------------------------------------------------------

IVR_FIELDS = tuple(f for f in IvrCreate.model_fields if f not in RULE_SECRETS)


class Ivrs(ListSection):
    """By key, with their response settings (by priority) and steps (in order)."""

    name = "ivrs"

    def __init__(self) -> None:
        self._absent: list[Ivr] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        ivrs = await ivr_repository.all_ivrs(session)
        return sorted((self.item(ivr, accounts) for ivr in ivrs), key=self.label)

    @staticmethod
    def item(ivr: Ivr, accounts: AccountNames) -> Item:
        return Ivrs.shape(ivr_service.ivr_values(ivr), accounts)

    @staticmethod
    def shape(values: Item, accounts: AccountNames) -> Item:
        """Service values (ids, account ids) in the document's shape."""
        item: Item = {}
        for name in IVR_FIELDS:
            if name == "oauth_account_id":
                item["oauth_account"] = _account_name(accounts, values[name])
            elif name == "responses":
                item[name] = [_without(r, "id") for r in values[name]]
            elif name == "steps":
                item[name] = [
                    {
                        ("oauth_account" if k == "oauth_account_id" else k): (
                            _account_name(accounts, v) if k == "oauth_account_id" else v
                        )
                        for k, v in step.items()
                        if k != "id"
                    }
                    for step in values[name]
                ]
            else:
                item[name] = values[name]
        return item

    def label(self, item: Item) -> str:
        return str(item["key"])

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        session, secrets = ctx.session, ctx.runtime.secrets
        accounts = {v: k for k, v in ctx.account_ids.items()}
        existing = {ivr.key: ivr for ivr in await ivr_repository.all_ivrs(session)}
        seen: set[str] = set()
        for path, raw in self.items(ctx, self.name, data):
            known = len(ctx.problems)
            values = self._with_account_ids(ctx, path, raw)
            wanted = validated(ctx, path, IvrCreate, values)
            if wanted is None or len(ctx.problems) > known:
                continue
            if wanted.key in seen:
                ctx.problem((*path, "key"), f"the IVR '{wanted.key}' is given twice")
                continue
            seen.add(wanted.key)
            self.secrets_given(ctx, path, raw, RULE_SECRETS)
            index_map = _response_index_map(raw, wanted)
            try:
                ivr = existing.get(wanted.key)
                if ivr is None:
                    read = await ivr_service.create_ivr(session, wanted, secrets, ctx.actor)
                else:
                    dumped = wanted.model_dump(mode="json")
                    document = self.shape(dumped, accounts)
                    current = self.item(ivr, accounts)
                    changes = [
                        ("oauth_account_id" if n == "oauth_account" else n)
                        for n in self.changed_fields(document, current)
                    ]
                    changes += [n for n in RULE_SECRETS if dumped.get(n)]
                    if not changes:
                        continue
                    update = IvrUpdate.model_validate({n: dumped[n] for n in changes})
                    read = await ivr_service.update_ivr(session, ivr, update, secrets, ctx.actor)
            except CallbridgeError as exc:
                ctx.refused(path, exc, index_map)
                continue
            for warning in read.warnings:
                ctx.warn((*path, *index_map(_dotted(warning.field))), warning.message)
        for key, ivr in existing.items():
            if key not in seen:
                self._absent.append(ivr)
                if not ctx.prune:
                    ctx.kept.append((self.name, key))

    @staticmethod
    def _with_account_ids(ctx: ImportContext, path: Path, raw: Item) -> Item:
        values = _without(raw, "oauth_account")
        values["oauth_account_id"] = ctx.account_id(
            (*path, "oauth_account"), raw.get("oauth_account")
        )
        steps = raw.get("steps")
        if isinstance(steps, list):
            values["steps"] = [
                {
                    **_without(step, "oauth_account"),
                    "oauth_account_id": ctx.account_id(
                        (*path, "steps", index, "oauth_account"), step.get("oauth_account")
                    ),
                }
                if isinstance(step, dict)
                else step
                for index, step in enumerate(steps)
            ]
        return values

    async def remove_absent(self, ctx: ImportContext) -> None:
        for ivr in self._absent:
            await ivr_service.delete_ivr(ctx.session, ivr, ctx.actor)


def _dotted(field: str) -> Path:
    return tuple(int(p) if p.isdigit() else p for p in field.split("."))


def _response_index_map(raw: Item, wanted: IvrCreate) -> Any:
    """The services number response settings by priority; the document may list them in
    another order: ``responses[k]`` of the service → the document's index."""
    positions: dict[int, int] = {}
    listed = raw.get("responses")
    if isinstance(listed, list):
        for index, response in enumerate(listed):
            try:
                positions[int(str(response.get("priority")))] = index
            except (AttributeError, ValueError):
                continue

    def mapped(path: Path) -> Path:
        if (
            len(path) >= 2
            and path[0] == "responses"
            and isinstance(path[1], int)
            and path[1] < len(wanted.responses)
        ):
            priority = wanted.responses[path[1]].priority
            return ("responses", positions.get(priority, path[1]), *path[2:])
        return path

    return mapped


# ---- history links ------------------------------------------------------------------------

HISTORY_FIELDS = tuple(
    "oauth_account" if f == "oauth_account_id" else f for f in HistoryLinkCreate.model_fields
)


class HistoryLinks(ListSection):
    """By name; the OAuth account by name; the rows (連携通話履歴) are run-time state."""

    name = "history_links"

    def __init__(self) -> None:
        self._absent: list[HistoryLink] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        links, _total = await history_service.list_links(session, limit=100_000)
        return sorted((self.item(link, accounts) for link in links), key=self.label)

    @staticmethod
    def item(link: HistoryLink, accounts: AccountNames) -> Item:
        values = HistoryLinkCreate.model_validate(link, from_attributes=True).model_dump()
        values["oauth_account"] = _account_name(accounts, link.oauth_account_id)
        return {name: values[name] for name in HISTORY_FIELDS}

    def label(self, item: Item) -> str:
        return str(item["name"])

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        session = ctx.session
        accounts = {v: k for k, v in ctx.account_ids.items()}
        links, _total = await history_service.list_links(session, limit=100_000)
        existing = {link.name.lower(): link for link in links}
        seen: set[str] = set()
        for path, raw in self.items(ctx, self.name, data):
            known = len(ctx.problems)
            values = _without(raw, "oauth_account")
            values["oauth_account_id"] = ctx.account_id(
                (*path, "oauth_account"), raw.get("oauth_account")
            )
            wanted = validated(ctx, path, HistoryLinkCreate, values)
            if wanted is None or len(ctx.problems) > known:
                continue
            lowered = wanted.name.lower()
            if lowered in seen:
                ctx.problem((*path, "name"), f"the history link '{wanted.name}' is given twice")
                continue
            seen.add(lowered)
            try:
                link = existing.get(lowered)
                if link is None:
                    _link, warnings = await history_service.create_link(session, wanted, ctx.actor)
                else:
                    dumped = wanted.model_dump()
                    current = self.item(link, accounts)
                    document = {**dumped, "oauth_account": raw.get("oauth_account")}
                    changes = [
                        "oauth_account_id" if n == "oauth_account" else n
                        for n in self.changed_fields(
                            {n: document[n] for n in HISTORY_FIELDS}, current
                        )
                    ]
                    if not changes:
                        continue
                    update = HistoryLinkUpdate.model_validate({n: dumped[n] for n in changes})
                    warnings = await history_service.update_link(session, link, update, ctx.actor)
            except CallbridgeError as exc:
                ctx.refused(path, exc)
                continue
            for warning in warnings:
                ctx.warn((*path, *split_warning(warning.field)), warning.message)
        for lowered, link in existing.items():
            if lowered not in seen:
                self._absent.append(link)
                if not ctx.prune:
                    ctx.kept.append((self.name, link.name))

    async def remove_absent(self, ctx: ImportContext) -> None:
        for link in self._absent:
            await history_service.delete_link(ctx.session, link, ctx.actor)


def split_warning(field: str) -> Path:
    return _dotted(field) if field else ()


# ---- screen pops --------------------------------------------------------------------------

SCREEN_POP_FIELDS = tuple(ScreenPopFields.model_fields)


def _lookup_accounts(lookup: Any, rename: Any, drop: tuple[str, ...] = ()) -> Any:
    """A lookup with its account reference(s) renamed by ``rename(key, value, where)``: the
    lookup's own and any access's (``where`` is the place inside the lookup); the accesses'
    fields named in ``drop`` (secrets, when exporting) are left out."""
    if not isinstance(lookup, dict):
        return lookup
    shaped: Item = {}
    for key, value in lookup.items():
        if key != "accesses" or not isinstance(value, dict):
            new_key, new_value = rename(key, value, ())
            shaped[new_key] = new_value
            continue
        accesses: Item = {}
        for name, access in value.items():
            if not isinstance(access, dict):
                accesses[name] = access
                continue
            accesses[name] = dict(
                rename(k, v, ("accesses", name)) for k, v in access.items() if k not in RULE_SECRETS
            )
        shaped[key] = accesses
    return shaped


class ScreenPops(ListSection):
    """By name, in the order calls try them (creation order); the lookup's OAuth account
    by name. The pops themselves are run-time state."""

    name = "screen_pops"

    def __init__(self) -> None:
        self._absent: list[ScreenPopProfile] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        return [self.item(p, accounts) for p in await screen_pop_service.list_profiles(session)]

    @staticmethod
    def item(profile: ScreenPopProfile, accounts: AccountNames) -> Item:
        return ScreenPops.shape(screen_pop_service.profile_values(profile), accounts)

    @staticmethod
    def shape(values: Item, accounts: AccountNames) -> Item:
        """Stored values (account ids) in the document's shape (account names)."""

        def by_name(key: str, value: Any, _where: Path) -> tuple[str, Any]:
            if key == "oauth_account_id":
                return "oauth_account", _account_name(accounts, value)
            return key, value

        item = {name: values[name] for name in SCREEN_POP_FIELDS}
        item["lookup"] = _lookup_accounts(values["lookup"], by_name, RULE_SECRETS)
        return item

    def label(self, item: Item) -> str:
        return str(item["name"])

    @staticmethod
    def _with_account_ids(ctx: ImportContext, path: Path, raw: Item) -> Item:
        def by_id(key: str, value: Any, where: Path) -> tuple[str, Any]:
            if key == "oauth_account":
                return "oauth_account_id", ctx.account_id((*path, "lookup", *where, key), value)
            if key == "oauth_account_id":
                ctx.problem(
                    (*path, "lookup", *where, key),
                    "database ids differ between callbridges: refer by name (oauth_account: NAME)",
                )
            return key, value

        return {**raw, "lookup": _lookup_accounts(raw.get("lookup"), by_id)}

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        session, secrets = ctx.session, ctx.runtime.secrets
        accounts = {v: k for k, v in ctx.account_ids.items()}
        profiles = await screen_pop_service.list_profiles(session)
        existing = {profile.name.lower(): profile for profile in profiles}
        seen: list[str] = []
        for path, raw in self.items(ctx, self.name, data):
            known = len(ctx.problems)
            values = self._with_account_ids(ctx, path, raw)
            if len(ctx.problems) > known:
                continue
            wanted = validated(ctx, path, ScreenPopCreate, values)
            if wanted is None:
                continue
            lowered = wanted.name.lower()
            if lowered in seen:
                ctx.problem(
                    (*path, "name"), f"the screen-pop profile '{wanted.name}' is given twice"
                )
                continue
            seen.append(lowered)
            lookup = raw.get("lookup")
            if isinstance(lookup, dict):
                self.secrets_given(ctx, (*path, "lookup"), lookup, RULE_SECRETS)
            try:
                profile = existing.get(lowered)
                if profile is None:
                    await screen_pop_service.create_profile(session, wanted, ctx.actor, secrets)
                    continue
                dumped = wanted.model_dump(mode="json")
                changes = self.changed_fields(
                    self.shape(dumped, accounts), self.item(profile, accounts)
                )
                if changes:
                    update = ScreenPopUpdate.model_validate({n: dumped[n] for n in changes})
                    await screen_pop_service.update_profile(
                        session, profile, update, ctx.actor, secrets
                    )
            except CallbridgeError as exc:
                # The service names a custom lookup's fields after its kind
                # (lookup.custom.…), which is no level of the document.
                ctx.refused(path, exc, partial(document_loc, values=values))
        # Calls try the profiles in creation order, which an import does not change.
        stored = [p.name.lower() for p in profiles if p.name.lower() in seen]
        if stored != [name for name in seen if name in existing]:
            ctx.warn(
                (self.name,),
                "calls try screen-pop profiles in the order they were created; the existing "
                "profiles keep theirs: " + ", ".join(existing[n].name for n in stored),
            )
        for lowered, profile in existing.items():
            if lowered not in seen:
                self._absent.append(profile)
                if not ctx.prune:
                    ctx.kept.append((self.name, profile.name))

    async def remove_absent(self, ctx: ImportContext) -> None:
        for profile in self._absent:
            await screen_pop_service.delete_profile(ctx.session, profile, ctx.actor)


# ---- settings ----------------------------------------------------------------------------


class Settings(Section):
    """The settings an admin saved, by key (the others follow the process's environment)."""

    name = "settings"

    def __init__(self) -> None:
        self._absent: list[str] = []

    async def export(self, session: AsyncSession, accounts: AccountNames) -> Any:
        return await settings_service.saved_system_settings(session)

    def entries(self, exported: Any) -> dict[str, Any]:
        return dict(exported)

    async def apply(self, ctx: ImportContext, data: Any) -> None:
        path: Path = (self.name,)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            ctx.problem(path, "expected a mapping of setting: value")
            return
        wanted = validated(ctx, path, SystemSettingsUpdate, data)
        if wanted is None:
            return
        saved = await settings_service.saved_system_settings(ctx.session)
        values = wanted.model_dump(include=set(data))
        changes = {k: v for k, v in values.items() if k not in saved or saved[k] != v}
        if changes:
            await settings_service.update_system_settings(
                ctx.session,
                ctx.runtime.settings,
                SystemSettingsUpdate.model_validate(changes),
                ctx.actor,
            )
        for key in saved:
            if key not in data:
                self._absent.append(key)
                if not ctx.prune:
                    ctx.kept.append((self.name, key))

    async def remove_absent(self, ctx: ImportContext) -> None:
        if self._absent:
            await settings_service.reset_system_settings(ctx.session, self._absent, ctx.actor)


def sections() -> list[Section]:
    """A fresh set (sections keep what an import found absent). Accounts come first:
    rules and IVRs refer to them."""
    return [OAuthAccounts(), CallActions(), Ivrs(), HistoryLinks(), ScreenPops(), Settings()]
