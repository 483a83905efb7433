"""PostgreSQL connections of a process: every pool and listener counted in one place.

A process on PostgreSQL opens, at most:

- SQLAlchemy's pool: ``database_pool_size`` kept, ``database_max_overflow`` more opened
  and closed again under load (web requests, the rule engine's reads, history);
- the call store's two asyncpg pools (``calls/pg_store.py``): the durable one of
  ``database_call_store_pool_size`` (unset: ``database_pool_size``, at most 20) and the
  bookkeeping one of half of it;
- one LISTEN connection per listener it runs: the dispatcher's (roles ``all`` and
  ``worker``) and the agent pops' (roles ``all`` and ``web``).

``share_connections`` splits a budget between the processes of one ``serve``;
``describe`` says what each may open and the worst case in all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from callbridge.settings import Settings

Role = Literal["all", "web", "worker"]

# Connections all processes of one ``serve`` keep open at most when the pool sizes are not
# set: below PostgreSQL's default max_connections (100), with room for other clients.
SHARED_CONNECTIONS = 80
# PostgreSQL's default max_connections, assumed when the server cannot be asked.
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
# Every connection callbridge opens says so (pg_stat_activity.application_name).
APPLICATION_NAME = "callbridge"
# How long start-up waits for the server's max_connections.
_ASK_SECONDS = 5.0
# The call store's durable pool follows database_pool_size up to this size when unset.
_CALL_STORE_DEFAULT_CAP = 20
# Shares of the budget a process of each role gets (share_connections).
_WEIGHT: dict[Role, int] = {"all": 1, "web": 1, "worker": 2}


def server_settings(**extra: str) -> dict[str, str]:
    """asyncpg's ``server_settings`` of a callbridge connection."""
    return {"application_name": APPLICATION_NAME, **extra}


def call_store_pool_sizes(settings: Settings) -> tuple[int, int]:
    """The call store's durable and bookkeeping pool sizes."""
    durable = settings.database_call_store_pool_size
    if durable is None:
        durable = max(min(settings.database_pool_size, _CALL_STORE_DEFAULT_CAP), 2)
    return durable, bookkeeping_size(durable)


def bookkeeping_size(durable: int) -> int:
    """The bookkeeping pool: half the durable one (at least 2 when that has 4 or more)."""
    return max(durable // 2, min(durable, 2))


def listeners(role: Role) -> int:
    """LISTEN connections of a process: the dispatcher's and the agent pops'."""
    return 2 if role == "all" else 1


@dataclass(frozen=True)
class ProcessConnections:
    """The most PostgreSQL connections one process opens at once."""

    pool_size: int
    max_overflow: int
    call_store: int
    bookkeeping: int
    listeners: int

    @classmethod
    def of(cls, settings: Settings, role: Role) -> ProcessConnections:
        durable, bookkeeping = call_store_pool_sizes(settings)
        return cls(
            settings.database_pool_size,
            settings.database_max_overflow,
            durable,
            bookkeeping,
            listeners(role),
        )

    @property
    def total(self) -> int:
        return (
            self.pool_size + self.max_overflow + self.call_store + self.bookkeeping + self.listeners
        )

    def describe(self) -> str:
        """``7+6 SQLAlchemy, 8+4 call store, 1 listener``."""
        return (
            f"{self.pool_size}+{self.max_overflow} SQLAlchemy, "
            f"{self.call_store}+{self.bookkeeping} call store, "
            f"{self.listeners} listener{'' if self.listeners == 1 else 's'}"
        )


def _least(role: Role) -> int:
    """One connection per pool and the listeners."""
    return 3 + listeners(role)


def split(connections: int, listeners_each: int) -> tuple[int, int, int]:
    """Pool size, overflow and call store size of a process that may open
    ``connections`` with ``listeners_each`` listeners (more when one connection per pool
    alone exceeds it).

    A third of what a process may open beside its listeners goes to the call store's
    durable pool and half of that to its bookkeeping pool (the event path: ingest,
    claims, executions); SQLAlchemy gets the rest, two thirds of it kept in its pool (the
    dispatcher's sessions at once are the pool less 4, calls/writes.py), a third as
    overflow for bursts of requests."""
    rest = connections - listeners_each
    durable = min(max((rest + 1) // 3, 1), _CALL_STORE_DEFAULT_CAP)
    sqlalchemy = rest - durable - bookkeeping_size(durable)
    max_overflow = max(sqlalchemy // 3, 0)
    return max(sqlalchemy - max_overflow, 1), max_overflow, durable


def share_connections(
    settings: Settings, roles: list[Role], budget: int = SHARED_CONNECTIONS
) -> dict[Role, dict[str, int]]:
    """The sizes the processes of one ``serve`` (``process_roles``) get, by role: their
    shares of ``budget``, for every size the operator did not set (those set are kept).

    A dispatcher process counts twice (it runs every call's work: claims, executions,
    the rule engine's and history's reads), a web process once (ingest is one statement
    per event)."""
    unit = budget // sum(_WEIGHT[role] for role in roles)
    web = [role for role in roles if role != "worker"]
    workers = len(roles) - len(web)
    # Many processes: each web process its least (one connection per pool), the rest to
    # the dispatchers.
    connections_of: dict[Role, int] = {role: max(unit, _least(role)) for role in web}
    if workers:
        left = (budget - sum(connections_of[role] for role in web)) // workers
        connections_of["worker"] = max(min(unit * _WEIGHT["worker"], left), _least("worker"))
    shares: dict[Role, dict[str, int]] = {}
    for role in dict.fromkeys(roles):
        pool_size, max_overflow, call_store = split(connections_of[role], listeners(role))
        sizes = {
            "database_pool_size": pool_size,
            "database_max_overflow": max_overflow,
            "database_call_store_pool_size": call_store,
        }
        shares[role] = {
            name: value for name, value in sizes.items() if name not in settings.model_fields_set
        }
    return shares


def process_roles(web: int, dispatchers: int, role: Role) -> list[Role]:
    """The role of every process of one ``serve``: one process has the role asked for;
    several are web and dispatcher (``worker``) processes."""
    if web + dispatchers == 1:
        return [role]
    roles: list[Role] = ["web"] * web
    return roles + ["worker"] * dispatchers


def worst_case(settings_of: Mapping[Role, Settings], roles: list[Role]) -> int:
    """Connections processes of these roles (each with its role's settings) open at
    most between them."""
    return sum(ProcessConnections.of(settings_of[role], role).total for role in roles)


def describe(settings_of: Mapping[Role, Settings], roles: list[Role]) -> str:
    """``database connections per web process: …; per dispatcher process: …; at most
    80 in all`` (one process: ``database connections: …; at most 82 in all``)."""
    kinds = {
        role: ProcessConnections.of(settings_of[role], role).describe()
        for role in dict.fromkeys(roles)
    }
    if len(roles) == 1:
        each = f": {kinds[roles[0]]}"
    else:
        named = {"web": "web process", "worker": "dispatcher process", "all": "process"}
        each = " " + "; ".join(f"per {named[role]}: {text}" for role, text in kinds.items())
    return f"database connections{each}; at most {worst_case(settings_of, roles)} in all"


async def server_max_connections(settings: Settings) -> int | None:
    """The server's ``max_connections``, or None when it cannot be asked (within
    ``_ASK_SECONDS``)."""
    import asyncpg

    # Not SQLAlchemy's URL: the supervisor of several processes does not import it.
    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", settings.resolved_database_url)
    try:
        connection = await asyncpg.connect(
            dsn,
            timeout=_ASK_SECONDS,
            server_settings=server_settings(),
        )
    except Exception:
        return None
    try:
        return int(await connection.fetchval("SHOW max_connections", timeout=_ASK_SECONDS))
    except Exception:
        return None
    finally:
        await connection.close(timeout=_ASK_SECONDS)
