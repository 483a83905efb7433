"""The outage tests run callbridge and the sandbox Salesforce on loopback ports, as the
call-action end-to-end tests do (their fixtures are reused)."""

from __future__ import annotations

import pytest

from callbridge.settings import Settings
from tests.call_actions.conftest import PUBLIC_URL, connected, live, sandbox

__all__ = ["connected", "live", "sandbox"]


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    # Resumption paced fast enough for a test's few dozen calls.
    return settings.model_copy(update={"public_url": PUBLIC_URL, "resume_calls_per_second": 500.0})
