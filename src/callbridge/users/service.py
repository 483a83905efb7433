"""User rules: unique usernames (case-insensitive), at least one active admin."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.auth.passwords import hash_password, needs_rehash, verify_password
from callbridge.auth.sessions import end_all_sessions
from callbridge.errors import Conflict, FieldError, NotFound
from callbridge.messages import Message, define
from callbridge.models import User
from callbridge.users import repository
from callbridge.users.schemas import UserCreate, UserUpdate

define(
    {
        "username_taken": "username '{username}' is already taken",
        "not_found.user": "user {id} does not exist",
        "last_admin": "callbridge needs at least one active administrator",
    }
)

# Text fields where an empty value clears what was stored.
OPTIONAL_TEXT = ("agent_id", "salesforce_user_id", "extension")


async def create_user(session: AsyncSession, data: UserCreate, actor: str) -> User:
    if await repository.get_user_by_username(session, data.username) is not None:
        raise Conflict(Message("username_taken", username=data.username), field="username")
    user = User(
        username=data.username,
        password_hash=hash_password(data.password),
        role=data.role,
        agent_id=data.agent_id or None,
        display_name=data.display_name,
        language=data.language,
        salesforce_user_id=data.salesforce_user_id or None,
        extension=data.extension or None,
    )
    session.add(user)
    await session.flush()
    record_audit(session, actor, "user.create", data.username, role=data.role)
    return user


async def get_user_or_404(session: AsyncSession, user_id: int) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise NotFound(Message("not_found.user", id=user_id))
    return user


async def _ensure_admin_remains(session: AsyncSession, user: User) -> None:
    if (
        user.role == "admin"
        and user.is_active
        and await repository.count_active_admins(session) <= 1
    ):
        raise FieldError("role", Message("last_admin"))


async def update_user(session: AsyncSession, user: User, data: UserUpdate, actor: str) -> User:
    changes = data.model_dump(exclude_unset=True)
    if ("role" in changes and changes["role"] != "admin") or changes.get("is_active") is False:
        await _ensure_admin_remains(session, user)
    if changes.get("password"):
        user.password_hash = hash_password(changes.pop("password"))
        await end_all_sessions(session, user.id)
    changes.pop("password", None)
    for name in OPTIONAL_TEXT:
        if name in changes:
            changes[name] = changes[name] or None
    for name, value in changes.items():
        if value is not None or name in (*OPTIONAL_TEXT, "language"):
            setattr(user, name, value)
    if changes.get("is_active") is False:
        await end_all_sessions(session, user.id)
    record_audit(session, actor, "user.update", user.username, fields=sorted(data.model_fields_set))
    return user


async def delete_user(session: AsyncSession, user: User, actor: str) -> None:
    await _ensure_admin_remains(session, user)
    await session.delete(user)
    record_audit(session, actor, "user.delete", user.username)


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The user when the credentials are right; None otherwise, whatever was wrong."""
    user = await repository.get_user_by_username(session, username)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user
