"""sObject resources: create, get, update, upsert, delete, describe, limits and their errors."""

from __future__ import annotations

import re

import httpx
import pytest

from callbridge.sandbox import SandboxState

V45 = "/services/data/v45.0"


def demo_id(state: SandboxState, sobject: str, **match: str) -> str:
    sobject_type = state.schema.get(sobject)
    assert sobject_type is not None
    for record in state.live_records(sobject_type):
        if all(record.get(k) == v for k, v in match.items()):
            return str(record["Id"])
    raise AssertionError(f"no demo {sobject} with {match}")


async def test_create_answers_compact_json_with_the_new_id(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        f"{V45}/sobjects/Case/", headers=auth, json={"Origin": "Phone", "Subject": "問い合わせ"}
    )

    assert response.status_code == 201
    assert re.fullmatch(
        r'\{"id":"500[0-9A-Za-z]{15}","success":true,"errors":\[\]\}', response.text
    )
    new_id = response.json()["id"]
    assert response.headers["location"] == f"{V45}/sobjects/Case/{new_id}"
    # The manual's extraction pattern (seed 000, example 2) finds exactly the id.
    match = re.search(r'"id":"(?P<CASE_ID>.*)",', response.text)
    assert match and match.group("CASE_ID") == new_id


async def test_sobject_names_in_urls_are_case_insensitive(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await client.post(f"{V45}/sobjects/case/", headers=auth, json={"Origin": "Web"})
    record = await client.get(f"{V45}/sobjects/CASE/{created.json()['id']}", headers=auth)

    assert record.json()["attributes"]["type"] == "Case"


async def test_get_returns_attributes_then_every_field(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    account_id = demo_id(state, "Account", Name="CDF 株式会社")

    response = await client.get(f"{V45}/sobjects/Account/{account_id}", headers=auth)

    body = response.json()
    assert list(body)[:3] == ["attributes", "Id", "IsDeleted"]
    assert body["attributes"] == {"type": "Account", "url": f"{V45}/sobjects/Account/{account_id}"}
    assert body["Name"] == "CDF 株式会社"
    assert '"Name":"CDF 株式会社"' in response.text  # raw UTF-8, not \\u escapes


async def test_get_with_fields_and_a_15_character_id(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    account_id = demo_id(state, "Account", Name="CDF 株式会社")

    response = await client.get(
        f"{V45}/sobjects/Account/{account_id[:15]}", params={"fields": "Name,Phone"}, headers=auth
    )

    assert response.json() == {
        "attributes": {"type": "Account", "url": f"{V45}/sobjects/Account/{account_id}"},
        "Name": "CDF 株式会社",
        "Phone": "07075373713",
        "Id": account_id,
    }


async def test_update_answers_204_and_changes_the_record(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    case_id = demo_id(state, "Case", Subject="請求書の再発行について")

    response = await client.patch(
        f"{V45}/sobjects/case/{case_id}",
        headers=auth,
        json={
            "Origin": "Phone",
            "Subject": "コールセンターへの着信です ",
            "Description": "https://sXXXX.u.biztel.jp:8000/monitor_link/1700000000.42",
        },
    )

    assert response.status_code == 204
    assert response.content == b""
    found = state.find(case_id)
    assert found is not None
    assert found[1]["Subject"] == "コールセンターへの着信です "


async def test_patch_on_the_collection_is_method_not_allowed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # What an empty {RESPONSE_CASE_ID} produces in seed 000 example 3.
    response = await client.patch(f"{V45}/sobjects/case/", headers=auth, json={"Origin": "Phone"})

    assert response.status_code == 405
    assert response.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


async def test_delete_then_get_is_entity_is_deleted(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = (
        await client.post(
            f"{V45}/sobjects/Lead", headers=auth, json={"LastName": "木村", "Company": "木村商店"}
        )
    ).json()

    deleted = await client.delete(f"{V45}/sobjects/Lead/{created['id']}", headers=auth)
    again = await client.get(f"{V45}/sobjects/Lead/{created['id']}", headers=auth)

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert again.json() == [
        {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
    ]


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (
            "/sobjects/Account/001000000000000AAA",
            404,
            [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
        ),
        (
            "/sobjects/Account/abc",
            404,
            [
                {
                    "message": "Provided external ID field does not exist or is not "
                    "accessible: abc",
                    "errorCode": "NOT_FOUND",
                }
            ],
        ),
        (
            "/sobjects/Widget__c/001000000000000AAA",
            404,
            [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
        ),
        (
            "/nothing/here",
            404,
            [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
        ),
    ],
)
async def test_missing_resources(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, status: int, body: object
) -> None:
    response = await client.get(V45 + path, headers=auth)

    assert response.status_code == status
    assert response.json() == body


async def test_required_field_missing(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(f"{V45}/sobjects/Contact", headers=auth, json={"FirstName": "x"})

    assert response.status_code == 400
    assert response.text == (
        '[{"message":"Required fields are missing: [LastName]","errorCode":'
        '"REQUIRED_FIELD_MISSING","fields":["LastName"]}]'
    )


async def test_unknown_field(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        f"{V45}/sobjects/Contact", headers=auth, json={"LastName": "x", "Foo": 1}
    )

    assert response.json() == [
        {"message": "No such column 'Foo' on sobject of type Contact", "errorCode": "INVALID_FIELD"}
    ]


async def test_reference_errors(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    account_id = demo_id(state, "Account", Name="CDF 株式会社")

    wrong_type = await client.post(
        f"{V45}/sobjects/Task", headers=auth, json={"Subject": "Call", "WhoId": account_id}
    )
    malformed = await client.post(
        f"{V45}/sobjects/Task", headers=auth, json={"Subject": "Call", "WhatId": "006B000002nBrQ"}
    )

    assert wrong_type.json() == [
        {
            "message": f"Name ID: id value of incorrect type: {account_id}",
            "errorCode": "FIELD_INTEGRITY_EXCEPTION",
            "fields": ["WhoId"],
        }
    ]
    assert malformed.json() == [
        {
            "message": "Related To ID: id value of incorrect type: 006B000002nBrQ",
            "errorCode": "MALFORMED_ID",
            "fields": ["WhatId"],
        }
    ]


async def test_empty_reference_is_null(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    # Seed 000 example 2 when the contact query found nobody: ContactId is "".
    response = await client.post(
        f"{V45}/sobjects/case/", headers=auth, json={"Origin": "Phone", "ContactId": ""}
    )

    assert response.status_code == 201
    found = state.find(response.json()["id"])
    assert found is not None and found[1]["ContactId"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "The HTTP entity body is required, but this request has no entity body."),
        (
            '{"Origin": Phone}',
            "Unexpected character ('P' (code 80)): expected a valid value "
            "(number, String, array, object, 'true', 'false' or 'null') "
            "at [line:1, column:12]",
        ),
    ],
)
async def test_bad_json(
    client: httpx.AsyncClient, auth: dict[str, str], content: str, message: str
) -> None:
    response = await client.post(
        f"{V45}/sobjects/Case", headers=auth | {"Content-Type": "application/json"}, content=content
    )

    assert response.status_code == 400
    assert response.json() == [{"message": message, "errorCode": "JSON_PARSER_ERROR"}]


async def test_form_body_is_an_unsupported_media_type(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(f"{V45}/sobjects/Case", headers=auth, data={"Origin": "Web"})

    assert response.status_code == 415
    assert response.json()[0]["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_string_too_long_and_read_only_fields(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    too_long = await client.post(f"{V45}/sobjects/Task", headers=auth, json={"Subject": "あ" * 256})
    task_id = demo_id(state, "Task", B_UniqueId__c="1700000000.1")
    read_only = await client.patch(
        f"{V45}/sobjects/Task/{task_id}", headers=auth, json={"TaskSubtype": "Email"}
    )

    assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert too_long.json()[0]["fields"] == ["Subject"]
    assert read_only.json() == [
        {
            "message": "Unable to create/update fields: TaskSubtype. Please check the security "
            "settings of this field and verify that it is read/write for your profile "
            "or permission set.",
            "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
            "fields": ["TaskSubtype"],
        }
    ]


async def test_task_defaults_and_the_playback_formula(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    response = await client.post(
        f"{V45}/sobjects/Task",
        headers=auth,
        json={
            "Subject": "着信",
            "TaskSubtype": "Call",
            "CallType": "Inbound",
            "B_ServerIP__c": "https://cb.example.jp",
            "B_UniqueId__c": "1700000000.9",
        },
    )

    record = (await client.get(f"{V45}/sobjects/Task/{response.json()['id']}", headers=auth)).json()
    assert record["Status"] == "Not Started" and record["Priority"] == "Normal"
    assert 'href="https://cb.example.jp/monitor_link/1700000000.9"' in record["WavUrlImg__c"]


# --- upsert by external ID ----------------------------------------------------------------


async def test_upsert_creates_with_201(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.patch(
        f"{V45}/sobjects/Task/B_UniqueId__c/1700000000.77", headers=auth, json={"Subject": "着信"}
    )

    assert response.status_code == 201
    assert re.fullmatch(
        r'\{"id":"00T\w{15}","success":true,"errors":\[\],"created":true\}', response.text
    )


@pytest.mark.parametrize(
    ("version", "status", "body"),
    [
        ("45.0", 204, b""),
        ("46.0", 200, None),
    ],
)
async def test_upsert_update_status_depends_on_the_api_version(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    state: SandboxState,
    version: str,
    status: int,
    body: bytes | None,
) -> None:
    task_id = demo_id(state, "Task", B_UniqueId__c="1700000000.1")

    response = await client.patch(
        f"/services/data/v{version}/sobjects/Task/B_UniqueId__c/1700000000.1",
        headers=auth,
        json={"CallDurationInSeconds": 200},
    )

    assert response.status_code == status
    if body is None:
        assert response.text == (f'{{"id":"{task_id}","success":true,"errors":[],"created":false}}')
    else:
        assert response.content == body


async def test_upsert_with_several_matches_answers_300(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ids = []
    for _ in range(2):
        created = await client.post(
            f"{V45}/sobjects/Task", headers=auth, json={"Subject": "dup", "B_UniqueId__c": "same"}
        )
        ids.append(created.json()["id"])

    response = await client.patch(
        f"{V45}/sobjects/Task/B_UniqueId__c/same", headers=auth, json={"Subject": "x"}
    )

    assert response.status_code == 300
    assert response.json() == [f"{V45}/sobjects/Task/{i}" for i in ids]


async def test_upsert_on_a_field_that_is_not_an_external_id(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.patch(f"{V45}/sobjects/Task/Subject/x", headers=auth, json={})

    assert response.status_code == 404
    assert response.json()[0]["message"] == (
        "Provided external ID field does not exist or is not accessible: Subject"
    )


# --- describe, limits, versions, headers --------------------------------------------------


async def test_describe(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = (await client.get(f"{V45}/sobjects/task/describe", headers=auth)).json()

    assert (body["name"], body["label"], body["keyPrefix"]) == ("Task", "Task", "00T")
    fields = {f["name"]: f for f in body["fields"]}
    assert {
        "name",
        "type",
        "label",
        "length",
        "nillable",
        "createable",
        "updateable",
        "referenceTo",
        "externalId",
        "picklistValues",
    } <= set(fields["Subject"])
    assert fields["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert fields["TaskSubtype"]["updateable"] is False
    assert fields["B_UniqueId__c"]["externalId"] is True
    assert fields["Subject"]["length"] == 255
    assert fields["Description"]["length"] == 32000


async def test_global_describe(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = (await client.get(f"{V45}/sobjects", headers=auth)).json()

    assert list(body)[:3] == ["encoding", "maxBatchSize", "sobjects"]
    assert (body["encoding"], body["maxBatchSize"]) == ("UTF-8", 200)
    prefixes = {s["name"]: s["keyPrefix"] for s in body["sobjects"]}
    assert prefixes["Account"] == "001" and prefixes["Lead"] == "00Q"


async def test_limits_and_the_usage_header(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    first = await client.get(f"{V45}/limits/", headers=auth)
    second = await client.get(f"{V45}/limits", headers=auth)

    assert first.headers["sforce-limit-info"] == "api-usage=1/15000"
    assert second.headers["sforce-limit-info"] == "api-usage=2/15000"
    assert second.json()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14998}


async def test_every_rest_response_carries_the_usage_header(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    responses = [
        await client.get(f"{V45}/sobjects/Account/001000000000000AAA", headers=auth),
        await client.post(f"{V45}/sobjects/Contact", headers=auth, json={}),
        await client.get(f"{V45}/query", params={"q": "SELECT"}, headers=auth),
        await client.get(f"{V45}/", headers=auth),
        await client.get(f"{V45}/limits"),  # no session: 401
        await client.get("/services/data/v99.0/limits", headers=auth),
    ]

    assert all(r.headers["sforce-limit-info"].startswith("api-usage=") for r in responses)


async def test_version_list_needs_no_session_and_has_no_usage_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/services/data/")

    versions = response.json()
    assert versions[0] == {"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"}
    assert {"label": "Spring '19", "url": "/services/data/v45.0", "version": "45.0"} in versions
    assert "sforce-limit-info" not in response.headers


async def test_unknown_version_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get("/services/data/v99.0/limits", headers=auth)

    assert response.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer nope", "OAuth nope"])
async def test_missing_or_bad_session(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get(f"{V45}/limits", headers=headers)

    assert response.status_code == 401
    assert response.text == (
        '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    )


async def test_oauth_scheme_is_accepted_like_bearer(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(f"{V45}/limits", headers={"Authorization": f"OAuth {token}"})

    assert response.status_code == 200


async def test_daily_limit_exhausted(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.knobs.api_request_limit = 2
    statuses = [(await client.get(f"{V45}/limits", headers=auth)).status_code for _ in range(3)]

    last = await client.get(f"{V45}/limits", headers=auth)
    assert statuses == [200, 200, 403]
    assert last.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert last.headers["sforce-limit-info"] == "api-usage=2/2"
