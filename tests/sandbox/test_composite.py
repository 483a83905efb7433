"""composite and composite/sobjects: references, all-or-none, SaveResults with statusCode."""

from __future__ import annotations

import httpx

from callbridge.sandbox import SandboxState

V62 = "/services/data/v62.0"


async def test_composite_chains_references(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    response = await client.post(
        f"{V62}/composite",
        headers=auth,
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Case",
                    "referenceId": "newCase",
                    "body": {"Subject": "着信", "Origin": "Phone"},
                },
                {
                    "method": "PATCH",
                    "url": f"{V62}/sobjects/Case/@{{newCase.id}}",
                    "referenceId": "update",
                    "body": {"Status": "Working"},
                },
                {
                    "method": "GET",
                    "url": f"{V62}/sobjects/Case/@{{newCase.id}}?fields=Status",
                    "referenceId": "read",
                },
            ],
        },
    )

    assert response.status_code == 200
    created, updated, read = response.json()["compositeResponse"]
    case_id = created["body"]["id"]
    assert created == {
        "body": {"id": case_id, "success": True, "errors": []},
        "httpHeaders": {"Location": f"{V62}/sobjects/Case/{case_id}"},
        "httpStatusCode": 201,
        "referenceId": "newCase",
    }
    assert updated == {
        "body": None,
        "httpHeaders": {},
        "httpStatusCode": 204,
        "referenceId": "update",
    }
    assert read["body"]["Status"] == "Working"
    assert response.headers["sforce-limit-info"] == "api-usage=1/15000"  # one API call


async def test_all_or_none_rolls_back_and_halts_the_rest(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    cases_before = len(state.records["Case"])

    response = await client.post(
        f"{V62}/composite",
        headers=auth,
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Case",
                    "referenceId": "ok",
                    "body": {"Subject": "a"},
                },
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Contact",
                    "referenceId": "bad",
                    "body": {"FirstName": "名前だけ"},
                },
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Case",
                    "referenceId": "later",
                    "body": {"Subject": "b"},
                },
            ],
        },
    )

    first, failed, later = response.json()["compositeResponse"]
    halted = [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back "
            "since another operation in the same transaction failed.",
        }
    ]
    assert first == {"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "ok"}
    assert failed["httpStatusCode"] == 400
    assert failed["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert later["body"] == halted
    assert len(state.records["Case"]) == cases_before


async def test_without_all_or_none_dependents_of_a_failure_halt(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        f"{V62}/composite",
        headers=auth,
        json={
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Contact",
                    "referenceId": "bad",
                    "body": {},
                },
                {
                    "method": "PATCH",
                    "url": f"{V62}/sobjects/Contact/@{{bad.id}}",
                    "referenceId": "dependent",
                    "body": {"LastName": "x"},
                },
                {
                    "method": "POST",
                    "url": f"{V62}/sobjects/Case",
                    "referenceId": "independent",
                    "body": {"Subject": "c"},
                },
            ],
        },
    )

    bad, dependent, independent = response.json()["compositeResponse"]
    assert bad["httpStatusCode"] == 400
    assert dependent["body"] == [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "Invalid reference specified. No value for bad.id found in bad.",
        }
    ]
    assert independent["httpStatusCode"] == 201


async def test_collections_create_with_save_results(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        f"{V62}/composite/sobjects",
        headers=auth,
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "Call", "CallType": "Inbound"},
                {"attributes": {"type": "Contact"}, "FirstName": "x"},
            ],
        },
    )

    ok, failed = response.json()
    assert response.status_code == 200
    assert ok["success"] is True and ok["id"].startswith("00T") and ok["errors"] == []
    assert failed == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }


async def test_collections_all_or_none_rolls_back(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    tasks_before = len(state.records["Task"])

    response = await client.post(
        f"{V62}/composite/sobjects",
        headers=auth,
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "Call"},
                {"attributes": {"type": "Task"}, "Subject": "x" * 300},
            ],
        },
    )

    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert len(state.records["Task"]) == tasks_before


async def test_collections_update_get_delete(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = (
        await client.post(
            f"{V62}/composite/sobjects",
            headers=auth,
            json={
                "records": [
                    {"attributes": {"type": "Lead"}, "LastName": "山田", "Company": "山田商店"}
                ]
            },
        )
    ).json()[0]["id"]

    updated = await client.patch(
        f"{V62}/composite/sobjects",
        headers=auth,
        json={
            "records": [
                {"attributes": {"type": "Lead"}, "Id": created, "Status": "Working - Contacted"}
            ]
        },
    )
    read = await client.get(
        f"{V62}/composite/sobjects/Lead",
        params={"ids": f"{created},00Q000000000000AAA", "fields": "Status"},
        headers=auth,
    )
    deleted = await client.delete(
        f"{V62}/composite/sobjects", params={"ids": created}, headers=auth
    )

    assert updated.json() == [{"id": created, "success": True, "errors": []}]
    assert read.json()[0]["Status"] == "Working - Contacted"
    assert read.json()[1] is None
    assert deleted.json() == [{"id": created, "success": True, "errors": []}]


async def test_collections_upsert(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    records = {
        "records": [
            {"attributes": {"type": "Task"}, "B_UniqueId__c": "1700000000.1", "Subject": "更新"},
            {"attributes": {"type": "Task"}, "B_UniqueId__c": "1700000000.55", "Subject": "新規"},
        ]
    }

    response = await client.patch(
        f"{V62}/composite/sobjects/Task/B_UniqueId__c", headers=auth, json=records
    )

    assert [r["created"] for r in response.json()] == [False, True]


async def test_collections_need_v42(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/services/data/v41.0/composite/sobjects", headers=auth, json={"records": []}
    )

    assert response.status_code == 404
