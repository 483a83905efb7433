"""The sandbox over a real loopback socket, as end-to-end tests and benchmarks use it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from callbridge.sandbox import SandboxHandle, running_sandbox

from .conftest import password_form


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


async def test_seed_000_call_actions_and_ivr_over_http(sandbox: SandboxHandle) -> None:
    sandbox.state.clear_request_log()
    async with httpx.AsyncClient(timeout=5) as http:
        token = (
            await http.post(sandbox.url("/services/oauth2/token"), data=password_form())
        ).json()
        instance = token["instance_url"]
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert instance == sandbox.base_url

        # Example 1: the contact by the caller's number.
        queried = await http.get(
            f"{instance}/services/data/v45.0/query?q=%20SELECT+Id,Name%20FROM%20Contact%20"
            "WHERE%20Phone%20=%2707075373713%27",
            headers=headers,
        )
        contact_id = re.search(r'"Id":"(?P<CONTACT_ID>.*)",', queried.text)
        assert contact_id is not None

        # Example 2: a case for that contact.
        created = await http.post(
            f"{instance}/services/data/v45.0/sobjects/case/",
            headers=headers | {"Content-Type": "application/json"},
            content=f'{{"Origin": "Phone","ContactId":"{contact_id["CONTACT_ID"]}"}}',
        )
        case_id = re.search(r'"id":"(?P<CASE_ID>.*)",', created.text)
        assert created.status_code == 201 and case_id is not None

        # Example 3: on disconnect, the playback link on the case.
        updated = await http.patch(
            f"{instance}/services/data/v45.0/sobjects/case/{case_id['CASE_ID']}",
            headers=headers | {"Content-Type": "application/json"},
            content='{"Origin": "Phone","Subject":"コールセンターへの着信です ","ContactId":"'
            + contact_id["CONTACT_ID"]
            + '","Description": "https://cb.example.jp/monitor_link/1700000000.42"}',
        )
        assert updated.status_code == 204

        # IVR (section 3): the company by the caller's number.
        searched = await http.get(
            f"{instance}/services/data/v45.0/search?q=FIND%20%7B07075373713%7D%20IN%20PHONE"
            "%20FIELDS%20RETURNING%20Account(Id,%20Name,%20Phone)",
            headers=headers,
        )
        name = re.search(r'"Name":"(?P<NAME>.*)",', searched.text)
        assert name is not None and name["NAME"] == "CDF 株式会社"

    found = sandbox.state.find(case_id["CASE_ID"])
    assert found is not None
    case = found[1]
    assert case["Description"] == "https://cb.example.jp/monitor_link/1700000000.42"
    assert case["AccountId"] is not None  # filled from the contact, as Salesforce does
    log = sandbox.state.request_log("rest")
    assert [(r.method, r.status) for r in log] == [
        ("GET", 200),
        ("POST", 201),
        ("PATCH", 204),
        ("GET", 200),
    ]
    assert log[2].raw_path == f"/services/data/v45.0/sobjects/case/{case_id['CASE_ID']}"
    assert log[1].header("content-type") == "application/json"


def test_a_hang_outlasts_the_client_timeout(sandbox: SandboxHandle) -> None:
    sandbox.knobs.hang_seconds = 60
    sandbox.knobs.fail_next(1, "hang")
    headers = {"Authorization": f"Bearer {sandbox.token()}"}

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(sandbox.url("/services/data/v45.0/limits"), headers=headers, timeout=0.2)

    answer = httpx.get(sandbox.url("/services/data/v45.0/limits"), headers=headers, timeout=5)
    assert answer.status_code == 200


def test_two_sandboxes_run_side_by_side(sandbox: SandboxHandle) -> None:
    with running_sandbox() as other:
        assert other.base_url != sandbox.base_url
        assert httpx.get(other.url("/services/data")).status_code == 200
    assert other.state is not sandbox.state
