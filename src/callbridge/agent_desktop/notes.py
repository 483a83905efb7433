"""Call notes and wrap-up (DESIGN §12.4, seed 004): saved on the call and sent to the
history link's Task."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls import store
from callbridge.errors import FieldError, NotFound
from callbridge.history.service import set_call_notes, task_description
from callbridge.models import AgentPop, Call, ScreenPopProfile, User
from callbridge.runtime import Runtime


async def save_notes(
    runtime: Runtime, session: AsyncSession, user: User, call_id: str, notes: str, wrapup: str
) -> int:
    """Store them (the call's variables through the call store, first: the history worker
    reads them once the rows are due); the number of history rows whose Task gets them."""
    # Read without flushing: on SQLite the store's own connection would wait for a write
    # lock this session took (the sign-in's touch) until the request ends.
    with session.no_autoflush:
        call_pk = await _popped_call(session, user, call_id, wrapup)
    values = {"NOTES": notes, "WRAPUP": wrapup}
    await store.set_variables(runtime, call_pk, values, source="agent")
    return await set_call_notes(session, call_pk, task_description(notes, wrapup))


async def _popped_call(session: AsyncSession, user: User, call_id: str, wrapup: str) -> int:
    call_pk = await session.scalar(select(Call.id).where(Call.call_id == call_id))
    popped = None
    if call_pk is not None:
        popped = await session.scalar(
            select(AgentPop.data)
            .where(AgentPop.user_id == user.id, AgentPop.call_pk == call_pk, AgentPop.kind == "pop")
            .order_by(AgentPop.id.desc())
            .limit(1)
        )
    if call_pk is None or popped is None:
        # Another agent's call looks the same as no call: nothing is told about it.
        raise NotFound(f"call '{call_id}' did not pop on your console")
    if wrapup:
        profile = await session.scalar(
            select(ScreenPopProfile).where(ScreenPopProfile.name == popped.get("profile", ""))
        )
        reasons = list(profile.wrapup_reasons) if profile is not None else []
        if wrapup not in reasons:
            raise FieldError("wrapup", f"'{wrapup}' is not one of the wrap-up reasons")
    return call_pk
