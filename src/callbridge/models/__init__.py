"""ORM models, one module per entity. Importing this package registers them all."""

from callbridge.models.agent_desktop import AgentPop, ScreenPopProfile
from callbridge.models.audit import AuditEntry
from callbridge.models.auth import LoginFailure, SetupToken, SoftphonePairingCode, UserSession
from callbridge.models.call import Call, CallEvent, CallVariable, Execution
from callbridge.models.call_action import CallAction
from callbridge.models.circuit import CrmCircuit
from callbridge.models.history_link import HistoryLink, HistoryRow
from callbridge.models.ivr import Ivr, IvrResponse, IvrStep
from callbridge.models.oauth_account import OAuthAccount, OAuthAuthorization
from callbridge.models.recording import PeriodicJob, PlaybackLinkKey, Recording
from callbridge.models.rollup import OpsRollup, OpsRollupHour, OpsRollupState
from callbridge.models.system_setting import SystemSetting
from callbridge.models.token import ApiToken
from callbridge.models.user import User

__all__ = [
    "AgentPop",
    "ApiToken",
    "AuditEntry",
    "Call",
    "CallAction",
    "CallEvent",
    "CallVariable",
    "CrmCircuit",
    "Execution",
    "HistoryLink",
    "HistoryRow",
    "Ivr",
    "IvrResponse",
    "IvrStep",
    "LoginFailure",
    "OAuthAccount",
    "OAuthAuthorization",
    "OpsRollup",
    "OpsRollupHour",
    "OpsRollupState",
    "PeriodicJob",
    "PlaybackLinkKey",
    "Recording",
    "ScreenPopProfile",
    "SetupToken",
    "SoftphonePairingCode",
    "SystemSetting",
    "User",
    "UserSession",
]
