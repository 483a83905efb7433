from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from callbridge.kit.patch import Patch

Role = Literal["admin", "supervisor", "agent"]
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_.@+-]+$"
    ),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1000)]
AgentId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
# A Salesforce user id (005…, 15 or 18 characters): Task owner of the history link.
SalesforceUserId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^(005[A-Za-z0-9]{12}([A-Za-z0-9]{3})?)?$"),
]

# The agent's phone extension as the PBX names it in call events (内線番号).
Extension = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=50, pattern=r"^[0-9A-Za-z*#+_.-]*$")
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password
    role: Role = "agent"
    agent_id: AgentId | None = None
    display_name: DisplayName = ""
    language: Literal["ja", "en"] | None = None
    salesforce_user_id: SalesforceUserId | None = None
    extension: Extension | None = None


class UserUpdate(Patch):
    model_config = ConfigDict(extra="forbid")
    create_schema = UserCreate

    password: Password | None = None
    role: Role | None = None
    agent_id: AgentId | None = None
    display_name: DisplayName | None = None
    language: Literal["ja", "en"] | None = None
    is_active: bool | None = None
    salesforce_user_id: SalesforceUserId | None = None
    extension: Extension | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    agent_id: str | None
    display_name: str
    language: str | None
    salesforce_user_id: str | None = None
    extension: str | None = None
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
