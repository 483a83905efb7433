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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from callbridge.agent_desktop.lookup import Found, salesforce_lookup
from callbridge.agent_desktop.schemas import PopData
from callbridge.calls.dispatcher import EventJob, EventOutcome, Processor
from callbridge.calls.writes import read_session, write_session
from callbridge.kit.time import utcnow
from callbridge.models import AgentPop, ScreenPopProfile, User
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.agent_desktop")

CHANNEL = "callbridge_agent_pops"
HUB_KEY = "agent_pop_hub"
POP_EVENTS = ("incoming", "answer", "disconnect")
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


async def _agent(runtime: Runtime, payload: dict[str, Any]) -> User | None:
    extension = payload.get("extension")
    agent_id = payload.get("agent_id")
    if not extension and not agent_id:
        return None
    async with read_session(runtime) as session:
        column = User.extension if extension else User.agent_id
        return await session.scalar(
            select(User).where(column == (extension or agent_id), User.is_active).limit(1)
        )


async def _profile(runtime: Runtime, called: str | None) -> ScreenPopProfile | None:
    async with read_session(runtime) as session:
        profiles = await session.scalars(
            select(ScreenPopProfile).where(ScreenPopProfile.enabled).order_by(ScreenPopProfile.id)
        )
        for profile in profiles:
            if not profile.phone_numbers or (called and called in profile.phone_numbers):
                return profile
    return None


async def _internal(runtime: Runtime, tel: str | None, payload: dict[str, Any]) -> bool:
    """A call from another extension: the PBX says so, or the caller is a user's extension."""
    if payload.get("direction") == "internal":
        return True
    if not tel:
        return False
    async with read_session(runtime) as session:
        found = await session.scalar(select(User.id).where(User.extension == tel).limit(1))
    return found is not None


async def build_pop(
    runtime: Runtime, profile: ScreenPopProfile, job: EventJob, tel: str | None
) -> PopData:
    call = job.call
    anonymous = is_anonymous(tel)
    data = PopData(
        call_id=call.call_id,
        event=job.event,
        tel=None if anonymous else tel,
        tel_name=profile.anonymous_label
        if anonymous
        else (job.payload.get("tel_name") or call.tel_name),
        called=job.payload.get("called") or call.called,
        queue=job.payload.get("queue") or call.queue,
        anonymous=anonymous,
        profile=profile.name,
        open_delay_seconds=profile.answer_delay_seconds if profile.trigger == "answer" else 0,
        display_seconds=profile.display_seconds,
        copy_number=profile.copy_number,
        wrapup_reasons=list(profile.wrapup_reasons),
    )
    lookup = profile.lookup
    if anonymous or not lookup or lookup.get("kind") != "salesforce" or tel is None:
        return data
    try:
        found = await salesforce_lookup(runtime, lookup, tel)
    except Exception as exc:  # the card still appears, saying the lookup failed
        logger.exception("screen-pop lookup failed")
        found = Found(error=f"{type(exc).__name__}: {exc}")
    data.matches = found.matches
    data.url = found.url
    data.new_record_url = found.new_record_url
    data.lookup_error = found.error
    return data


async def pop_for_event(job: EventJob) -> int | None:
    """Store the pop (or ``end``) this event makes for its agent; its id, or None."""
    if job.event not in POP_EVENTS or job.attempt != 1 or job.parked_at is not None:
        return None
    if utcnow() - job.occurred_at > STALE_AFTER:
        return None
    runtime = job.runtime
    user = await _agent(runtime, job.payload)
    if user is None:
        return None
    if job.event == "disconnect":
        end = {"call_id": job.call.call_id, "event": "disconnect"}
        return await publish(runtime, user.id, job.call_pk, "end", end)
    called = job.payload.get("called") or job.call.called
    profile = await _profile(runtime, called)
    if profile is None or profile.trigger != job.event:
        return None
    raw_tel = job.payload.get("tel") or job.call.tel
    if profile.skip_internal and await _internal(runtime, raw_tel, job.payload):
        return None
    tel = strip_prefix(raw_tel, list(profile.strip_prefixes)) if raw_tel else None
    data = await build_pop(runtime, profile, job, tel)
    return await publish(runtime, user.id, job.call_pk, "pop", data.model_dump(mode="json"))


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
            connection = await asyncpg.connect(dsn)
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
