"""SOSL through /search (and parameterizedSearch): phone matching, escapes, shapes by version."""

from __future__ import annotations

import re

import httpx
import pytest

from callbridge.sandbox import SandboxState

V45 = "/services/data/v45.0"
SEED_SEARCH = "FIND {07075373713} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"


async def search(
    client: httpx.AsyncClient, auth: dict[str, str], sosl: str, version: str = "45.0"
) -> httpx.Response:
    return await client.get(f"/services/data/v{version}/search/", params={"q": sosl}, headers=auth)


def found(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.text
    return [(r["attributes"]["type"], r["Name"]) for r in response.json()["searchRecords"]]


async def test_seed_000_search_reproduces_the_manuals_response(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    response = await search(client, auth, SEED_SEARCH)

    account = next(r for r in state.records["Account"].values() if r["Name"] == "CDF 株式会社")
    assert response.text == (
        '{"searchRecords":[{"attributes":{"type":"Account","url":'
        f'"{V45}/sobjects/Account/{account["Id"]}"}},"Id":"{account["Id"]}",'
        '"Name":"CDF 株式会社","Phone":"07075373713"}]}'
    )
    # Seed 000 §3.2: priority 2 extracts the company name; priority 1 does not match.
    match = re.search(r'"Name":"(?P<NAME>.*)",', response.text)
    assert match and match.group("NAME") == "CDF 株式会社"
    assert not re.search(r'"searchRecords":\[\]', response.text)


async def test_seed_000_search_with_the_url_as_an_admin_pastes_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    url = (
        f"{V45}/search?q=FIND%20%7B07075373713%7D%20IN%20PHONE%20FIELDS%20RETURNING%20"
        "Account(Id,%20Name,%20Phone)"
    )

    response = await client.get(url, headers=auth)

    assert found(response) == [("Account", "CDF 株式会社")]


async def test_no_match_gives_the_empty_shape_the_manual_tests_for(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await search(client, auth, SEED_SEARCH.replace("07075373713", "0399999999"))

    assert response.text == '{"searchRecords":[]}'
    assert re.search(r'"searchRecords":\[\]', response.text)


@pytest.mark.parametrize(
    "term",
    [
        "07075373713",
        "070-7537-3713",
        r"\+81 70 7537 3713",
        "+817075373713".replace("+", r"\+"),
        "7075373713",
    ],
)
async def test_phone_search_matches_every_format(
    client: httpx.AsyncClient, auth: dict[str, str], term: str
) -> None:
    sosl = (
        f"FIND {{{term}}} IN PHONE FIELDS RETURNING Account(Name), "
        "Contact(Name, Phone), Lead(Name, Phone)"
    )

    response = await search(client, auth, sosl)

    assert found(response) == [
        ("Account", "CDF 株式会社"),
        ("Contact", "佐藤 花子"),
        ("Contact", "田中 健一"),
        ("Lead", "渡辺 美咲"),
    ]
    phones = [r.get("Phone") for r in response.json()["searchRecords"][1:]]
    assert phones == ["07075373713", "070-7537-3713", "+81 70 7537 3713"]


async def test_phone_search_finds_mobile_numbers_too(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await search(
        client, auth, "FIND {090-1234-5678} IN PHONE FIELDS RETURNING Contact(Name, MobilePhone)"
    )

    assert found(response) == [("Contact", "鈴木 一郎")]


async def test_before_v37_the_answer_is_a_bare_array(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await search(client, auth, SEED_SEARCH, version="36.0")

    body = response.json()
    assert isinstance(body, list)
    assert body[0]["Name"] == "CDF 株式会社"
    assert response.text.startswith('[{"attributes":')


async def test_all_fields_and_name_search(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    by_name = await search(
        client, auth, "FIND {さくら} IN NAME FIELDS RETURNING Account(Name), Lead(Name)"
    )
    everywhere = await search(client, auth, "FIND {cdf} RETURNING Account(Name), Contact(Name)")

    assert found(by_name) == [("Account", "株式会社さくら商事"), ("Lead", "中村 さくら")]
    assert found(everywhere) == [
        ("Account", "CDF 株式会社"),
        ("Contact", "佐藤 花子"),
        ("Contact", "田中 健一"),
    ]


async def test_returning_without_fields_gives_ids(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await search(client, auth, "FIND {07075373713} IN PHONE FIELDS RETURNING Account")

    [record] = response.json()["searchRecords"]
    assert list(record) == ["attributes", "Id"]


async def test_returning_where_order_and_limits(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    filtered = await search(
        client,
        auth,
        "FIND {07075373713} IN PHONE FIELDS RETURNING Contact(Name WHERE Title = '営業担当')",
    )
    limited = await search(
        client,
        auth,
        "FIND {07075373713} IN PHONE FIELDS RETURNING Contact(Name ORDER BY Name DESC LIMIT 1),"
        " Lead(Name) LIMIT 1",
    )

    assert found(filtered) == [("Contact", "田中 健一")]
    assert found(limited) == [("Contact", "田中 健一")]


async def test_escaped_reserved_characters_are_literal(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.post(
        f"{V45}/sobjects/Account",
        headers=auth,
        json={"Name": "A&B (Tokyo) {1}", "Phone": "0312345678"},
    )

    response = await search(client, auth, r"FIND {A\&B \(Tokyo\) \{1\}} RETURNING Account(Name)")

    assert found(response) == [("Account", "A&B (Tokyo) {1}")]


async def test_phrases_and_operators(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    phrase = await search(client, auth, 'FIND {"CDF 株式会社"} RETURNING Account(Name)')
    either = await search(client, auth, "FIND {さくら OR なにわ} RETURNING Account(Name)")
    but_not = await search(client, auth, "FIND {株式会社 AND NOT CDF} RETURNING Account(Name)")

    assert found(phrase) == [("Account", "CDF 株式会社")]
    assert [n for _, n in found(either)] == ["株式会社さくら商事", "なにわ精機株式会社"]
    assert "CDF 株式会社" not in [n for _, n in found(but_not)]


@pytest.mark.parametrize(
    ("sosl", "message"),
    [
        (
            "FIND 07075373713 IN PHONE FIELDS",
            "No search term found. The search term must be enclosed in braces.",
        ),
        (
            "FIND {07075373713 IN PHONE FIELDS",
            "No search term found. The search term must be enclosed in braces.",
        ),
        ("FIND {a}", "search term must be longer than one character"),
    ],
)
async def test_malformed_search(
    client: httpx.AsyncClient, auth: dict[str, str], sosl: str, message: str
) -> None:
    response = await search(client, auth, sosl)

    assert response.status_code == 400
    assert response.json() == [{"message": message, "errorCode": "MALFORMED_SEARCH"}]


async def test_unescaped_brace_ends_the_term_early(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await search(client, auth, "FIND {07}075373713} IN PHONE FIELDS")

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_SEARCH"


async def test_unknown_object_in_returning(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await search(client, auth, "FIND {07075373713} RETURNING Acount(Name)")

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_TYPE"


async def test_parameterized_search_get_and_post(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    by_get = await client.get(
        f"{V45}/parameterizedSearch",
        params={
            "q": "07075373713",
            "in": "PHONE",
            "sobject": "Account",
            "Account.fields": "Id,Name,Phone",
        },
        headers=auth,
    )
    by_post = await client.post(
        f"{V45}/parameterizedSearch",
        json={
            "q": "07075373713",
            "in": "PHONE",
            "sobjects": [{"name": "Lead", "fields": ["Name", "Phone"]}],
        },
        headers=auth,
    )

    assert found(by_get) == [("Account", "CDF 株式会社")]
    assert found(by_post) == [("Lead", "渡辺 美咲")]
