"""The long-lived resources of one callbridge process, created once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from callbridge.kit.crypto import SecretBox
from callbridge.kit.time import utcnow
from callbridge.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    started_at: datetime = field(default_factory=utcnow)
    # Feature modules keep their shared objects here (outbound client, dispatcher, ...).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.engine.dialect.name == "postgresql" else "sqlite"


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime
