"""The history worker: takes due history rows in batches with leases and writes their
Tasks to Salesforce (DESIGN §11.2, §11.4).

One batch of one link:

1. claim up to ``history_batch_rows`` due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
   a compare-and-set lease on both databases), so any number of workers share the work;
2. one Composite request asks everything the batch needs: which Tasks already exist for
   rows whose last send has an unknown outcome (``B_UniqueId__c IN (…)``), SOSL phone
   searches over the linked objects (several numbers per search, joined with ``OR``), and
   on retries SOQL on the phone fields for the common written forms;
3. each row gets its targets (priority order, ``on_multiple``, ``on_no_match``, retries);
4. the rows are marked "sending" and committed, then the missing Tasks are written with
   sObject Collections (≤ 200 records each, ≤ 5 per Composite request); each record's
   answer settles its row. A row whose outcome is unknown keeps its mark, and the next
   attempt asks Salesforce before creating anything: exactly one Task per (call, record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callbridge.calls.dispatcher import new_worker_id
from callbridge.calls.writes import read_session, write_connection, write_session
from callbridge.history import phones
from callbridge.history.reasons import salesforce_error, stored_reason
from callbridge.history.rows import WORKER_KEY
from callbridge.history.salesforce import (
    MAX_COLLECTION_RECORDS,
    RETRYABLE_RECORD_CODES,
    SHRINK_CODES,
    SalesforceFailure,
    Sub,
    SubAnswer,
    api_path,
    composite,
    error_code,
    error_message,
    pack,
    query_url,
    search_url,
)
from callbridge.history.service import (
    AGENT_VARIABLES,
    agent_mappings,
    compile_subject,
    mapping_value,
    task_description_of,
)
from callbridge.kit.time import utcnow
from callbridge.messages import Message, joined
from callbridge.models import CallVariable, HistoryLink, HistoryRow, OAuthAccount, User
from callbridge.models.history_link import DUE_STATES
from callbridge.outbound import get_outbound
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings, svaddr
from callbridge.templating.escaping import soql_string, sosl_term_wrapped

logger = logging.getLogger("callbridge.history")

WHO_OBJECTS = frozenset({"Contact", "Lead"})
DIRECTION_LABELS = {
    "ja": {"inbound": "着信", "outbound": "発信"},
    "en": {"inbound": "Inbound", "outbound": "Outbound"},
}
# A SOSL FIND over 4,000 characters loses its logical operators: stay well below.
MAX_FIND_CHARS = 3500
# A SOSL search returns at most this many records (all objects together).
SOSL_MAX_RESULTS = 2000
MAX_IN_VALUES = 200
DESCRIBE_TTL = 600.0
# Lookups asked ahead with the previous batch's writes are used this long.
PREFETCH_TTL = 30.0
MIN_BATCH = 10
# A Case looked up again was created after its row's "sending" mark; this much earlier
# covers a difference between Salesforce's clock and ours.
CASE_CLOCK_MARGIN = timedelta(days=1)


@dataclass
class BatchReport:
    rows: int = 0
    synced: int = 0
    failed: int = 0
    api_calls: int = 0


@dataclass
class _Env:
    server: str
    tz: ZoneInfo
    region: str
    owners: dict[str, str] = field(default_factory=dict)
    # The agent's latest notes and wrap-up (the call's NOTES / WRAPUP), by call.
    agent_notes: dict[int, dict[str, str]] = field(default_factory=dict)
    # The rows' caller numbers that are users' extensions: internal calls.
    extensions: set[str] = field(default_factory=set)


def _call_type(row: HistoryRow, env: _Env) -> str:
    """Task.CallType: ``Internal`` when the caller's number is a user's extension (the
    rule screen pops use for ``skip_internal``), else the call's direction."""
    if row.tel and row.tel in env.extensions:
        return "Internal"
    return "Outbound" if row.direction == "outbound" else "Inbound"


class HistoryWorker:
    """Runs in every process with the worker role; wakes on new rows (in-process) and
    polls for the rest (other processes' rows, retries, backoff ends, expired leases)."""

    def __init__(self, runtime: Runtime, *, owner: str | None = None) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.owner = owner or new_worker_id()
        self.poll_seconds = settings.history_poll_seconds
        self.gather_seconds = settings.history_gather_seconds
        self.max_batch = settings.history_batch_rows
        self.lease = timedelta(seconds=settings.lease_seconds)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self.batch_sizes: dict[int, int] = {}
        self._counted: set[int] = set()  # rows whose attempt is counted in this batch
        # Per link: the answers to the next batch's lookups, asked in the Composite request
        # that carried this batch's writes (when it was taken, answers by subrequest).
        self._prefetched: dict[int, tuple[float, dict[tuple[str, str], SubAnswer]]] = {}
        self.reports: list[BatchReport] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="history-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(20):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("history sync failed; retrying in %ss", self.poll_seconds)
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            if self._wake.is_set() and self.gather_seconds > 0 and not self._stopping:
                # New rows: gather what arrives shortly after, then send them together.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.gather_seconds):
                        await self._stop_event.wait()
            self._wake.clear()

    async def run_once(self) -> bool:
        """One batch for each enabled link with due rows; True when a batch was full."""
        async with read_session(self.runtime) as session:
            now = utcnow()
            links = list(
                await session.scalars(
                    select(HistoryLink).where(
                        HistoryLink.status == "enabled",
                        or_(HistoryLink.backoff_until.is_(None), HistoryLink.backoff_until <= now),
                    )
                )
            )
            session.expunge_all()
        full = False
        for link in links:
            if self._stopping:
                break
            size = self.batch_sizes.get(link.id, self.max_batch)
            rows = await self.claim(link, size)
            if not rows:
                continue
            report = await self.process(link, rows, size)
            self.reports.append(report)
            del self.reports[:-100]
            full = full or len(rows) >= size
        return full

    # ---- claiming ------------------------------------------------------------------

    async def claim(
        self, link: HistoryLink, limit: int, exclude: set[int] | None = None
    ) -> list[HistoryRow]:
        """Lease up to ``limit`` due rows of the link. On SQLite the process's write lock
        (which the dispatcher's hot path shares) is held for the lease's UPDATE only; the
        candidates are read before it and the rows after it."""
        runtime = self.runtime
        now = utcnow()
        # Rows whose lease expired, and this worker's own (taken ahead for the next
        # batch, whose lookups rode with the previous batch's writes).
        free = or_(
            HistoryRow.lease_expires_at.is_(None),
            HistoryRow.lease_expires_at < now,
            HistoryRow.lease_owner == self.owner,
        )
        due = or_(
            and_(HistoryRow.state.in_(DUE_STATES), HistoryRow.due_at <= now),
            and_(HistoryRow.state == "synced", HistoryRow.notes_dirty.is_(True)),
        )
        conditions = [HistoryRow.link_id == link.id, due, free]
        if exclude:
            conditions.append(HistoryRow.id.not_in(exclude))
        candidates = (
            select(HistoryRow.id)
            .where(*conditions)
            .order_by(HistoryRow.due_at, HistoryRow.id)
            .limit(limit)
        )
        lease = update(HistoryRow).values(lease_owner=self.owner, lease_expires_at=now + self.lease)
        if runtime.database_kind == "postgresql":
            async with write_session(runtime) as session:
                ids = list(await session.scalars(candidates.with_for_update(skip_locked=True)))
                if not ids:
                    return []
                await session.execute(
                    lease.where(HistoryRow.id.in_(ids), free).execution_options(
                        synchronize_session=False
                    )
                )
        else:
            async with read_session(runtime) as session:
                ids = list(await session.scalars(candidates))
            if not ids:
                return []
            async with write_connection(runtime) as connection:
                # Still due and free: another process may have taken some meanwhile.
                await connection.execute(lease.where(HistoryRow.id.in_(ids), due, free))
        async with read_session(runtime) as session:
            rows = list(
                await session.scalars(
                    select(HistoryRow)
                    .where(HistoryRow.id.in_(ids), HistoryRow.lease_owner == self.owner)
                    .order_by(HistoryRow.id)
                )
            )
            session.expunge_all()
            return rows

    # ---- one batch ------------------------------------------------------------------

    async def process(
        self, link: HistoryLink, rows: list[HistoryRow], size: int | None = None
    ) -> BatchReport:
        """One batch; ``size`` is the batch size it was taken with (a full batch means a
        backlog: the next one is taken ahead)."""
        report = BatchReport(rows=len(rows))
        self._counted = set()
        try:
            await self._process(link, rows, report, size)
        except SalesforceFailure as failure:
            await self._back_off(link, rows, failure)
        return report

    async def _process(
        self, link: HistoryLink, rows: list[HistoryRow], report: BatchReport, size: int | None
    ) -> None:
        runtime = self.runtime
        batch_ids = {r.id for r in rows}
        full = size is not None and len(rows) >= size
        outbound = get_outbound(runtime)
        async with read_session(runtime) as session:
            account = await session.get(OAuthAccount, link.oauth_account_id)
            settings = await get_system_settings(session, runtime.settings)
            env = _Env(
                server=svaddr(settings.public_url, runtime.settings).rstrip("/"),
                tz=ZoneInfo(settings.timezone),
                region=runtime.settings.history_phone_region,
            )
            if link.owner_from_agent:
                agents = {r.agent_id_to or r.agent_id_from for r in rows} - {None}
                if agents:
                    users = await session.execute(
                        select(User.agent_id, User.salesforce_user_id).where(
                            User.agent_id.in_(agents), User.salesforce_user_id.is_not(None)
                        )
                    )
                    env.owners = {str(a): str(s) for a, s in users}
            callers = {r.tel for r in rows if r.tel}
            if callers:
                extensions = await session.scalars(
                    select(User.extension).where(User.extension.in_(callers))
                )
                env.extensions = {str(extension) for extension in extensions}
            saved = await session.execute(
                select(CallVariable.call_pk, CallVariable.name, CallVariable.value).where(
                    CallVariable.call_pk.in_({r.call_pk for r in rows}),
                    CallVariable.name.in_(AGENT_VARIABLES),
                )
            )
            for call_pk, variable, text in saved:
                env.agent_notes.setdefault(call_pk, {})[variable] = text
            account_name = account.name if account is not None else ""
        if account is None:
            raise SalesforceFailure(
                "auth", Message("history_account_deleted", id=link.oauth_account_id)
            )
        base = await outbound.instance_url(link.oauth_account_id)
        if not base:
            raise SalesforceFailure(
                "auth", Message("history_account_not_connected", name=account_name)
            )
        timeout = max(5.0, self.lease.total_seconds() / 3)

        async def send(subs: list[Sub]) -> list[SubAnswer]:
            answers: list[SubAnswer] = []
            for group in pack(subs):
                answers += await composite(outbound, link.oauth_account_id, base, group, timeout)
                report.api_calls += 1
            return answers

        now = utcnow()
        notes_rows = [r for r in rows if r.state == "synced"]
        rows = [r for r in rows if r.state != "synced"]
        # -- 1. lookups ---------------------------------------------------------------
        unknown = [r for r in rows if r.send_started_at is not None]
        to_search = [r for r in rows if r.targets is None]
        objects = list(link.objects)
        phone_fields = await self._phone_fields(link, objects, send) if to_search else {}
        subs, kinds, numbers = _lookup_subs(link, rows, env.region, phone_fields)
        existing: list[dict[str, Any]] = []
        cases: list[dict[str, Any]] = []
        found: dict[str, dict[str, dict[str, Any]]] = {}  # object -> id -> record
        lookup_errors: list[str] = []
        unknown_errors: list[str] = []
        # (number key, object) whose matches are more than one search returns.
        saturated: set[tuple[str, str]] = set()
        known = self._prefetched.pop(link.id, None)
        while subs:
            answers = await self._send_known(subs, send, known)
            known = None
            # A search that may have been cut at Salesforce's 2,000 results is asked again
            # in parts, and a query's further batches are fetched: no match is lost.
            more: list[Sub] = []
            more_kinds: list[tuple[str, Any]] = []
            for (kind, info), answer in zip(kinds, answers, strict=True):
                if answer.status >= 400:
                    text = error_message(answer.body) or f"HTTP {answer.status}"
                    if kind in ("existing", "cases"):
                        unknown_errors.append(text)
                    else:
                        lookup_errors.append(text)
                    continue
                body = answer.body if isinstance(answer.body, dict) else {}
                next_url = body.get("nextRecordsUrl") if body.get("done") is False else None
                if next_url:
                    more.append(Sub("GET", str(next_url)))
                    more_kinds.append((kind, info))
                if kind == "existing":
                    existing += list(body.get("records") or [])
                elif kind == "cases":
                    cases += list(body.get("records") or [])
                elif kind == "search":
                    records = list(body.get("searchRecords") or [])
                    for record in records:
                        type_ = record.get("attributes", {}).get("type", "")
                        found.setdefault(type_, {})[record["Id"]] = record
                    if len(records) >= SOSL_MAX_RESULTS:
                        parts, filled = _split_search(numbers, info, objects, phone_fields)
                        saturated |= filled
                        for sub, part in parts:
                            more.append(sub)
                            more_kinds.append(("search", part))
                else:
                    for record in body.get("records") or []:
                        found.setdefault(info, {})[record["Id"]] = record
            subs, kinds = more, more_kinds
        if unknown_errors and unknown:
            # Salesforce could not say what exists: nothing is sent again for these rows
            # (their mark stays; "retry now" asks again once the cause is fixed).
            message = "; ".join(dict.fromkeys(unknown_errors))
            await self._settle_failed(unknown, Message("history_search_failed", salesforce=message))
            report.failed += len(unknown)
            rows = [r for r in rows if r not in unknown]
            to_search = [r for r in to_search if r not in unknown]
            unknown = []
        if lookup_errors and to_search:
            # The search itself is broken (an object or field the org lacks): rows fail
            # with Salesforce's message; the configuration check says what to fix.
            message = "; ".join(dict.fromkeys(lookup_errors))
            await self._settle_failed(
                to_search, Message("history_search_failed", salesforce=message)
            )
            report.failed += len(to_search)
            rows = [r for r in rows if r not in to_search]
            to_search = []
        # -- 2. matching --------------------------------------------------------------
        by_key: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for object_name, found_records in found.items():
            for record in found_records.values():
                for name in phone_fields.get(object_name) or []:
                    value = record.get(name)
                    key = phones.match_key(str(value), env.region) if value else None
                    if key is not None:
                        by_key.setdefault(key, []).append((object_name, record))
        later: list[HistoryRow] = []
        skipped: list[HistoryRow] = []
        too_many: dict[str, list[HistoryRow]] = {}
        for row in to_search:
            row.retry_count += 1
            tel = (row.tel or "").strip()
            key = phones.match_key(tel, env.region)
            matched = _dedupe(by_key.get(key, []) if key else [])
            targets, reason = _choose(link, objects, matched)
            if targets and link.on_multiple == "all" and (key, targets[0]["object"]) in saturated:
                # Not every match could be listed: no Task rather than some of them.
                too_many.setdefault(targets[0]["object"], []).append(row)
                continue
            searched = bool(phones.search_forms(tel, env.region))
            if targets is None and searched and row.retry_count <= link.search_retries:
                later.append(row)
                continue
            if targets is None:
                if link.on_no_match == "skip":
                    _set_reason(row, Message("history_no_match.skip"))
                    skipped.append(row)
                    continue
                if link.on_no_match == "fallback":
                    targets = [_fallback_target(link)]
                    reason = Message("history_no_match.fallback")
                else:
                    targets = []
                    reason = Message("history_no_match.unlinked")
            row.targets = targets
            _set_reason(row, reason)
        await self._settle_search(link, later, skipped, now)
        for object_name, failing in too_many.items():
            await self._settle_failed(
                failing,
                Message("history_too_many_matches", count=SOSL_MAX_RESULTS, object=object_name),
            )
            report.failed += len(failing)
        failed_now = {id(r) for group in too_many.values() for r in group}
        rows = [r for r in rows if r not in later and r not in skipped and id(r) not in failed_now]
        # -- 3. what exists already (unknown outcomes) --------------------------------
        _adopt_cases([r for r in rows if _cases_wanted(link, r)], cases)
        for row in rows:
            if row.send_started_at is None:
                continue
            for target in row.targets or []:
                if target.get("task_id"):
                    continue
                for task in existing:
                    if _same_task(row, target, task):
                        target["task_id"] = task["Id"]
                        break
            if not row.targets and not row.task_ids:
                # "unlinked": a Task with no WhoId/WhatId is ours when its call matches.
                for task in existing:
                    if (
                        _key_of(row) == task.get("B_UniqueId__c")
                        and task.get("CallObject") == row.call_id
                    ):
                        row.task_ids = [task["Id"]]
                        break
        # -- 4. cases (case_and_task) ---------------------------------------------------
        retry_later: dict[int, Message] = {}
        if link.activity == "case_and_task":
            try:
                retry_later = await self._create_cases(link, rows, send)
            except SalesforceFailure as failure:
                if failure.kind == "unknown":
                    await self._unknown(link, rows, failure.said)
                    return
                raise
        # -- 5. tasks -------------------------------------------------------------------
        writes: list[tuple[HistoryRow, dict[str, Any] | None, dict[str, Any]]] = []
        for row in rows:
            if id(row) in retry_later:
                continue  # its Cases' outcome is unknown: asked again next time
            if row.targets == [] and not row.task_ids:
                writes.append((row, None, self._task_record(link, row, None, env)))
            for target in row.targets or []:
                if not target.get("task_id") and not target.get("error"):
                    writes.append((row, target, self._task_record(link, row, target, env)))
        sending = {id(r) for r, _t, _rec in writes}
        await self._mark_sending(rows, sending)
        task_subs = [
            Sub(
                "POST",
                api_path("/composite/sobjects"),
                {"allOrNone": False, "records": [rec for _r, _t, rec in chunk]},
            )
            for chunk in _chunks(writes, MAX_COLLECTION_RECORDS)
        ]
        for row in notes_rows:
            ids = [t for t in row.task_ids if t]
            if ids:
                # What the agent saved after the Task was made: an update of its fields.
                agent_fields = self._agent_fields(link, row, env)
                task_subs.append(
                    Sub(
                        "PATCH",
                        api_path("/composite/sobjects"),
                        {
                            "allOrNone": False,
                            "records": [
                                {"attributes": {"type": "Task"}, "id": i, **agent_fields}
                                for i in ids
                            ],
                        },
                    )
                )
        problems: dict[int, Message] = {}
        shrink = False
        if task_subs:
            # With a backlog, the next batch is taken now and its lookups ride in the
            # Composite request of these writes (room permitting): one API call per batch.
            ahead = await self._ahead(link, size or 0, batch_ids, env, phone_fields) if full else []
            try:
                answers = await send(task_subs + ahead)
            except SalesforceFailure as failure:
                if failure.kind == "unknown":
                    await self._unknown(link, rows, failure.said)
                    return
                raise
            if ahead:
                self._prefetched[link.id] = (
                    time.monotonic(),
                    {
                        (sub.method, sub.url): answer
                        for sub, answer in zip(ahead, answers[len(task_subs) :], strict=True)
                    },
                )
                answers = answers[: len(task_subs)]
            chunks = list(_chunks(writes, MAX_COLLECTION_RECORDS))
            for chunk, answer in zip(chunks, answers[: len(chunks)], strict=True):
                body = answer.body
                if answer.status >= 400 or not isinstance(body, list) or len(body) != len(chunk):
                    if answer.status >= 400:
                        said = salesforce_error(error_message(body) or f"HTTP {answer.status}")
                    else:
                        said = Message(
                            "history_result_count",
                            count=len(body) if isinstance(body, list) else 0,
                            records=len(chunk),
                        )
                    for row, _t, _rec in chunk:
                        # The outcome is unknown: the mark stays, the next try asks first.
                        retry_later[id(row)] = said
                    continue
                for (row, target, _rec), result in zip(chunk, body, strict=True):
                    if result.get("success"):
                        if target is None:
                            row.task_ids = [result["id"]]
                        else:
                            target["task_id"] = result["id"]
                        continue
                    errors = result.get("errors") or []
                    code = error_code(errors)
                    said = salesforce_error(error_message(errors))
                    if code in SHRINK_CODES:
                        shrink = True
                    if code in RETRYABLE_RECORD_CODES:
                        retry_later[id(row)] = said
                    else:
                        problems[id(row)] = said
            for row, answer in zip(notes_rows, answers[len(chunks) :], strict=False):
                if answer.status < 400 and all(
                    isinstance(r, dict) and r.get("success") for r in (answer.body or [])
                ):
                    row.notes_dirty = False
                else:
                    _set_reason(
                        row,
                        Message(
                            "history_notes_failed",
                            salesforce=error_message(answer.body) or str(answer.body),
                        ),
                    )
        report.synced, report.failed = await self._settle_sent(
            link, rows, notes_rows, problems, retry_later
        )
        self._adapt(link, shrink or bool(retry_later))

    # ---- helpers ----------------------------------------------------------------------

    async def _send_known(
        self,
        subs: list[Sub],
        send: Any,
        known: tuple[float, dict[tuple[str, str], SubAnswer]] | None,
    ) -> list[SubAnswer]:
        """Lookups whose answers came with the previous batch's writes are not asked again
        (answers older than a few seconds are not used)."""
        cached = known[1] if known and time.monotonic() - known[0] < PREFETCH_TTL else {}
        missing = [sub for sub in subs if (sub.method, sub.url) not in cached]
        fetched = iter(await send(missing) if missing else [])
        return [
            cached[(sub.method, sub.url)] if (sub.method, sub.url) in cached else next(fetched)
            for sub in subs
        ]

    async def _ahead(
        self,
        link: HistoryLink,
        size: int,
        batch_ids: set[int],
        env: _Env,
        phone_fields: dict[str, list[str]],
    ) -> list[Sub]:
        """Take the next batch now (this worker's lease) and return its lookups that are
        certain not to need a describe first."""
        taken = await self.claim(link, size, exclude=batch_ids)
        rows = [r for r in taken if r.state != "synced"]
        if not rows:
            return []
        if any(r.targets is None for r in rows):
            cache = self.runtime.extras.get("history.phone_fields", {})
            fields: dict[str, list[str]] = {}
            for obj in link.objects:
                hit = cache.get((link.oauth_account_id, obj["api_name"]))
                if hit is None or time.monotonic() - hit[0] >= DESCRIBE_TTL - PREFETCH_TTL:
                    return []
                fields[obj["api_name"]] = hit[1]
            phone_fields = fields
        subs, _kinds, _numbers = _lookup_subs(link, rows, env.region, phone_fields)
        return subs

    async def _phone_fields(
        self, link: HistoryLink, objects: list[dict[str, Any]], send: Any
    ) -> dict[str, list[str]]:
        cache: dict[tuple[int, str], tuple[float, list[str]]] = self.runtime.extras.setdefault(
            "history.phone_fields", {}
        )
        result: dict[str, list[str]] = {}
        missing: list[str] = []
        for obj in objects:
            hit = cache.get((link.oauth_account_id, obj["api_name"]))
            if hit is not None and time.monotonic() - hit[0] < DESCRIBE_TTL:
                result[obj["api_name"]] = hit[1]
            else:
                missing.append(obj["api_name"])
        if missing:
            subs = [
                Sub("GET", api_path(f"/sobjects/{name}/describe"), heavy=False) for name in missing
            ]
            answers = await send(subs)
            for name, answer in zip(missing, answers, strict=True):
                fields: list[str] = []
                if answer.status < 400 and isinstance(answer.body, dict):
                    fields = [
                        str(f["name"])
                        for f in answer.body.get("fields", [])
                        if f.get("type") == "phone"
                    ]
                else:
                    logger.warning("history link %s: %s cannot be described", link.id, name)
                cache[(link.oauth_account_id, name)] = (time.monotonic(), fields)
                result[name] = fields
        return result

    @staticmethod
    def _values(link: HistoryLink, row: HistoryRow, env: _Env) -> tuple[dict[str, str], Any]:
        """The row's variables (the agent's latest notes and wrap-up included) and the
        template expansion over them."""
        values = dict(row.values or {})
        labels = DIRECTION_LABELS.get(link.language, DIRECTION_LABELS["ja"])
        values["DIRECTION_LABEL"] = labels.get(row.direction, labels["inbound"])
        values.update(env.agent_notes.get(row.call_pk, {}))
        values.setdefault("NOTES", row.description or "")

        def expand(text: str) -> str:
            return str(
                compile_subject(text).expand(
                    values, now=row.started_at, tz=env.tz, region=env.region
                )
            )

        return values, expand

    def _agent_fields(self, link: HistoryLink, row: HistoryRow, env: _Env) -> dict[str, Any]:
        """The Task fields the agent's notes and wrap-up set: Description and the mapped
        fields that use ``NOTES`` or ``WRAPUP`` (DESIGN §12.4)."""
        values, expand = self._values(link, row, env)
        fields: dict[str, Any] = {
            "Description": task_description_of(
                link, row.description, env.agent_notes.get(row.call_pk)
            )
        }
        for mapping in agent_mappings(link):
            fields[mapping["field"]] = mapping_value(mapping, values, expand)
        return fields

    def _task_record(
        self, link: HistoryLink, row: HistoryRow, target: dict[str, Any] | None, env: _Env
    ) -> dict[str, Any]:
        values, expand = self._values(link, row, env)
        local_start = row.started_at.astimezone(env.tz)

        record: dict[str, Any] = {
            "attributes": {"type": "Task"},
            "Subject": expand(link.subject_template)[:255],
            "Status": "Completed",
            "Priority": "Normal",
            "TaskSubtype": "Call",
            "ActivityDate": local_start.date().isoformat(),
            "CallType": _call_type(row, env),
            "CallDurationInSeconds": row.duration_seconds,
            "CallObject": row.call_id,
            "B_ServerIP__c": env.server,
            "B_UniqueId__c": _key_of(row),
            "B_PhoneFrom__c": row.phone_from,
            "B_PhoneTo__c": row.phone_to,
            "B_CallStartDateTime__c": _iso(row.started_at),
            "B_CallEndDateTime__c": _iso(row.ended_at),
            "B_AgentIdFrom__c": row.agent_id_from,
            "B_AgentIdTo__c": row.agent_id_to,
            "B_NaisenFrom__c": row.naisen_from,
            "B_NaisenTo__c": row.naisen_to,
        }
        description = task_description_of(link, row.description, env.agent_notes.get(row.call_pk))
        if description:
            record["Description"] = description
        if target is not None:
            if target.get("case_id"):
                record["WhatId"] = target["case_id"]
                if target["object"] == "Contact":
                    record["WhoId"] = target["id"]
            elif target["object"] in WHO_OBJECTS:
                record["WhoId"] = target["id"]
            else:
                record["WhatId"] = target["id"]
        agent = row.agent_id_to or row.agent_id_from
        if link.owner_from_agent and agent and agent in env.owners:
            record["OwnerId"] = env.owners[agent]
        for mapping in link.field_mappings or []:
            record[mapping["field"]] = mapping_value(mapping, values, expand)
        return record

    async def _create_cases(
        self, link: HistoryLink, rows: list[HistoryRow], send: Any
    ) -> dict[int, Message]:
        """The Cases of ``case_and_task`` rows that have none yet. The rows' targets and
        "sending" mark are committed first: if the answer is lost (or the process dies
        before storing it), the next attempt finds the Cases Salesforce saved before
        creating any. Returns the rows whose Cases' outcome is unknown."""
        pending = [(row, target) for row in rows for target in _cases_needed(row)]
        if not pending:
            return {}
        case_rows = list({id(r): r for r, _t in pending}.values())
        await self._mark_sending(case_rows, {id(r) for r in case_rows})
        subs = []
        for chunk in _chunks(pending, MAX_COLLECTION_RECORDS):
            records = []
            for row, target in chunk:
                case: dict[str, Any] = {
                    "attributes": {"type": "Case"},
                    "Subject": _case_subject(row),
                    "Origin": "Phone",
                }
                if target["object"] == "Contact":
                    case["ContactId"] = target["id"]
                elif target["object"] == "Account":
                    case["AccountId"] = target["id"]
                records.append(case)
            subs.append(
                Sub(
                    "POST",
                    api_path("/composite/sobjects"),
                    {"allOrNone": False, "records": records},
                )
            )
        answers = await send(subs)
        unknown: dict[int, Message] = {}
        for chunk, answer in zip(_chunks(pending, MAX_COLLECTION_RECORDS), answers, strict=True):
            body = answer.body if isinstance(answer.body, list) else []
            if answer.status < 400 and len(body) != len(chunk):
                # Fewer (or more) results than records: which Cases exist is unknown.
                said = Message("history_result_count", count=len(body), records=len(chunk))
                for row, _target in chunk:
                    unknown[id(row)] = said
                continue
            for index, (_row, target) in enumerate(chunk):
                result = body[index] if index < len(body) else None
                if isinstance(result, dict) and result.get("success"):
                    target["case_id"] = result["id"]
                else:
                    errors = result.get("errors") if isinstance(result, dict) else answer.body
                    text = error_message(errors)
                    said = (
                        Message("history_case_error", salesforce=text)
                        if text
                        else Message("history_case_not_created")
                    )
                    target["error"] = said.to_json()
        # The case ids are kept before the Tasks are sent: a retry reuses them.
        changes: list[tuple[int, dict[str, Any]]] = []
        async with write_connection(self.runtime) as session:
            for row in case_rows:
                changes.append((row.id, dict(targets=_plain(row.targets))))
            await self._write_rows(session, changes)
        return unknown

    async def _mark_sending(self, rows: list[HistoryRow], sending: set[int]) -> None:
        """Targets and the "sending" mark are committed before anything is sent (an
        attempt is counted once, when its first write is marked)."""
        now = utcnow()
        changes: list[tuple[int, dict[str, Any]]] = []
        async with write_connection(self.runtime) as session:
            for row in rows:
                values: dict[str, Any] = {
                    "targets": _plain(row.targets),
                    "task_ids": _task_ids(row),
                    "retry_count": row.retry_count,
                    "reason": row.reason,
                    "reason_msg": row.reason_msg,
                    "lease_expires_at": now + self.lease,
                }
                if id(row) in sending:
                    if id(row) not in self._counted:
                        self._counted.add(id(row))
                        row.attempts += 1
                    row.send_started_at = row.send_started_at or now
                    values["send_started_at"] = row.send_started_at
                    values["attempts"] = row.attempts
                changes.append((row.id, values))
            await self._write_rows(session, changes)

    async def _settle_sent(
        self,
        link: HistoryLink,
        rows: list[HistoryRow],
        notes_rows: list[HistoryRow],
        problems: dict[int, Message],
        retry_later: dict[int, Message],
    ) -> tuple[int, int]:
        now = utcnow()
        synced = failed = 0
        changes: list[tuple[int, dict[str, Any]]] = []
        async with write_connection(self.runtime) as session:
            for row in rows:
                task_ids = _task_ids(row)
                values: dict[str, Any] = {
                    "targets": _plain(row.targets),
                    "task_ids": task_ids,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "next_retry_at": None,
                }
                target_errors = [_said(t["error"]) for t in row.targets or [] if t.get("error")]
                if id(row) in retry_later:
                    values.update(
                        state="waiting",
                        due_at=now + timedelta(seconds=5),
                        **stored_reason(retry_later[id(row)]),
                    )
                elif id(row) in problems or target_errors:
                    said = problems.get(id(row)) or joined(*target_errors)
                    values.update(
                        state="failed",
                        send_started_at=None,
                        processed_at=now,
                        **stored_reason(said),
                    )
                    for target in row.targets or []:
                        target.pop("error", None)
                    values["targets"] = _plain(row.targets)
                    failed += 1
                else:
                    values.update(
                        state="synced",
                        reason=row.reason,
                        reason_msg=row.reason_msg,
                        send_started_at=None,
                        processed_at=now,
                    )
                    synced += 1
                changes.append((row.id, values))
            for row in notes_rows:
                changes.append(
                    (
                        row.id,
                        dict(
                            notes_dirty=row.notes_dirty,
                            reason=row.reason,
                            reason_msg=row.reason_msg,
                            lease_owner=None,
                            lease_expires_at=None,
                        ),
                    )
                )
            await session.execute(
                update(HistoryLink)
                .where(HistoryLink.id == link.id)
                .values(
                    backoff_until=None,
                    backoff_count=0,
                    backoff_reason=None,
                    backoff_reason_msg=None,
                )
            )
            await self._write_rows(session, changes)
        return synced, failed

    async def _settle_search(
        self, link: HistoryLink, later: list[HistoryRow], skipped: list[HistoryRow], now: datetime
    ) -> None:
        next_at = now + timedelta(minutes=link.retry_minutes)
        waiting = stored_reason(Message("history_searching"))
        changes = [
            (
                r.id,
                _released(state="searching", next_retry_at=next_at, due_at=next_at, **waiting),
            )
            for r in later
        ] + [
            (
                r.id,
                _released(
                    state="no_match",
                    next_retry_at=None,
                    processed_at=now,
                    reason=r.reason,
                    reason_msg=r.reason_msg,
                ),
            )
            for r in skipped
        ]
        for (_id, values), row in zip(changes, [*later, *skipped], strict=True):
            values["retry_count"] = row.retry_count
        await self._save(changes)

    async def _settle_failed(self, rows: list[HistoryRow], said: Message) -> None:
        now = utcnow()
        reason = stored_reason(said)
        await self._save(
            [(r.id, _released(state="failed", processed_at=now, **reason)) for r in rows]
        )

    async def _save(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        if changes:
            async with write_connection(self.runtime) as session:
                await self._write_rows(session, changes)

    async def _unknown(self, link: HistoryLink, rows: list[HistoryRow], said: Message) -> None:
        """The write's outcome is unknown: rows stay due with their "sending" mark (the
        next attempt asks Salesforce which Tasks exist first), and the link backs off."""
        await self._back_off(
            link,
            rows,
            SalesforceFailure("unknown", Message("history_outcome_unknown", reason=said)),
        )

    async def _back_off(
        self, link: HistoryLink, rows: list[HistoryRow], failure: SalesforceFailure
    ) -> None:
        now = utcnow()
        count = link.backoff_count + 1
        if failure.kind == "auth":
            delay = 30.0
            said = Message("history_backoff.auth", reason=failure.said)
        else:
            delay = min(300.0, 2.0 ** min(count, 9))
            said = Message("history_backoff.unavailable", reason=failure.said)
        reason = stored_reason(said)
        until = now + timedelta(seconds=delay)
        changes: list[tuple[int, dict[str, Any]]] = []
        async with write_connection(self.runtime) as session:
            await session.execute(
                update(HistoryLink)
                .where(HistoryLink.id == link.id)
                .values(
                    backoff_until=until,
                    backoff_count=count,
                    backoff_reason=reason["reason"],
                    backoff_reason_msg=reason["reason_msg"],
                )
            )
            for row in rows:
                values: dict[str, Any] = {
                    **reason,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "due_at": until,
                }
                if row.state != "synced":
                    values["state"] = "waiting"
                changes.append((row.id, values))
            await self._write_rows(session, changes)
        logger.warning("history link %s backs off for %.0fs: %s", link.id, delay, failure.message)

    async def _write_rows(
        self, session: AsyncSession | AsyncConnection, changes: list[tuple[int, dict[str, Any]]]
    ) -> None:
        """Each row's new values, only while this worker still holds its lease: one
        statement per set of columns, executed for many rows at once."""
        table = HistoryRow.__table__
        assert isinstance(table, Table)
        groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
        for row_id, values in changes:
            groups.setdefault(tuple(sorted(values)), []).append((row_id, values))
        for names, items in groups.items():
            statement = (
                table.update()
                .where(table.c.id == bindparam("b_id"), table.c.lease_owner == self.owner)
                .values({name: bindparam(f"b_{name}") for name in names})
            )
            await session.execute(
                statement,
                [
                    {"b_id": row_id, **{f"b_{k}": v for k, v in values.items()}}
                    for row_id, values in items
                ],
            )

    def _adapt(self, link: HistoryLink, shrink: bool) -> None:
        size = self.batch_sizes.get(link.id, self.max_batch)
        if shrink:
            self.batch_sizes[link.id] = max(MIN_BATCH, size // 2)
        elif size < self.max_batch:
            self.batch_sizes[link.id] = min(self.max_batch, size * 2)


# ---- pure helpers -------------------------------------------------------------------


def _lookup_subs(
    link: HistoryLink, rows: list[HistoryRow], region: str, phone_fields: dict[str, list[str]]
) -> tuple[list[Sub], list[tuple[str, Any]], dict[str, list[str]]]:
    """What a batch asks before writing: the Tasks (and Cases) that exist for rows whose
    last send has an unknown outcome, the SOSL phone searches, and on retries SOQL on the
    phone fields. Returns the subrequests, what each is, and the numbers searched."""
    unknown = [r for r in rows if r.send_started_at is not None]
    to_search = [r for r in rows if r.targets is None]
    objects = list(link.objects)
    subs: list[Sub] = []
    kinds: list[tuple[str, Any]] = []
    for chunk in _chunks(sorted({_key_of(r) for r in unknown}), MAX_IN_VALUES):
        values = ",".join(f"'{soql_string(v)}'" for v in chunk)
        subs.append(
            Sub(
                "GET",
                query_url(
                    "SELECT Id, B_UniqueId__c, CallObject, WhoId, WhatId FROM Task "  # noqa: S608
                    f"WHERE B_UniqueId__c IN ({values})"
                ),
            )
        )
        kinds.append(("existing", None))
    # Cases (case_and_task) whose create may have been saved by Salesforce: found by
    # their subject and the record they were made for (a Case has no external id of
    # callbridge's, and SOQL sees a new record at once).
    case_rows = [r for r in unknown if _cases_wanted(link, r)]
    if case_rows:
        since = min(r.send_started_at for r in case_rows if r.send_started_at is not None)
        created = _soql_datetime(since - CASE_CLOCK_MARGIN)
        subjects = sorted({_case_subject(r) for r in case_rows})
        for chunk in _chunks(subjects, MAX_IN_VALUES):
            values = ",".join(f"'{soql_string(v)}'" for v in chunk)
            subs.append(
                Sub(
                    "GET",
                    query_url(
                        "SELECT Id, Subject, ContactId, AccountId FROM Case "  # noqa: S608
                        f"WHERE Subject IN ({values}) AND CreatedDate >= {created}"
                    ),
                )
            )
            kinds.append(("cases", None))
    numbers: dict[str, list[str]] = {}
    retry_numbers: dict[str, list[str]] = {}
    for row in to_search:
        tel = (row.tel or "").strip()
        key = phones.match_key(tel, region)
        forms = phones.search_forms(tel, region)
        if key is None or not forms:
            # Nothing to search (no number, or one too short, such as an extension): a
            # FIND without a term is refused, and would fail the whole batch's search.
            continue
        numbers.setdefault(key, forms)
        if row.retry_count >= 1:
            retry_numbers.setdefault(key, phones.written_forms(tel, region))
    returning = _returning(objects, phone_fields)
    if returning:
        for keys in _find_chunks(numbers):
            subs.append(_search(numbers, keys, returning))
            kinds.append(("search", (keys, None)))
        forms = [f for key in retry_numbers for f in retry_numbers[key]]
        for obj in objects:
            fields = phone_fields.get(obj["api_name"]) or []
            if not fields or not forms:
                continue
            for chunk in _chunks(forms, MAX_IN_VALUES):
                values = ",".join(f"'{soql_string(v)}'" for v in chunk)
                where = " OR ".join(f"{f} IN ({values})" for f in fields)
                if obj["api_name"] == "Lead":
                    where = f"({where}) AND IsConverted = false"
                select_list = ", ".join(["Id", "LastModifiedDate", *fields])
                subs.append(
                    Sub(
                        "GET",
                        query_url(
                            f"SELECT {select_list} FROM {obj['api_name']} WHERE {where}"  # noqa: S608
                        ),
                    )
                )
                kinds.append(("query", obj["api_name"]))
    return subs, kinds, numbers


def _set_reason(row: HistoryRow, said: Message | None) -> None:
    stored = stored_reason(said)
    row.reason, row.reason_msg = stored["reason"], stored["reason_msg"]


def _said(error: Any) -> Message:
    """A target's stored error (a message's JSON; text from before reasons had ids)."""
    if isinstance(error, dict):
        try:
            return Message.from_json(error)
        except (KeyError, ValueError, TypeError):
            pass
    return Message("text", text=str(error))


def _released(**values: Any) -> dict[str, Any]:
    """A row's new values, handing its lease back."""
    return {**values, "lease_owner": None, "lease_expires_at": None}


def _case_subject(row: HistoryRow) -> str:
    """The Subject of the Case made for a call (case_and_task); also how a Case whose
    create had an unknown outcome is found again."""
    return f"{row.call_id} {row.tel or ''}".strip()


def _cases_needed(row: HistoryRow) -> list[dict[str, Any]]:
    """The row's targets that still need a Case (a Lead gets the Task only)."""
    return [
        t
        for t in row.targets or []
        if not t.get("task_id") and not t.get("case_id") and t["object"] != "Lead"
    ]


def _cases_wanted(link: HistoryLink, row: HistoryRow) -> bool:
    return (
        link.activity == "case_and_task"
        and row.send_started_at is not None
        and bool(_cases_needed(row))
    )


def _case_relation(object_name: str | None, record_id: str | None) -> tuple[str, str]:
    return (object_name or "", (record_id or "")[:15])


def _adopt_cases(rows: list[HistoryRow], cases: list[dict[str, Any]]) -> None:
    """Targets take the Cases Salesforce already saved for them (same subject, same
    Contact or Account; one Case per target), so they are not created twice."""
    pool: dict[tuple[str, tuple[str, str]], list[str]] = {}
    for case in cases:
        if case.get("ContactId"):
            relation = _case_relation("Contact", case["ContactId"])
        elif case.get("AccountId"):
            relation = _case_relation("Account", case["AccountId"])
        else:
            relation = _case_relation(None, None)
        pool.setdefault((str(case.get("Subject") or ""), relation), []).append(case["Id"])
    for row in rows:
        for target in _cases_needed(row):
            if target["object"] in ("Contact", "Account"):
                relation = _case_relation(target["object"], target["id"])
            else:
                relation = _case_relation(None, None)
            ids = pool.get((_case_subject(row), relation))
            if ids:
                target["case_id"] = ids.pop(0)


def _soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return value.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_of(row: HistoryRow) -> str:
    """The idempotency key written to ``B_UniqueId__c``."""
    return row.unique_id or row.call_id


def _iso(value: datetime) -> str:
    return value.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _plain(targets: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if targets is None else [dict(t) for t in targets]


def _task_ids(row: HistoryRow) -> list[str]:
    if row.targets:
        return [t["task_id"] for t in row.targets if t.get("task_id")]
    return list(row.task_ids or [])


def _terms(numbers: dict[str, list[str]], keys: tuple[str, ...]) -> str:
    """``FIND`` terms: every form of the numbers joined with OR."""
    return " OR ".join(sosl_term_wrapped(f) for key in keys for f in numbers[key])


def _find_chunks(numbers: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """The numbers (keys) of each search: as many as keep its ``FIND`` short."""
    chunks: list[tuple[str, ...]] = []
    current: list[str] = []
    length = 0
    for key in numbers:
        part = len(_terms(numbers, (key,)))
        if current and length + part + 4 > MAX_FIND_CHARS:
            chunks.append(tuple(current))
            current, length = [], 0
        current.append(key)
        length += part + (4 if length else 0)
    if current:
        chunks.append(tuple(current))
    return chunks


def _search(numbers: dict[str, list[str]], keys: tuple[str, ...], returning: str) -> Sub:
    return Sub(
        "GET",
        search_url(f"FIND {{{_terms(numbers, keys)}}} IN PHONE FIELDS RETURNING {returning}"),
    )


def _split_search(
    numbers: dict[str, list[str]],
    info: tuple[tuple[str, ...], str | None],
    objects: list[dict[str, Any]],
    phone_fields: dict[str, list[str]],
) -> tuple[list[tuple[Sub, tuple[tuple[str, ...], str | None]]], set[tuple[str, str]]]:
    """A search that returned Salesforce's maximum (2,000) may have lost matches: its
    numbers are searched again in two halves; one number alone, object by object (newest
    first, so ``first`` still finds the most recently modified). One number and one object
    that still fill a search are returned as saturated."""
    keys, object_name = info
    if len(keys) > 1:
        half = len(keys) // 2
        returning = _returning(objects, phone_fields)
        return [
            (_search(numbers, part, returning), (part, None)) for part in (keys[:half], keys[half:])
        ], set()
    if object_name is None:
        parts = []
        for obj in objects:
            returning = _returning([obj], phone_fields, newest_first=True)
            if returning:
                parts.append((_search(numbers, keys, returning), (keys, obj["api_name"])))
        return parts, set()
    return [], {(keys[0], object_name)}


def _returning(
    objects: list[dict[str, Any]], phone_fields: dict[str, list[str]], newest_first: bool = False
) -> str:
    parts = []
    order = " ORDER BY LastModifiedDate DESC" if newest_first else ""
    for obj in objects:
        fields = phone_fields.get(obj["api_name"]) or []
        if not fields:
            continue
        where = " WHERE IsConverted = false" if obj["api_name"] == "Lead" else ""
        select_list = ", ".join(["Id", "LastModifiedDate", *fields])
        parts.append(f"{obj['api_name']}({select_list}{where}{order})")
    return ", ".join(parts)


def _dedupe(matches: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    unique = []
    for object_name, record in matches:
        if record["Id"] not in seen:
            seen.add(record["Id"])
            unique.append((object_name, record))
    return unique


def _fallback_target(link: HistoryLink) -> dict[str, Any]:
    prefix = link.fallback_record[:3]
    object_name = next(
        (o["api_name"] for o in link.objects if o["key_prefix"] == prefix),
        {"003": "Contact", "00Q": "Lead", "001": "Account"}.get(prefix, "Other"),
    )
    return {"object": object_name, "id": link.fallback_record}


def _choose(
    link: HistoryLink, objects: list[dict[str, Any]], matched: list[tuple[str, dict[str, Any]]]
) -> tuple[list[dict[str, Any]] | None, Message | None]:
    """Objects in priority order: the first with any match wins; ``on_multiple`` decides
    among its records. None: no match."""
    for obj in sorted(objects, key=lambda o: o["priority"]):
        records = [r for name, r in matched if name.lower() == obj["api_name"].lower()]
        if not records:
            continue
        if len(records) == 1:
            return [{"object": obj["api_name"], "id": records[0]["Id"]}], None
        if link.on_multiple == "fallback":
            return (
                [_fallback_target(link)],
                Message("history_multiple.fallback", count=len(records), object=obj["api_name"]),
            )
        if link.on_multiple == "first":
            newest = max(records, key=lambda r: str(r.get("LastModifiedDate") or ""))
            return (
                [{"object": obj["api_name"], "id": newest["Id"]}],
                Message("history_multiple.first", count=len(records), object=obj["api_name"]),
            )
        return [{"object": obj["api_name"], "id": r["Id"]} for r in records], None
    return None, None


def _same_task(row: HistoryRow, target: dict[str, Any], task: dict[str, Any]) -> bool:
    if task.get("B_UniqueId__c") != _key_of(row) or task.get("CallObject") != row.call_id:
        return False
    related = {str(v)[:15] for v in (task.get("WhoId"), task.get("WhatId")) if v}
    ids = {str(v)[:15] for v in (target.get("id"), target.get("case_id")) if v}
    return bool(related & ids)


def history_worker(runtime: Runtime) -> HistoryWorker | None:
    worker = runtime.extras.get(WORKER_KEY)
    return worker if isinstance(worker, HistoryWorker) else None


@contextlib.asynccontextmanager
async def history_lifespan(runtime: Runtime, run_worker: bool) -> Any:
    worker: HistoryWorker | None = None
    if run_worker and runtime.settings.history_worker:
        worker = HistoryWorker(runtime)
        runtime.extras[WORKER_KEY] = worker
        worker.start()
    try:
        yield worker
    finally:
        if worker is not None:
            await worker.stop()
            runtime.extras.pop(WORKER_KEY, None)
