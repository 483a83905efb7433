"""The sandbox Salesforce: a local stand-in for Salesforce's OAuth and REST API.

Start it with ``callbridge sandbox`` (``run_sandbox``), or in tests with
``running_sandbox()``; drive it through ``SandboxHandle.state`` and ``.knobs``.
"""

from callbridge.sandbox.app import create_sandbox_app
from callbridge.sandbox.demo import (
    DEMO_CALLBACK_URLS,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
    demo_account_fields,
)
from callbridge.sandbox.ids import case_safe_suffix, normalize_id, to_18
from callbridge.sandbox.knobs import FailureKind, FailurePlan, Knobs
from callbridge.sandbox.server import (
    DEFAULT_PORT,
    SandboxHandle,
    run_sandbox,
    running_sandbox,
    serve_sandbox,
)
from callbridge.sandbox.state import (
    ConnectedApp,
    RecordedRequest,
    SandboxState,
    SandboxUser,
)

__all__ = [
    "DEFAULT_PORT",
    "DEMO_CALLBACK_URLS",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_PASSWORD",
    "DEMO_SECURITY_TOKEN",
    "DEMO_USERNAME",
    "ConnectedApp",
    "FailureKind",
    "FailurePlan",
    "Knobs",
    "RecordedRequest",
    "SandboxHandle",
    "SandboxState",
    "SandboxUser",
    "case_safe_suffix",
    "create_sandbox_app",
    "demo_account_fields",
    "normalize_id",
    "run_sandbox",
    "running_sandbox",
    "serve_sandbox",
    "to_18",
]
