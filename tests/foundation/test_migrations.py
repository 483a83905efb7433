"""Migrations build the schema on both databases, match the models, and reverse."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from callbridge.db.base import Base
from callbridge.db.migrate import alembic_config


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


def test_every_migration_reverses(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
