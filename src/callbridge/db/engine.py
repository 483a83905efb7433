"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from callbridge.db.connections import server_settings
from callbridge.errors import FieldError
from callbridge.kit.text import NUL_MESSAGE


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Statement parameters stay out of error messages and tracebacks: they hold
    # ciphertexts, phone numbers and the PBX's data.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers run beside the writer; NORMAL is durable against a process
            # kill (the PBX's acknowledged events survive SIGKILL), fsync at checkpoints.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"server_settings": server_settings()})
    return create_async_engine(url, **kwargs)


class StorableSession(Session):
    """Refuses, before anything is written, text no database can store: a NUL (PostgreSQL
    refuses it, SQLite would keep it) answers 422 naming the field on both databases."""


@event.listens_for(StorableSession, "before_flush")
def _refuse_nul(session: Session, _context: Any, _instances: Any) -> None:
    for instance in (*session.new, *session.dirty):
        state = inspect(instance)
        for key, value in state.dict.items():  # what is loaded or set: no lazy load here
            if isinstance(value, str) and "\x00" in value:
                raise FieldError(key, NUL_MESSAGE)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=StorableSession)


def database_kind(engine: AsyncEngine) -> str:
    return "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
