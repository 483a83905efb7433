"""Secrets never appear in what the outbound path returns for display or logs."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from callbridge.outbound import BasicAuth, BearerAuth, OAuthAuth, OutboundRequest, RequestView
from callbridge.outbound.redaction import is_sensitive_name
from tests.httpx2_mock import mocked_crm
from tests.outbound.fakes import MemoryTokenSource, connected, make_outbound

API = "https://acme.my.salesforce.com/services/data/v62.0"


@pytest.fixture
def crm() -> respx.MockRouter:
    with mocked_crm() as router:
        yield router


def everything(result: object) -> str:
    request = result.request.as_dict()  # type: ignore[attr-defined]
    response = result.response_record()  # type: ignore[attr-defined]
    attempts = [a.as_dict() for a in result.attempts]  # type: ignore[attr-defined]
    return json.dumps([request, response, attempts, repr(result)], ensure_ascii=False)


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        (BasicAuth("operator", "s3cret-pass"), "s3cret-pass"),
        (BearerAuth("static-bearer-token"), "static-bearer-token"),
        (OAuthAuth(1), "00Dx0000000BV7z!AR8AQ"),
    ],
)
async def test_credentials_never_shown(crm: respx.MockRouter, auth: object, secret: str) -> None:
    route = crm.get(f"{API}/query").mock(
        side_effect=lambda request: httpx.Response(
            500, text=f"echo {request.headers['authorization']}"
        )
    )
    source = MemoryTokenSource(connected("00Dx0000000BV7z!AR8AQ"))
    async with make_outbound(source) as outbound:
        result = await outbound.send(
            OutboundRequest(
                "GET",
                f"{API}/query",
                auth=auth,
                headers=[("Accept", "application/json")],  # type: ignore[arg-type]
            )
        )
    assert route.called
    shown = everything(result)
    assert secret not in shown
    assert "[redacted]" in shown
    assert result.request.as_dict()["headers"]["Authorization"].endswith(" [redacted]")
    if isinstance(auth, BasicAuth):
        import base64

        assert base64.b64encode(b"operator:s3cret-pass").decode() not in shown


def test_sensitive_fields_in_urls_and_bodies() -> None:
    view = RequestView.build(
        "POST",
        "https://login.salesforce.com/services/oauth2/token?client_secret=abc&x=1",
        [("X-Api-Key", "k-123"), ("Cookie", "sid=1"), ("Content-Type", "text/plain")],
        "grant_type=password&username=u%40example.com&password=hunter2XYZ&client_id=cid",
    )
    shown = json.dumps(view.as_dict())
    for secret in ("abc", "k-123", "sid=1", "hunter2XYZ"):
        assert secret not in shown
    assert "client_id=cid" in shown and "x=1" in shown and "text/plain" in shown


def test_json_body_fields_masked() -> None:
    view = RequestView.build(
        "POST",
        "https://crm.example.com/api",
        [],
        '{"user":"a","password":"p\\"w1","nested":{"access_token":"tok"}}',
    )
    assert view.body == (
        '{"user":"a","password":"[redacted]","nested":{"access_token":"[redacted]"}}'
    )


@pytest.mark.parametrize(
    "field",
    ["Access_TOKEN", "to\u212aen", "\u017fecret", "s\u0131gnature", "ap\u0131_key", "SessionId"],
)
@pytest.mark.parametrize("form", [False, True])
def test_fields_the_case_insensitive_patterns_match_are_masked(field: str, form: bool) -> None:
    """Whatever IGNORECASE takes for a sensitive word (the Kelvin sign for k, the long s,
    the dotless i) is masked, ASCII body or not."""
    body = f"x=日本&{field}=v4lue-1" if form else f'{{"名前":"x","{field}":"v4lue-1"}}'
    for text in (body, body.replace("日本", "jp").replace("名前", "name")):
        view = RequestView.build("POST", "https://crm.example.com/api", [], text)
        assert view.body is not None and "v4lue-1" not in view.body, text


async def test_token_in_response_body_masked(crm: respx.MockRouter) -> None:
    crm.post("https://crm.example.com/oauth/token").mock(
        return_value=httpx.Response(
            200,
            json={"access_token": "leaked-access", "instance_url": "https://x"},
            headers={"Set-Cookie": "BrowserId=abc"},
        )
    )
    async with make_outbound() as outbound:
        result = await outbound.send(
            OutboundRequest("POST", "https://crm.example.com/oauth/token", body="grant=1")
        )
    record = result.response_record()
    assert record is not None
    assert "leaked-access" not in json.dumps(record)
    headers = {name.lower(): value for name, value in record["headers"].items()}
    assert headers["set-cookie"] == "[redacted]"
    # The raw text stays available to extraction patterns.
    assert "leaked-access" in result.text


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["q", "token", "access_token", "Pass%77ord", "api+key", "a=b", ""])
            | st.text(alphabet="abcdefgPSWRDTOKENsecret_%+=;", max_size=12),
            st.text(alphabet="abc%20+&=;FIND{}", max_size=12),
        ),
        max_size=5,
    ),
    st.sampled_from(["&", "&&", ";"]),
)
def test_a_url_is_scrubbed_when_parse_qsl_finds_a_sensitive_name(
    pairs: list[tuple[str, str]], separator: str
) -> None:
    """The URL scrubber's quick check (names only, the values left encoded) decides as a
    check over every name parse_qsl gives would: such a URL is rewritten with the values
    masked, any other is kept as it was."""
    query = separator.join(f"{name}={value}" if value else name for name, value in pairs)
    url = f"https://acme.my.salesforce.com/services/data?{query}"
    sensitive = any(is_sensitive_name(k) for k, _ in parse_qsl(query, keep_blank_values=True))
    scrubbed = RequestView.build("GET", url, [], None).url
    assert (scrubbed != url) is sensitive
