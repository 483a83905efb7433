"""Pops (DESIGN §12.1, §12.2): from a stored call event to the agent's console.

When the dispatcher runs an ``incoming`` or ``answer`` event that names an agent's
extension (or, without one, their agent id), the enabled screen-pop profile for the
called number whose trigger is that event finds the caller (its lookup) and stores one
``AgentPop`` row for that agent; ``disconnect`` stores an ``end``. The row's id is the SSE
``id``. Consoles connected to this process are woken in memory; on PostgreSQL a
``NOTIFY`` wakes the consoles held by the other web processes (each listens).

The lookup runs concurrently with the event's call actions, so neither waits for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.engine import make_url

from callbridge.agent_desktop import custom
from callbridge.agent_desktop.lookup import Found, salesforce_lookup
from callbridge.agent_desktop.schemas import (
    CARD_WAIT_SECONDS,
    ClickAction,
    PopData,
    ScreenPopTest,
    ScreenPopTestResult,
    TestedRequest,
)
from callbridge.call_actions.engine import call_values as event_values
from callbridge.calls import store
from callbridge.calls.callstore import CallInfo
from callbridge.calls.dispatcher import EventJob, EventOutcome, Processor
from callbridge.calls.repository import call_info, variables_of
from callbridge.calls.writes import read_session, write_session
from callbridge.db.connections import server_settings
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define, joined, stored
from callbridge.models import AgentPop, Call, CallEvent, ScreenPopProfile, User
from callbridge.requests import RequestInvalid
from callbridge.requests.execute import unsent_record
from callbridge.requests.secrets import decrypted_secrets
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.agent_desktop")

CHANNEL = "callbridge_agent_pops"
HUB_KEY = "agent_pop_hub"
TASKS_KEY = "agent_pop_tasks"
# Executions of a custom lookup's server accesses are recorded with this source.
SOURCE = "screen_pop"
POP_EVENTS = ("incoming", "answer", "disconnect")

define({"pop_lookup_field": "{field}: {reason}"})
# An event older than this (a PBX catching up) pops nobody: the call is long over.
STALE_AFTER = timedelta(minutes=10)


class PopHub:
    """The consoles connected to this process, by user: each waits on an Event."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self.listening = False

    def subscribe(self, user_id: int) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(event)
        return event

    def unsubscribe(self, user_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(user_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[user_id]

    def wake(self, user_id: int) -> None:
        for event in self._waiters.get(user_id, ()):
            event.set()

    @property
    def connected(self) -> int:
        return sum(len(w) for w in self._waiters.values())


def get_hub(runtime: Runtime) -> PopHub:
    hub = runtime.extras.get(HUB_KEY)
    if hub is None:
        hub = runtime.extras[HUB_KEY] = PopHub()
    return hub


async def publish(
    runtime: Runtime, user_id: int, call_pk: int | None, kind: str, data: dict[str, Any]
) -> int:
    """Store one message for the agent and wake their consoles; its SSE id."""
    async with write_session(runtime) as session:
        pop = AgentPop(user_id=user_id, call_pk=call_pk, kind=kind, data=data)
        session.add(pop)
        await session.flush()
        pop_id = pop.id
        if runtime.database_kind == "postgresql":
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": str(user_id)},
            )
    get_hub(runtime).wake(user_id)
    return pop_id


def strip_prefix(tel: str, prefixes: list[str]) -> str:
    """seed 004's ANI prefix removal: a country code (``+81``) becomes the national trunk
    prefix ``0``; a digits-only prefix is removed."""
    for prefix in prefixes:
        if tel.startswith(prefix):
            rest = tel[len(prefix) :]
            return ("0" + rest) if prefix.startswith("+") else rest
    return tel


def is_anonymous(tel: str | None) -> bool:
    return not tel or not any(ch.isdigit() for ch in tel)


async def _recipient(
    runtime: Runtime, payload: dict[str, Any], tel: str | None
) -> tuple[User | None, bool]:
    """The active agent the event names (its ``extension``, or else its ``agent_id``), and
    whether the call is internal (the PBX says so, or the caller is a user's extension):
    one read."""
    extension = payload.get("extension")
    agent_id = payload.get("agent_id")
    internal = payload.get("direction") == "internal"
    if not extension and not agent_id:
        return None, internal
    column = User.extension if extension else User.agent_id
    key = extension or agent_id
    wanted = and_(column == key, User.is_active)
    if tel and not internal:
        wanted = or_(wanted, User.extension == tel)
    async with read_session(runtime) as session:
        users = list(await session.scalars(select(User).where(wanted).order_by(User.id)))
    attribute = "extension" if extension else "agent_id"
    agent = next((u for u in users if u.is_active and getattr(u, attribute) == key), None)
    return agent, internal or any(u.extension == tel for u in users if tel)


async def _profile(runtime: Runtime, called: str | None) -> ScreenPopProfile | None:
    async with read_session(runtime) as session:
        profiles = await session.scalars(
            select(ScreenPopProfile).where(ScreenPopProfile.enabled).order_by(ScreenPopProfile.id)
        )
        for profile in profiles:
            if not profile.phone_numbers or (called and called in profile.phone_numbers):
                return profile
    return None


def base_pop(
    profile: ScreenPopProfile,
    call: CallInfo,
    payload: dict[str, Any],
    event: str,
    tel: str | None,
) -> PopData:
    """The card before any lookup: the call as the PBX told it, and the profile's options."""
    anonymous = is_anonymous(tel)
    return PopData(
        call_id=call.call_id,
        event=event,
        tel=None if anonymous else tel,
        tel_name=(
            profile.anonymous_label if anonymous else (payload.get("tel_name") or call.tel_name)
        ),
        called=payload.get("called") or call.called,
        queue=payload.get("queue") or call.queue,
        anonymous=anonymous,
        profile=profile.name,
        profile_id=profile.id,
        open_delay_seconds=profile.answer_delay_seconds if profile.trigger == "answer" else 0,
        display_seconds=profile.display_seconds,
        copy_number=profile.copy_number,
        wrapup_reasons=list(profile.wrapup_reasons),
    )


async def salesforce_card(runtime: Runtime, profile: ScreenPopProfile, data: PopData) -> PopData:
    """The card with the Salesforce lookup's result (the custom lookup: ``_custom_card``)."""
    lookup = profile.lookup
    if data.anonymous or not lookup or lookup.get("kind") != "salesforce" or data.tel is None:
        return data
    try:
        found = await salesforce_lookup(runtime, lookup, data.tel)
    except Exception as exc:  # the card still appears, saying the lookup failed
        logger.exception("screen-pop lookup failed")
        found = Found(error=crashed(exc))
    data.matches = found.matches
    data.url = found.url
    data.new_record_url = found.new_record_url
    data.failed(found.error)
    return data


def call_values(
    call: CallInfo,
    payload: dict[str, Any],
    event: str,
    variables: dict[str, str],
    tel: str | None,
    user: User | None,
) -> dict[str, str]:
    """What a custom lookup's templates read (seed 002 §3.1): what a call action's templates
    read for the event, with ``{TEL}`` as the card shows it (the ANI prefix removed) and
    ``{AID}``/``{EXT}`` of the rung agent when the event does not say them."""
    values = event_values(call, payload, event, variables)
    values["TEL"] = tel or ""
    if user is not None:
        if payload.get("agent_id") is None:
            values["AID"] = user.agent_id or ""
        if payload.get("extension") is None:
            values["EXT"] = user.extension or ""
    return values


@dataclass
class CustomContext:
    """One run of a custom lookup: compiled, its environment, the values it expands."""

    profile: ScreenPopProfile
    compiled: custom.CompiledCustom
    env: custom.Environment
    values: dict[str, str]
    # Values of the auth answer (session ids): masked where a run is recorded.
    hidden: list[str] = field(default_factory=list)
    auth_error: Message | None = None


def _secrets(runtime: Runtime, profile: ScreenPopProfile) -> dict[str, str | None]:
    try:
        return decrypted_secrets(profile, runtime.secrets)
    except Exception as exc:  # a key change without the old key
        raise LookupFailed(Message("pop_lookup_secrets", detail=str(exc))) from None


def crashed(exc: Exception) -> Message:
    """An unexpected error of a lookup, as the card says it."""
    return Message("pop_lookup_crashed", detail=f"{type(exc).__name__}: {exc}")


class LookupFailed(Exception):
    """The custom lookup cannot run (it no longer compiles, its secrets are unreadable)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.msg = message


async def custom_context(
    runtime: Runtime,
    profile: ScreenPopProfile,
    values: dict[str, str],
    recorder: Recorder | None,
    *,
    cached_session: bool = True,
) -> CustomContext:
    """Compile the lookup and authenticate (the auth access, while its session lasts
    from the cache). Raises :class:`LookupFailed`."""
    try:
        compiled = custom.compiled_for_run(runtime, profile, _secrets(runtime, profile))
    except RequestInvalid as exc:
        reasons = [
            Message("pop_lookup_field", field=finding.field, reason=finding.said)
            for finding in exc.findings
        ]
        reason = joined(*reasons) if reasons else Message("text", text=str(exc))
        raise LookupFailed(Message("pop_lookup_invalid", reason=reason)) from None
    env = await custom.environment(runtime, compiled)
    context = CustomContext(profile, compiled, env, values)
    auth = compiled.access("auth")
    if auth is None:
        return context
    if cached_session:
        key = (profile.id, profile.updated_at)
        session_values, run = await custom.session_values(runtime, key, compiled, values, env)
    else:
        run = await custom.send(runtime, auth, values, env, compiled.timeout)
        session_values = {n: run.extracted.get(n, "") for n in auth.names} if not run.failed else {}
    context.hidden = [v for v in session_values.values() if len(v) >= 4]
    if run is not None:
        context.hidden += list(run.hidden)
        if recorder is not None:
            await recorder(run, context.hidden)
        if run.failed:
            context.auth_error = run.failure()
    values.update(session_values)
    return context


Recorder = Callable[[custom.AccessRun, list[str]], Awaitable[None]]


def recorder_for(
    runtime: Runtime,
    profile: ScreenPopProfile,
    call_pk: int,
    event: str,
    event_pk: int | None,
) -> Recorder:
    """Record a server access's run as an execution on the call's timeline."""

    async def record(run: custom.AccessRun, hidden: list[str]) -> None:
        if run.method.startswith("browser_"):
            return
        request = run.request or unsent_record(run.method.split("_")[-1].upper(), "")
        await store.record_execution(
            runtime,
            call_pk,
            variables={},
            variables_source=f"{SOURCE}:{profile.id}",
            source=SOURCE,
            rule_id=profile.id,
            label=f"{profile.name}: {run.access}"[:300],
            event=event,
            event_pk=event_pk,
            attempt=max(len(run.attempts), 1),
            request=custom.masked(request, hidden),
            response=custom.masked(run.response, hidden),
            duration_ms=run.duration_ms,
            extracted=custom.masked(run.extracted, hidden),
            error=run.error,
            attempts=custom.masked(run.attempts, hidden),
        )

    return record


async def run_access(
    runtime: Runtime,
    context: CustomContext,
    access: custom.CompiledAccess,
    recorder: Recorder | None,
) -> custom.AccessRun:
    """A browser access expanded (where the console opens it), or a server access sent
    and recorded."""
    if access.in_browser:
        _expanded, run = custom.expand(access, context.values, context.env)
        return run
    run = await custom.send(runtime, access, context.values, context.env, context.compiled.timeout)
    if recorder is not None:
        await recorder(run, context.hidden)
    return run


async def search(
    runtime: Runtime, context: CustomContext, data: PopData, recorder: Recorder | None
) -> custom.AccessRun | None:
    """The search access: {COMPANY}, {NAME}, {EXT_ID} on the card (not for withheld
    numbers, nor after a failed auth)."""
    for name in custom.SEARCH_NAMES:
        context.values.setdefault(name, "")
    access = context.compiled.access("search")
    if access is None or data.anonymous or context.auth_error:
        return None
    run = await run_access(runtime, context, access, recorder)
    if run.failed:
        data.failed(run.failure())
        return run
    context.values.update(run.extracted)
    data.company = run.extracted.get("COMPANY")
    data.name = run.extracted.get("NAME")
    data.ext_id = run.extracted.get("EXT_ID")
    return run


def opened(data: PopData | dict[str, Any], run: custom.AccessRun) -> Message | None:
    """Put a browser access's page on the message (``url``, or the ``form`` to submit);
    the error when it could not be expanded."""
    if run.failed:
        return run.failure()
    form = run.form.model_dump(mode="json") if run.form is not None else None
    if isinstance(data, dict):
        data["url"], data["form"] = run.url, form
    else:
        data.url, data.form = run.url, run.form
    return None


def click_action(context: CustomContext) -> ClickAction | None:
    access = context.compiled.access("click")
    if access is None:
        return None
    if not access.in_browser:
        return ClickAction(server=True)
    _expanded, run = custom.expand(access, context.values, context.env)
    if run.failed:
        return None
    return ClickAction(url=run.url, form=run.form)


async def _custom_card(
    job: EventJob, profile: ScreenPopProfile, user: User, tel: str | None, data: PopData
) -> tuple[PopData, Later | None]:
    """The card of a custom lookup: auth, search, the trigger event's access (a browser
    access is what the console opens; a server access is sent after the card), click."""
    runtime = job.runtime
    record = recorder_for(runtime, profile, job.call_pk, job.event, job.event_pk)
    values = call_values(job.call, job.payload, job.event, job.variables, tel, user)
    try:
        context = await custom_context(runtime, profile, values, record)
    except LookupFailed as exc:
        data.failed(exc.msg)
        return data, None
    data.failed(context.auth_error)
    await search(runtime, context, data, record)
    data.click = click_action(context)
    access = context.compiled.access(job.event)
    if access is None:
        return data, None
    if access.in_browser:
        _expanded, run = custom.expand(access, context.values, context.env)
        failure = opened(data, run)
        if failure is not None:
            data.failed(failure)
        return data, None
    return data, Later(context, access, record, _delay(profile, job.event))


def _delay(profile: ScreenPopProfile, event: str) -> int:
    return profile.answer_delay_seconds if event == "answer" else 0


@dataclass
class Later:
    """A server access sent once the card is out (after the answer delay for ``answer``)."""

    context: CustomContext
    access: custom.CompiledAccess
    recorder: Recorder
    delay: int

    async def run(self, runtime: Runtime) -> None:
        if self.delay:
            _background(runtime, self._after_delay(runtime))
        else:
            await run_access(runtime, self.context, self.access, self.recorder)

    async def _after_delay(self, runtime: Runtime) -> None:
        await asyncio.sleep(self.delay)
        await run_access(runtime, self.context, self.access, self.recorder)


def _background(runtime: Runtime, work: Coroutine[Any, Any, None]) -> None:
    tasks: set[asyncio.Task[None]] = runtime.extras.setdefault(TASKS_KEY, set())

    async def quietly() -> None:
        try:
            await work
        except Exception:
            logger.exception("screen-pop access failed")

    task = asyncio.create_task(quietly())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _looked_up(
    job: EventJob, profile: ScreenPopProfile, user: User, tel: str | None
) -> tuple[PopData, Later | None]:
    lookup = profile.lookup or {}
    if lookup.get("kind") == "custom":
        data = base_pop(profile, job.call, job.payload, job.event, tel)
        try:
            return await _custom_card(job, profile, user, tel, data)
        except Exception as exc:  # the card still appears, saying the lookup failed
            logger.exception("screen-pop lookup failed")
            data.failed(crashed(exc))
            return data, None
    data = base_pop(profile, job.call, job.payload, job.event, tel)
    return await salesforce_card(job.runtime, profile, data), None


async def _card(job: EventJob, profile: ScreenPopProfile, user: User, tel: str | None) -> int:
    """The card at the profile's trigger. A lookup that takes longer than the lookup's
    ``card_wait_seconds`` does not hold the card: the card goes first (``lookup_pending``)
    and an ``update`` follows with the lookup's result."""
    runtime = job.runtime
    lookup = profile.lookup
    if not lookup:
        data = base_pop(profile, job.call, job.payload, job.event, tel)
        return await publish(runtime, user.id, job.call_pk, "pop", data.stored())
    task = asyncio.create_task(_looked_up(job, profile, user, tel))
    wait = float(lookup.get("card_wait_seconds", CARD_WAIT_SECONDS))
    done, _pending = await asyncio.wait({task}, timeout=wait)
    if task in done:
        data, later = task.result()
        pop_id = await publish(runtime, user.id, job.call_pk, "pop", data.stored())
    else:
        first = base_pop(profile, job.call, job.payload, job.event, tel)
        first.lookup_pending = True
        pop_id = await publish(runtime, user.id, job.call_pk, "pop", first.stored())
        data, later = await task
        await publish(runtime, user.id, job.call_pk, "update", data.stored())
    if later is not None:
        await later.run(runtime)
    return pop_id


async def last_card(runtime: Runtime, user_id: int, call_pk: int) -> dict[str, Any] | None:
    """The agent's latest card of the call (its ``pop`` or ``update``)."""
    async with read_session(runtime) as session:
        row = await session.scalar(
            select(AgentPop)
            .where(
                AgentPop.user_id == user_id,
                AgentPop.call_pk == call_pk,
                AgentPop.kind.in_(("pop", "update")),
            )
            .order_by(AgentPop.id.desc())
            .limit(1)
        )
        return dict(row.data) if row is not None else None


async def _answered(runtime: Runtime, call_pk: int) -> bool:
    async with read_session(runtime) as session:
        found = await session.scalar(
            select(CallEvent.id)
            .where(CallEvent.call_pk == call_pk, CallEvent.event == "answer")
            .limit(1)
        )
    return found is not None


async def _follow_up(
    job: EventJob, profile: ScreenPopProfile, user: User, tel: str | None
) -> dict[str, Any] | None:
    """An access of an event other than the card's (incoming, answer, disconnect): a
    browser access is the page the console opens (returned, to go in a message); a
    server access is sent and recorded. The search values are the card's."""
    runtime = job.runtime
    accesses = (profile.lookup or {}).get("accesses") or {}
    wanted = accesses.get(job.event)
    if not wanted:
        return None
    if (
        job.event == "disconnect"
        and wanted.get("answered_only")
        and not await _answered(runtime, job.call_pk)
    ):
        return None
    record = recorder_for(runtime, profile, job.call_pk, job.event, job.event_pk)
    values = call_values(job.call, job.payload, job.event, job.variables, tel, user)
    card = await last_card(runtime, user.id, job.call_pk) or {}
    for name in custom.SEARCH_NAMES:
        values[name] = str(card.get(name.lower()) or "")
    try:
        context = await custom_context(runtime, profile, values, record)
    except LookupFailed as exc:
        logger.warning("screen-pop access not run: %s", exc)
        return None
    access = context.compiled.access(job.event)
    if access is None:
        return None
    if access.in_browser:
        _expanded, run = custom.expand(access, context.values, context.env)
        message = card or base_pop(profile, job.call, job.payload, job.event, tel).stored()
        message.update(event=job.event, lookup_pending=False)
        message["open_delay_seconds"] = _delay(profile, job.event)
        failure = opened(message, run)
        if failure is not None:
            message["lookup_error"] = failure.text
            message["lookup_error_msg"] = failure.to_json()
        return message
    await Later(context, access, record, _delay(profile, job.event)).run(runtime)
    return None


async def pop_for_event(job: EventJob) -> int | None:
    """Store the pop (or ``end``, or ``update``) this event makes for its agent, and run
    the custom lookup's access of the event; the message's id, or None."""
    if job.event not in POP_EVENTS or job.attempt != 1 or job.parked_at is not None:
        return None
    if utcnow() - job.occurred_at > STALE_AFTER:
        return None
    runtime = job.runtime
    called = job.payload.get("called") or job.call.called
    raw_tel = job.payload.get("tel") or job.call.tel
    # Two independent reads, side by side: they come before the lookup, so before the card.
    (user, from_extension), profile = await asyncio.gather(
        _recipient(runtime, job.payload, raw_tel), _profile(runtime, called)
    )
    if user is None:
        return None
    internal = profile is not None and profile.skip_internal and from_extension
    tel = (
        strip_prefix(raw_tel, list(profile.strip_prefixes))
        if raw_tel and profile is not None
        else raw_tel
    )
    custom_lookup = (
        profile is not None and not internal and (profile.lookup or {}).get("kind") == "custom"
    )
    if job.event == "disconnect":
        end: dict[str, Any] = {"call_id": job.call.call_id, "event": "disconnect"}
        if custom_lookup:
            assert profile is not None
            page = await _follow_up(job, profile, user, tel)
            if page is not None:
                end.update(url=page.get("url"), form=page.get("form"))
        return await publish(runtime, user.id, job.call_pk, "end", end)
    if profile is None or internal:
        return None
    if profile.trigger == job.event:
        return await _card(job, profile, user, tel)
    if custom_lookup:
        page = await _follow_up(job, profile, user, tel)
        if page is not None:
            return await publish(runtime, user.id, job.call_pk, "update", page)
    return None


async def _pop_quietly(job: EventJob) -> None:
    try:
        await pop_for_event(job)
    except Exception:
        logger.exception("screen pop for event %s failed", job.event_pk)


def with_screen_pops(processor: Processor) -> Processor:
    """The processor, plus the event's screen pop (run side by side)."""

    async def process(job: EventJob) -> EventOutcome:
        if job.event not in POP_EVENTS:
            return await processor(job)
        _popped, outcome = await asyncio.gather(_pop_quietly(job), processor(job))
        return outcome

    return process


async def messages_after(
    runtime: Runtime, user_id: int, after: int, limit: int = 100
) -> list[AgentPop]:
    async with read_session(runtime) as session:
        rows = await session.scalars(
            select(AgentPop)
            .where(AgentPop.user_id == user_id, AgentPop.id > after)
            .order_by(AgentPop.id)
            .limit(limit)
        )
        return list(rows)


async def latest_id(runtime: Runtime, user_id: int) -> int:
    async with read_session(runtime) as session:
        found = await session.scalar(
            select(func.max(AgentPop.id)).where(AgentPop.user_id == user_id)
        )
        return int(found or 0)


async def _listen(runtime: Runtime, hub: PopHub) -> None:
    import asyncpg

    url = make_url(runtime.settings.resolved_database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)

    def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            hub.wake(int(payload))

    while True:
        connection = None
        try:
            connection = await asyncpg.connect(dsn, server_settings=server_settings())
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _c, lost=lost: lost.set())
            await connection.add_listener(CHANNEL, notified)
            hub.listening = True
            await lost.wait()
            logger.warning("agent pops: LISTEN connection lost; reconnecting")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("agent pops: LISTEN unavailable (%s)", type(exc).__name__)
        finally:
            hub.listening = False
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
        await asyncio.sleep(1.0)


@asynccontextmanager
async def agent_pops_lifespan(runtime: Runtime, role: str) -> AsyncIterator[None]:
    """Web processes on PostgreSQL listen for pops stored by the other processes."""
    hub = get_hub(runtime)
    task = None
    if role in ("all", "web") and runtime.database_kind == "postgresql":
        task = asyncio.create_task(_listen(runtime, hub), name="agent-pops-listen")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Server accesses still waiting out their answer delay.
        for waiting in list(runtime.extras.get(TASKS_KEY, ())):
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting


# ---- the test panel and the click access ---------------------------------------------


def _tested(run: custom.AccessRun, hidden: list[str]) -> TestedRequest:
    return TestedRequest(
        access=run.access,
        method=run.method,
        sent=run.sent,
        request=custom.masked(run.request, hidden),
        response=custom.masked(run.response, hidden),
        extracted=custom.masked(run.extracted, hidden),
        error=run.error,
        opens=run.url,
        form=run.form,
    )


async def test_profile(
    runtime: Runtime, profile: ScreenPopProfile, sample: ScreenPopTest
) -> ScreenPopTestResult:
    """The test panel: a number in; the lookup's requests and the pop that would open
    out. The lookup's own requests (auth, search; Salesforce's search) are sent; the
    accesses that open in the browser or would change data in the CRM (incoming, answer,
    disconnect, click sent by callbridge) are expanded and shown, not sent. No call is
    touched and nothing is recorded."""
    call = CallInfo(
        0, "test", None, sample.tel or None, sample.tel_name or None, sample.called or None,
        None, None, None,
    )  # fmt: skip
    payload: dict[str, Any] = {
        key: value
        for key, value in (("extension", sample.extension), ("agent_id", sample.agent_id))
        if value
    }
    tel = strip_prefix(sample.tel, list(profile.strip_prefixes)) if sample.tel else None
    pop = base_pop(profile, call, payload, profile.trigger, tel)
    lookup = profile.lookup or {}
    if lookup.get("kind") != "custom":
        pop = await salesforce_card(runtime, profile, pop)
        return ScreenPopTestResult(tel=pop.tel, requests=[], pop=pop)
    runs: list[TestedRequest] = []

    async def collect(run: custom.AccessRun, hidden: list[str]) -> None:
        runs.append(_tested(run, hidden))

    values = call_values(call, payload, profile.trigger, {}, tel, None)
    try:
        context = await custom_context(runtime, profile, values, collect, cached_session=False)
    except LookupFailed as exc:
        pop.failed(exc.msg)
        return ScreenPopTestResult(tel=pop.tel, requests=runs, pop=pop)
    pop.failed(context.auth_error)
    await search(runtime, context, pop, collect)
    pop.click = click_action(context)
    for name in ("incoming", "answer", "disconnect", "click"):
        access = context.compiled.access(name)
        if access is None:
            continue
        _expanded, run = custom.expand(access, context.values, context.env)
        runs.append(_tested(run, context.hidden))
        if name == profile.trigger and access.in_browser:
            failure = opened(pop, run)
            if failure is not None:
                pop.failed(failure)
    return ScreenPopTestResult(tel=pop.tel, requests=runs, pop=pop)


async def click(runtime: Runtime, user: User, call_id: str) -> custom.AccessRun | None:
    """The agent clicked a card whose click access callbridge sends: send it with the
    call's values and the card's search values, recorded on the call's timeline. None
    when no card of that call with a server click access reached this agent."""
    async with read_session(runtime) as session:
        row = (
            await session.execute(
                select(AgentPop, Call.id)
                .join(Call, Call.id == AgentPop.call_pk)
                .where(
                    AgentPop.user_id == user.id,
                    Call.call_id == call_id,
                    AgentPop.kind.in_(("pop", "update")),
                )
                .order_by(AgentPop.id.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        card, call_pk = dict(row[0].data), int(row[1])
        profile = (
            await session.get(ScreenPopProfile, card.get("profile_id"))
            if card.get("profile_id")
            else None
        )
        info = await call_info(session, call_pk)
        variables = await variables_of(session, call_pk)
    if profile is None or info is None or not (card.get("click") or {}).get("server"):
        return None
    values = call_values(info, {}, "click", variables, card.get("tel"), user)
    for name in custom.SEARCH_NAMES:
        values[name] = str(card.get(name.lower()) or "")
    record = recorder_for(runtime, profile, call_pk, "click", None)
    try:
        context = await custom_context(runtime, profile, values, record)
    except LookupFailed as exc:
        return custom.AccessRun("click", "server", error={"kind": "config", **stored(exc.msg)})
    access = context.compiled.access("click")
    if access is None or access.in_browser:
        return None
    return await run_access(runtime, context, access, record)
