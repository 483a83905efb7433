"""Who may play: anonymous, the agent of the call, another agent, a supervisor and an
admin, under each playback_auth mode (url / admin / signed), for the page and the audio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from callbridge.kit.time import utcnow
from callbridge.models import AuditEntry
from callbridge.recordings.links import derive_link_key, sign_monitor_link
from tests.conftest import TEST_SECRET
from tests.helpers import bearer, make_token, make_user, sign_in
from tests.recordings.support import add_call, set_settings, upload, wav_bytes

CALL = "1700000000.42"
PEOPLE = {
    "agent_of_call": ("agent", "1001"),
    "other_agent": ("agent", "2002"),
    "agent_without_id": ("agent", None),
    "supervisor": ("supervisor", None),
    "admin": ("admin", None),
}
OK, LOGIN, FORBIDDEN = "ok", "login", "forbidden"
EXPECTED = {
    "url": {
        "anonymous": LOGIN,
        "agent_of_call": OK,
        "other_agent": OK,
        "agent_without_id": OK,
        "supervisor": OK,
        "admin": OK,
    },
    "admin": {
        "anonymous": LOGIN,
        "agent_of_call": OK,
        "other_agent": FORBIDDEN,
        "agent_without_id": FORBIDDEN,
        "supervisor": OK,
        "admin": OK,
    },
    # signed mode without a signature in the link: the admin rules apply.
    "signed": {
        "anonymous": LOGIN,
        "agent_of_call": OK,
        "other_agent": FORBIDDEN,
        "agent_without_id": FORBIDDEN,
        "supervisor": OK,
        "admin": OK,
    },
}


@pytest.fixture
async def setup(app, client: httpx.AsyncClient) -> bytes:
    await add_call(app, CALL, unique_id="u-42", agents=("1001",))
    data = wav_bytes(0.5)
    token = await make_token(app, scope="pbx")
    assert (await upload(client, token, CALL, data)).status_code == 201
    return data


class People:
    """One browser per person, created and signed in on first use (hashing is slow)."""

    def __init__(self, app) -> None:
        self.app = app
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def __call__(self, who: str) -> httpx.AsyncClient:
        if who not in self.clients:
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
            )
            if who != "anonymous":
                role, agent_id = PEOPLE[who]
                await make_user(self.app, who, role=role, agent_id=agent_id)
                assert (await sign_in(http, who)).status_code == 303
            self.clients[who] = http
        return self.clients[who]

    async def everyone(self) -> dict[str, httpx.AsyncClient]:
        return {who: await self(who) for who in ("anonymous", *PEOPLE)}


@pytest.fixture
async def people(app, setup) -> AsyncIterator[People]:
    crowd = People(app)
    yield crowd
    for http in crowd.clients.values():
        await http.aclose()


def _check(expected: str, page: httpx.Response, audio: httpx.Response, data: bytes) -> None:
    if expected == OK:
        assert page.status_code == 200, page.text
        assert audio.status_code == 200
        assert audio.content == data
    elif expected == LOGIN:
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=%2Fmonitor_link%2F")
        assert audio.status_code == 401
    else:
        assert page.status_code == 403
        assert audio.status_code == 403


async def test_matrix_without_signature(app, setup, people) -> None:
    # One test for the whole matrix: signing six people in is the slow part.
    for mode, expected in EXPECTED.items():
        await set_settings(app, playback_auth=mode)
        for who, http in (await people.everyone()).items():
            page = await http.get(f"/monitor_link/{CALL}", headers={"Accept-Language": "en"})
            audio = await http.get(f"/monitor_link/{CALL}/audio")
            _check(expected[who], page, audio, setup)


async def test_forbidden_page_says_why(app, setup, people) -> None:
    await set_settings(app, playback_auth="admin")
    other, no_id = await people("other_agent"), await people("agent_without_id")
    page = await other.get(f"/monitor_link/{CALL}", headers={"Accept-Language": "en"})
    assert page.status_code == 403
    assert "agent ID 2002 is not among them" in page.text
    page = await no_id.get(f"/monitor_link/{CALL}", headers={"Accept-Language": "ja"})
    assert "エージェントIDが設定されていない" in page.text
    async with app.state.runtime.sessionmaker() as session:
        denied = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.denied"))
        )
    assert [d.actor for d in denied] == ["user:other_agent", "user:agent_without_id"]


async def test_unique_id_link_checks_the_same_call(app, setup, people) -> None:
    await set_settings(app, playback_auth="admin")
    assert (await (await people("agent_of_call")).get("/monitor_link/u-42")).status_code == 200
    assert (await (await people("other_agent")).get("/monitor_link/u-42")).status_code == 403


async def test_sign_in_returns_to_the_link(app, setup) -> None:
    await make_user(app, "agent_of_call", role="agent", agent_id="1001")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        first = await http.get(f"/monitor_link/{CALL}")
        assert first.status_code == 303
        next_path = httpx.URL(first.headers["location"]).params["next"]
        assert next_path == f"/monitor_link/{CALL}"
        signed_in = await sign_in(http, "agent_of_call", next=next_path)
        assert signed_in.headers["location"] == f"/monitor_link/{CALL}"
        assert (await http.get(signed_in.headers["location"])).status_code == 200


async def _signed_link(app, client: httpx.AsyncClient, ref: str = CALL, **extra) -> str:
    admin = await make_token(app, scope="admin", name=f"links-{ref}-{len(extra)}")
    response = await client.post(
        "/api/v1/recordings/monitor-links", json={"id": ref, **extra}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "signed"
    url = urlsplit(body["url"])
    return f"{url.path}?{url.query}"


async def test_signed_links_play_for_anyone(app, client, setup, people) -> None:
    await set_settings(app, playback_auth="signed")
    link = await _signed_link(app, client)
    assert link.startswith(f"/monitor_link/{CALL}?exp=")
    path, _, query = link.partition("?")
    for who, http in (await people.everyone()).items():
        page = await http.get(link)
        assert page.status_code == 200, (who, page.text)
        assert f'src="{path}/audio?{query}"' in page.text.replace("&amp;", "&")
        audio = await http.get(f"{path}/audio?{query}")
        assert audio.status_code == 200
        assert audio.content == setup
    async with app.state.runtime.sessionmaker() as session:
        plays = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.play"))
        )
    assert plays[0].actor == "signed-link@127.0.0.1"
    assert plays[0].details["via_link"] is True


async def test_signed_link_for_the_unique_id(app, client, setup, people) -> None:
    await set_settings(app, playback_auth="signed")
    anonymous = await people("anonymous")
    link = await _signed_link(app, client, "u-42")
    assert (await anonymous.get(link)).status_code == 200
    # The signature covers the ID: moved to another call it fails.
    forged = link.replace("/monitor_link/u-42", f"/monitor_link/{CALL}")
    page = await anonymous.get(forged, headers={"Accept-Language": "en"})
    assert page.status_code == 403
    assert "signature does not match" in page.text


async def test_expired_and_revoked_signed_links(app, client, setup, people) -> None:
    await set_settings(app, playback_auth="signed")
    anonymous = await people("anonymous")
    key = derive_link_key(TEST_SECRET, 1)
    expired = sign_monitor_link("http://testserver/", CALL, key, utcnow() - timedelta(seconds=1))
    expired_path = expired.removeprefix("http://testserver")
    page = await anonymous.get(expired_path, headers={"Accept-Language": "en"})
    assert page.status_code == 403
    assert "This playback link has expired." in page.text
    assert "Sign in with a callbridge account" in page.text
    # An allowed user still plays with an expired link (the admin rules apply).
    assert (await (await people("agent_of_call")).get(expired_path)).status_code == 200
    assert (await (await people("other_agent")).get(expired_path)).status_code == 403

    valid = await _signed_link(app, client, ttl_seconds=3600)
    assert (await anonymous.get(valid)).status_code == 200
    admin = await make_token(app, scope="admin", name="rotator")
    rotated = await client.post("/api/v1/recordings/link-key/rotate", headers=bearer(admin))
    assert rotated.json()["generation"] == 2
    revoked = await anonymous.get(valid, headers={"Accept-Language": "en"})
    assert revoked.status_code == 403
    assert "was revoked" in revoked.text
    path, _, query = valid.partition("?")
    assert (await anonymous.get(f"{path}/audio?{query}")).status_code == 403
    # A link signed after the rotation works again.
    fresh = await _signed_link(app, client)
    assert "kid=2" in fresh
    assert (await anonymous.get(fresh)).status_code == 200


async def test_signed_links_mean_nothing_in_other_modes(app, client, setup, people) -> None:
    await set_settings(app, playback_auth="signed")
    link = await _signed_link(app, client)
    await set_settings(app, playback_auth="admin")
    assert (await (await people("anonymous")).get(link)).status_code == 303
    admin = await make_token(app, scope="admin", name="plain")
    plain = await client.post(
        "/api/v1/recordings/monitor-links", json={"id": CALL}, headers=bearer(admin)
    )
    assert plain.json() == {
        "url": f"http://127.0.0.1:8000/monitor_link/{CALL}",
        "mode": "admin",
        "expires_at": None,
    }
