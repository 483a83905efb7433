"""SOQL through /query: the subset, its literal escapes and Salesforce's error messages."""

from __future__ import annotations

import re

import httpx
import pytest

from callbridge.sandbox import SandboxState

V45 = "/services/data/v45.0"


async def query(client: httpx.AsyncClient, auth: dict[str, str], soql: str) -> httpx.Response:
    return await client.get(f"{V45}/query", params={"q": soql}, headers=auth)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["Name"] for r in response.json()["records"]]


@pytest.mark.parametrize(
    "raw_query",
    [
        "q=SELECT+Id,Name+FROM+Contact+WHERE+Phone+=+'07075373713'",
        "q=SELECT%20Id,Name%20FROM%20Contact%20WHERE%20Phone%20=%20%2707075373713%27",
        "q=+SELECT+Id,Name+FROM+Contact+WHERE+Phone+%3D%2707075373713%27",
    ],
)
async def test_seed_000_contact_lookup(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState, raw_query: str
) -> None:
    response = await client.get(f"{V45}/query?{raw_query}", headers=auth)

    assert response.status_code == 200
    contact_type = state.schema.get("Contact")
    assert contact_type is not None
    contact = next(r for r in state.live_records(contact_type) if r["Phone"] == "07075373713")
    assert response.text == (
        '{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Contact","url":'
        f'"{V45}/sobjects/Contact/{contact["Id"]}"}},"Id":"{contact["Id"]}",'
        '"Name":"佐藤 花子"}]}'
    )
    match = re.search(r'"Id":"(?P<CONTACT_ID>.*)",', response.text)
    assert match and match.group("CONTACT_ID") == contact["Id"]


async def test_no_match_is_an_empty_result(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await query(client, auth, "SELECT Id FROM Contact WHERE Phone = '0000'")

    assert response.text == '{"totalSize":0,"done":true,"records":[]}'


async def test_string_equality_is_case_insensitive_and_exact(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    found = await query(client, auth, "select name from account where name = 'cdf 株式会社'")
    formatted = await query(client, auth, "SELECT Name FROM Contact WHERE Phone = '070-7537-3713'")

    assert names(found) == ["CDF 株式会社"]
    assert names(formatted) == ["田中 健一"]


@pytest.mark.parametrize(
    ("literal", "stored"),
    [
        (r"'O\'Brien'", "O'Brien"),
        (r"'back\\slash'", "back\\slash"),
        (r"'two\nlines'", "two\nlines"),
        (r"'tab\there'", "tab\there"),
        (r"'quote\"d'", 'quote"d'),
        (r"'\u3042\u3044'", "あい"),
    ],
)
async def test_string_literal_escapes(
    client: httpx.AsyncClient, auth: dict[str, str], literal: str, stored: str
) -> None:
    await client.post(f"{V45}/sobjects/Account", headers=auth, json={"Name": stored, "Phone": "0"})

    response = await query(client, auth, f"SELECT Name FROM Account WHERE Name = {literal}")

    assert names(response) == [stored]


async def test_an_unknown_escape_is_malformed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await query(client, auth, r"SELECT Id FROM Account WHERE Name = 'a\qb'")

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "\nSELECT Id FROM Account WHERE Name = 'a\\qb'\n"
            "                                    ^\n"
            "ERROR at Row:1:Column:37\n"
            "Invalid string literal 'a\\qb'. Illegal character sequence '\\q' in "
            "string literal.",
            "errorCode": "MALFORMED_QUERY",
        }
    ]


async def test_like_escapes_are_only_valid_in_like(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.post(f"{V45}/sobjects/Account", headers=auth, json={"Name": "100%_done"})
    await client.post(f"{V45}/sobjects/Account", headers=auth, json={"Name": "100xxdone"})

    escaped = await query(client, auth, r"SELECT Name FROM Account WHERE Name LIKE '100\%\_%'")
    wildcard = await query(client, auth, "SELECT Name FROM Account WHERE Name LIKE '100%'")
    outside = await query(client, auth, r"SELECT Name FROM Account WHERE Name = '100\%'")

    assert names(escaped) == ["100%_done"]
    assert sorted(names(wildcard)) == ["100%_done", "100xxdone"]
    assert outside.status_code == 400
    assert outside.json()[0]["errorCode"] == "MALFORMED_QUERY"


async def test_where_with_and_or_parentheses_order_limit(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await query(
        client,
        auth,
        "SELECT Name FROM Contact WHERE (Phone LIKE '070%' OR MobilePhone != null) "
        "AND Name != '伊藤 翔' ORDER BY Name DESC LIMIT 2",
    )

    assert names(response) == ["高橋 由美", "鈴木 一郎"]


async def test_mixing_and_with_or_needs_parentheses(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await query(
        client, auth, "SELECT Id FROM Contact WHERE Phone = 'a' AND Phone = 'b' OR Phone = 'c'"
    )

    assert response.status_code == 400
    body = response.json()[0]
    assert body["errorCode"] == "MALFORMED_QUERY"
    assert body["message"].endswith("unexpected token: 'OR'")


async def test_in_not_and_relationships(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await query(
        client,
        auth,
        "SELECT Name, Account.Name FROM Contact WHERE Account.Name IN ('CDF 株式会社') "
        "AND NOT Name = '田中 健一'",
    )

    record = response.json()["records"][0]
    assert response.json()["totalSize"] == 1
    assert record["Name"] == "佐藤 花子"
    assert record["Account"]["attributes"]["type"] == "Account"
    assert record["Account"]["Name"] == "CDF 株式会社"


async def test_null_relationship_renders_null(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.post(f"{V45}/sobjects/Contact", headers=auth, json={"LastName": "孤独"})

    response = await query(client, auth, "SELECT Account.Name FROM Contact WHERE LastName = '孤独'")

    assert response.json()["records"][0]["Account"] is None


async def test_ids_compare_in_15_or_18_characters(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    account = next(iter(state.records["Account"].values()))
    short = await query(client, auth, f"SELECT Name FROM Account WHERE Id = '{account['Id'][:15]}'")
    bad = await query(client, auth, "SELECT Name FROM Account WHERE Id = 'nope'")

    assert names(short) == [account["Name"]]
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"
    assert bad.json()[0]["message"].endswith("invalid ID field: nope")


async def test_count(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await query(client, auth, "SELECT COUNT() FROM Account")

    assert response.text == '{"totalSize":5,"done":true,"records":[]}'


async def test_booleans_numbers_and_dates(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    closed = await query(client, auth, "SELECT Subject FROM Case WHERE IsClosed = true")
    long_calls = await query(
        client, auth, "SELECT Subject FROM Task WHERE CallDurationInSeconds > 100"
    )
    due = await query(client, auth, "SELECT Name FROM Opportunity WHERE CloseDate >= 2026-01-01")
    quoted = await query(client, auth, "SELECT Name FROM Opportunity WHERE CloseDate = '2026'")

    assert [r["Subject"] for r in closed.json()["records"]] == ["製品の初期不良"]
    assert long_calls.json()["totalSize"] == 1
    assert due.json()["totalSize"] == 1
    assert quoted.json()[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


@pytest.mark.parametrize(
    ("soql", "code", "ending"),
    [
        (
            "SELECT Id, Foo FROM Contact",
            "INVALID_FIELD",
            "No such column 'Foo' on entity 'Contact'. If you are attempting to use a custom "
            "field, be sure to append the '__c' after the custom field name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        ),
        (
            "SELECT Id FROM Contacts",
            "INVALID_TYPE",
            "sObject type 'Contacts' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
        ),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Contact LIMIT x", "MALFORMED_QUERY", "unexpected token: 'x'"),
        (
            "SELECT Id FROM Contact WHERE Phone = 07075373713",
            "INVALID_QUERY_FILTER_OPERATOR",
            "value of filter criterion for field 'Phone' must be of type string and should be "
            "enclosed in quotes",
        ),
        ("SELECT Id FROM Contact WHERE Phone = 'x", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        (
            "SELECT Id FROM Contact WHERE Foo.Name = 'x'",
            "INVALID_FIELD",
            "Didn't understand relationship 'Foo' in field path. If you are attempting to use a "
            "custom relationship, be sure to append the '__r' after the custom relationship "
            "name. Please reference your WSDL or the describe call for the appropriate names.",
        ),
    ],
)
async def test_query_errors(
    client: httpx.AsyncClient, auth: dict[str, str], soql: str, code: str, ending: str
) -> None:
    response = await query(client, auth, soql)

    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == code
    assert error["message"].startswith("\n" + soql.split("\n")[0])
    assert re.search(r"\nERROR at Row:1:Column:\d+\n", error["message"])
    assert error["message"].endswith("\n" + ending)


async def test_caret_points_at_the_column(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await query(client, auth, "SELECT Id, Foo FROM Contact")

    assert response.json()[0]["message"].startswith(
        "\nSELECT Id, Foo FROM Contact\n           ^\nERROR at Row:1:Column:12\n"
    )


async def test_missing_query_string(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(f"{V45}/query", headers=auth)

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


async def test_large_results_come_in_batches(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    lead_type = state.schema.get("Lead")
    assert lead_type is not None
    from callbridge.sandbox.records import create_record

    user_id = next(iter(state.users.values())).user_id
    for number in range(450):
        create_record(
            state, lead_type, {"LastName": f"L{number:03d}", "Company": "bulk"}, user_id=user_id
        )
    headers = auth | {"Sforce-Query-Options": "batchSize=200"}

    first = await client.get(
        f"{V45}/query",
        params={"q": "SELECT Name FROM Lead WHERE Company = 'bulk' ORDER BY Name"},
        headers=headers,
    )
    body = first.json()
    assert (body["totalSize"], body["done"], len(body["records"])) == (450, False, 200)
    assert list(body) == ["totalSize", "done", "nextRecordsUrl", "records"]
    seen = [r["Name"] for r in body["records"]]
    while not body["done"]:
        body = (await client.get(body["nextRecordsUrl"], headers=headers)).json()
        seen += [r["Name"] for r in body["records"]]
    assert seen == [f"L{n:03d}" for n in range(450)]
    assert "nextRecordsUrl" not in body


async def test_query_all_includes_deleted_records(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = (
        await client.post(
            f"{V45}/sobjects/Lead", headers=auth, json={"LastName": "消去", "Company": "x"}
        )
    ).json()
    await client.delete(f"{V45}/sobjects/Lead/{created['id']}", headers=auth)
    soql = "SELECT Id, IsDeleted FROM Lead WHERE LastName = '消去'"

    live = await client.get(f"{V45}/query", params={"q": soql}, headers=auth)
    everything = await client.get(f"{V45}/queryAll", params={"q": soql}, headers=auth)

    assert live.json()["totalSize"] == 0
    assert everything.json()["records"][0]["IsDeleted"] is True


async def test_an_empty_string_matches_missing_values(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # What a call from an unknown number produces: WHERE Phone = ''.
    empty = await query(client, auth, "SELECT Name FROM Contact WHERE Phone = ''")
    not_empty = await query(client, auth, "SELECT Name FROM Contact WHERE Phone != ''")

    assert names(empty) == ["伊藤 翔"]
    assert "伊藤 翔" not in names(not_empty)
