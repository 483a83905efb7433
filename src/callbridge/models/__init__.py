"""ORM models, one module per entity. Importing this package registers them all."""

from callbridge.models.audit import AuditEntry
from callbridge.models.auth import LoginFailure, SetupToken, UserSession
from callbridge.models.call import Call, CallEvent, CallVariable, Execution
from callbridge.models.system_setting import SystemSetting
from callbridge.models.token import ApiToken
from callbridge.models.user import User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Call",
    "CallEvent",
    "CallVariable",
    "Execution",
    "LoginFailure",
    "SetupToken",
    "SystemSetting",
    "User",
    "UserSession",
]
