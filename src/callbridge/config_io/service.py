"""Export the configuration as one document; import a document: the difference, applied
in the caller's transaction (all or nothing). Never commits; a dry run rolls back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.config_io import document
from callbridge.config_io.context import (
    DocumentInvalid,
    DocumentProblem,
    ImportContext,
    Note,
    Path,
    path_text,
)
from callbridge.config_io.sections import Section, sections
from callbridge.kit.text import NOT_UTF8_MESSAGE, clean_text
from callbridge.oauth_accounts import repository as oauth_repository
from callbridge.runtime import Runtime

FORMAT_VERSION = 1
VERSION_KEY = "version"


async def export_data(session: AsyncSession) -> dict[str, Any]:
    accounts = {
        a.id: a.name for a in (await oauth_repository.list_accounts(session, 100_000, 0))[0]
    }
    data: dict[str, Any] = {VERSION_KEY: FORMAT_VERSION}
    for section in sections():
        data[section.name] = await section.export(session, accounts)
    return data


async def export_document(session: AsyncSession) -> str:
    """Every configuration as YAML: names instead of ids, no secrets, no run-time state."""
    return document.dump(await export_data(session))


# ---- the difference ----------------------------------------------------------------------


class FieldChange(BaseModel):
    field: str = Field(description="Place within the object, e.g. responses[0].transfer.target")
    before: Any
    after: Any


class Entry(BaseModel):
    section: str
    name: str = Field(description="Name, key or 'event #order' of the object")
    fields: list[FieldChange] = Field(default_factory=list)


class ImportReport(BaseModel):
    dry_run: bool
    prune: bool
    added: list[Entry]
    changed: list[Entry]
    removed: list[Entry]
    kept: list[Entry] = Field(
        description="In callbridge, not in the document: kept (prune removes them)"
    )
    unchanged: int
    secrets_set: list[str] = Field(description="Secrets the document gave (values not shown)")
    warnings: list[Note]


def _leaves(before: Any, after: Any, where: tuple[str | int, ...]) -> list[FieldChange]:
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[FieldChange] = []
        for key in dict.fromkeys([*before, *after]):
            changes += _leaves(before.get(key), after.get(key), (*where, key))
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for index in range(max(len(before), len(after))):
            changes += _leaves(
                before[index] if index < len(before) else None,
                after[index] if index < len(after) else None,
                (*where, index),
            )
        return changes
    if before == after:
        return []
    return [FieldChange(field=path_text(where), before=before, after=after)]


def difference(
    before: dict[str, Any], after: dict[str, Any], all_sections: list[Section]
) -> tuple[list[Entry], list[Entry], list[Entry], int]:
    added: list[Entry] = []
    changed: list[Entry] = []
    removed: list[Entry] = []
    unchanged = 0
    for section in all_sections:
        old = section.entries(before[section.name])
        new = section.entries(after[section.name])
        for name, item in new.items():
            if name not in old:
                added.append(Entry(section=section.name, name=name))
            elif item != old[name]:
                fields = _leaves(old[name], item, ())
                changed.append(Entry(section=section.name, name=name, fields=fields))
            else:
                unchanged += 1
        removed += [Entry(section=section.name, name=n) for n in old if n not in new]
    return added, changed, removed, unchanged


# ---- import ------------------------------------------------------------------------------


def _check_top(data: Any, all_sections: list[Section]) -> list[DocumentProblem]:
    names = [s.name for s in all_sections]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return [
            DocumentProblem(
                (), f"expected a mapping with {VERSION_KEY} and the sections {', '.join(names)}"
            )
        ]
    problems = [
        DocumentProblem((str(key),), f"unknown section (known: {', '.join(names)})")
        for key in data
        if key != VERSION_KEY and key not in names
    ]
    version = data.get(VERSION_KEY, str(FORMAT_VERSION))
    if str(version) != str(FORMAT_VERSION):
        problems.append(
            DocumentProblem(
                (VERSION_KEY,), f"this callbridge reads version {FORMAT_VERSION} documents"
            )
        )
    return problems


def _unstorable(data: Any, where: Path = ()) -> list[DocumentProblem]:
    """Text no database can store (a NUL, written ``\\0`` or ``\\x00``; a lone surrogate,
    ``\\ud800``), by path, before anything is applied: found later, it would stop the
    import at a write without saying where. ``!!binary`` values are read as the text
    their bytes spell."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return [DocumentProblem(where, NOT_UTF8_MESSAGE)]
    if isinstance(data, str):
        try:
            clean_text(data)
        except ValueError as exc:
            return [DocumentProblem(where, str(exc))]
        return []
    problems: list[DocumentProblem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            try:
                clean_text(name)
            except ValueError as exc:
                shown = name.replace("\x00", "\\0").encode("utf-8", "backslashreplace")
                problems.append(DocumentProblem(where, f"the key '{shown.decode()}' {exc}"))
                continue
            problems += _unstorable(value, (*where, name))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            problems += _unstorable(value, (*where, index))
    return problems


AfterCommit = list[Callable[[], Awaitable[object]]]


async def import_document(
    session: AsyncSession,
    runtime: Runtime,
    text: str | bytes,
    actor: str,
    *,
    dry_run: bool,
    prune: bool,
) -> tuple[ImportReport, AfterCommit]:
    """Apply the document; ``DocumentInvalid`` (every problem, by path) leaves the caller's
    transaction to be rolled back. A dry run rolls back itself. The callables returned
    run once the caller has committed (revoking the tokens of removed OAuth accounts)."""
    try:
        data = document.parse(text)
    except document.DocumentSyntaxError as exc:
        raise DocumentInvalid([DocumentProblem((), str(exc))]) from None
    if data is None:  # an empty document (or a lone `null`) names no section
        data = {}
    all_sections = sections()
    problems = _unstorable(data) or _check_top(data, all_sections)
    if problems:
        raise DocumentInvalid(problems)
    before = await export_data(session)
    ctx = ImportContext(session=session, runtime=runtime, actor=actor, prune=prune)
    for section in all_sections:
        await section.apply(ctx, data.get(section.name))
    if prune and not ctx.problems:
        for section in reversed(all_sections):
            await section.remove_absent(ctx)
    if ctx.problems:
        await session.rollback()
        raise DocumentInvalid(ctx.problems)
    after = await export_data(session)
    added, changed, removed, unchanged = difference(before, after, all_sections)
    report = ImportReport(
        dry_run=dry_run,
        prune=prune,
        added=added,
        changed=changed,
        removed=removed,
        kept=[Entry(section=s, name=n) for s, n in ctx.kept],
        unchanged=unchanged,
        secrets_set=ctx.secrets_set,
        warnings=ctx.warnings,
    )
    if dry_run:
        await session.rollback()
        return report, []
    record_audit(
        session,
        actor,
        "config.import",
        "",
        added=len(added),
        changed=len(changed),
        removed=len(removed),
        prune=prune,
    )
    return report, ctx.after_commit
