"""One database session per request, committed at the edge before the answer is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.runtime import get_runtime


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_runtime(request).sessionmaker() as session:
        try:
            yield session
        except BaseException:
            # Detach first: the error page still shows who is signed in, and a rollback
            # would expire every loaded attribute.
            session.expunge_all()
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response goes out, so an answer such
# as "202 accepted" is only sent for data that is really stored.
SessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
