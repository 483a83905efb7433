"""On a call's timeline each request links to what made it: an IVR invocation to the IVR's
page under /ivrs/, a call-action rule's request to the rule's page under /call-actions/."""

from __future__ import annotations

import re

import httpx
import respx
from fastapi import FastAPI

from tests.calls.conftest import post_event, wait_until_processed
from tests.helpers import make_user, sign_in
from tests.ivr.conftest import CRM, create_ivr, flush_logs, simple_ivr

CALL_ID = "1700000000.42"
FOUND = '{"found":true,"name":"CDF 株式会社","id":"0012v00002uhRmWAAU"}'


def execution_links(html: str) -> dict[str, str]:
    """Each execution summary's source and the target of its link."""
    return dict(re.findall(r'<span class="muted">(\w+) <a href="([^"]+)">#\d+</a>', html))


async def test_timeline_links_ivr_invocations_to_the_ivr_page(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    crm.get(f"{CRM}/contact").respond(200, json={"Id": "003A0000001"})
    ivr = await create_ivr(client, admin, simple_ivr())
    rule = await client.post(
        "/api/v1/call-actions",
        json={"event": "queue", "auth_type": "none", "url": CRM + "/contact?tel={TEL}"},
        headers=admin,
    )
    assert rule.status_code == 201, rule.text
    # The IVR's id and the rule's id are the same number: only the path tells them apart.
    assert ivr["id"] == rule.json()["id"]

    invoked = await client.post(
        "/api/v1/ivr/lookup/invoke", json={"call_id": CALL_ID, "tel": "07075373713"}, headers=pbx
    )
    assert invoked.json()["outcome"] == "matched"
    await flush_logs(app)
    await post_event(client, pbx, event="queue", call_id=CALL_ID, tel="07075373713")
    await wait_until_processed(app, 1)

    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    for path in (f"/calls/{CALL_ID}", f"/calls/{CALL_ID}/timeline"):
        page = await client.get(path)
        assert page.status_code == 200
        assert execution_links(page.text) == {
            "ivr": f"/ivrs/{ivr['id']}",
            "call_action": f"/call-actions/{rule.json()['id']}",
        }
    assert (await client.get(f"/ivrs/{ivr['id']}")).status_code == 200
