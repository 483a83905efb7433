"""Alembic environment: async engines, batch mode on SQLite, one migrator at a time."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

import callbridge.models  # noqa: F401  (registers every table)
from callbridge.db.base import Base
from callbridge.db.engine import create_engine
from callbridge.settings import Settings

# Any constant: every callbridge process that migrates takes the same lock.
MIGRATION_LOCK_ID = 0x63616C6C  # "call"

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return url or Settings().resolved_database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    if connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table by copying it and dropping the original: with
        # foreign keys on, that drop would cascade to the rows referring to it. Off for
        # the migration (only possible outside a transaction), checked before commit.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start at once: the first migrates, the others wait
            # here and then find nothing left to do. Released when the transaction ends.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows with broken foreign keys: {broken}")


async def _run_async() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
