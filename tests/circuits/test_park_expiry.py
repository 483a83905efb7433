"""Parking ends after CALLBRIDGE_PARK_HOURS with a failed execution that says why
(issue 22 §1); here the limit is a few seconds."""

from __future__ import annotations

import pytest

from callbridge.settings import Settings
from tests.call_actions.conftest import EXAMPLE_1, Live
from tests.circuits.conftest import PUBLIC_URL
from tests.circuits.test_outage_e2e import TEL

pytestmark = pytest.mark.e2e

PARK_HOURS = 2 / 3600  # two seconds


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL, "park_hours": PARK_HOURS})


async def test_parking_ends_with_a_failed_execution_saying_why(connected: Live) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    live.sandbox.knobs.fail_fraction(1.0, "unavailable", target="all")
    await live.event(event="queue", call_id="expire-1", tel=TEL)
    call = await live.call("expire-1")  # settles once parking has ended
    assert call["status"] == "error"
    [execution] = call["executions"]
    assert execution["error"]["kind"] == "parked"
    message = execution["error"]["message"]
    assert message.startswith(
        f"not sent: the CRM did not process this call's requests for {PARK_HOURS:g} h "
        "(parked since "
    )
    assert "CALLBRIDGE_PARK_HOURS); last error: " in message
    event = call["events"][0]
    assert event["status"] == "done" and event["parked_at"] is not None
    assert event["parked_for"] is None
