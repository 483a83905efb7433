"""Benchmark of the template and pattern modules (prints figures; not a test).

Run: python bench/bench_templating.py [--quick]

Each figure is the mean wall-clock time per operation measured with time.perf_counter
over many back-to-back calls in one process (after a warm-up), repeated in several
rounds; "mean" is over all rounds, "best" is the fastest round. Targets (issue 3):
URL expansion <= 20 us, 2 KB JSON body <= 100 us, extraction on 2 KB <= 50 us, and
linear growth from 2 KB to 200 KB.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial

from callbridge.patterns import compile_extractor, compile_pattern
from callbridge.templating import Context, compile_template

SYSTEM_URLS = {"OAUTH_INSTANCE_URL": "https://acme.my.salesforce.com"}

EXAMPLE1_URL = (
    "{OAUTH_INSTANCE_URL}/services/data/v45.0/query?q= SELECT+Id,Name FROM Contact WHERE "
    "Phone ='{TEL}'"
)
EXAMPLE1_URL_3 = EXAMPLE1_URL + " AND Name LIKE '%{TELNAME}%'"
IVR_URL = (
    "{OAUTH_INSTANCE_URL}/services/data/v45.0/search ?q=FIND {{TEL}} IN PHONE FIELDS "
    "RETURNING Account(Id, Name, Phone)"
)
TEL = "07075373713"
CALL_VALUES = {
    "TEL": TEL,
    "TELNAME": "山田 太郎",
    "ID": "1700000000.42",
    "CALLED": "0312345678",
    "AID": "agent01",
    "EXT": "201",
    "QUEUE": "support",
    "UNIQUE_ID": "1700000000.42-ch1",
    "RESPONSE_CONTACT_ID": "0032v00003AbCdEAAU",
    "RESPONSE_CASE_ID": "5002v00002mPxwUAAS",
}


def json_body_template(size: int = 2048) -> str:
    """A Task-like JSON body template of about ``size`` UTF-8 bytes with 10 variables."""
    fields = {
        "Subject": "着信 {TEL} {TELNAME}",
        "WhoId": "{RESPONSE_CONTACT_ID}",
        "WhatId": "{RESPONSE_CASE_ID}",
        "CallObject": "{ID}",
        "B_UniqueId__c": "{UNIQUE_ID}",
        "B_PhoneFrom__c": "{TEL}",
        "B_PhoneTo__c": "{CALLED}",
        "B_Agent__c": "{AID}",
        "B_Extension__c": "{EXT}",
        "B_Queue__c": "{QUEUE}",
        "Status": "Completed",
        "Priority": "Normal",
        "TaskSubtype": "Call",
    }
    head = json.dumps(fields, ensure_ascii=False)[:-1] + ',"Description":"'
    note = "Call note: the customer asked about invoice 12345. 通話メモ。 "
    room = size - len(head.encode()) - 2
    filler = (note * (room // len(note.encode()) + 1)).encode()[: max(room, 0)]
    return head + filler.decode(errors="ignore") + '"}'


def _compact(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _record(sobject: str, prefix: str, index: int, **fields: str) -> dict[str, object]:
    record_id = f"{prefix}{index:06d}AAU"
    url = f"/services/data/v45.0/sobjects/{sobject}/{record_id}"
    return {"attributes": {"type": sobject, "url": url}, "Id": record_id, **fields}


def _response(
    size: int,
    record: Callable[[int], dict[str, object]],
    wrap: Callable[[list[dict[str, object]]], object],
) -> str:
    """Compact JSON as Salesforce sends it, with records up to about ``size`` bytes."""
    records: list[dict[str, object]] = []
    total = 0
    while total < size:
        records.append(record(len(records)))
        total += len(_compact(records[-1]).encode()) + 1
    return _compact(wrap(records))


def query_response(size: int) -> str:
    """A SOQL query response (Contacts) of about ``size`` bytes."""
    return _response(
        size,
        lambda i: _record("Contact", "0032v00003", i, Name=f"山田 太郎{i}"),
        lambda records: {"totalSize": len(records), "done": True, "records": records},
    )


def search_response(size: int) -> str:
    """A SOSL search response (Accounts) of about ``size`` bytes."""
    return _response(
        size,
        lambda i: _record("Account", "0012v00002", i, Name=f"CDF 株式会社{i}", Phone=TEL),
        lambda records: {"searchRecords": records},
    )


def measure(operation: Callable[[], object], budget: float) -> tuple[float, float]:
    """(mean, best round mean) seconds per call, spending about ``budget`` seconds."""
    started = time.perf_counter()
    calls = 0
    while time.perf_counter() - started < budget / 10:
        operation()
        calls += 1
    per_round = max(calls, 1)
    rounds: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_round):
            operation()
        rounds.append((time.perf_counter() - t0) / per_round)
    return sum(rounds) / len(rounds), min(rounds)


def report(
    label: str, operation: Callable[[], object], budget: float, target: float | None
) -> float:
    mean, best = measure(operation, budget)
    verdict = ""
    if target is not None:
        verdict = "  ok" if mean <= target else f"  OVER target {target * 1e6:.0f} us"
    print(f"{label:<66} mean {mean * 1e6:9.2f} us   best {best * 1e6:9.2f} us{verdict}")
    return mean


def main() -> None:
    budget = 0.3 if "--quick" in sys.argv else 1.5
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average before the run: {load} (figures are only meaningful on an idle machine)")
    print()

    print("Templates (compiled once; expand measured)")
    url1 = compile_template(EXAMPLE1_URL, Context.URL)
    url3 = compile_template(EXAMPLE1_URL_3, Context.URL)
    ivr = compile_template(IVR_URL, Context.URL)
    report(
        "expand seed example-1 URL ({OAUTH_INSTANCE_URL}, {TEL})",
        lambda: url1.expand(CALL_VALUES, system_urls=SYSTEM_URLS),
        budget,
        20e-6,
    )
    report(
        "expand seed example-1 URL + LIKE '%{TELNAME}%' (3 variables)",
        lambda: url3.expand(CALL_VALUES, system_urls=SYSTEM_URLS),
        budget,
        20e-6,
    )
    report(
        "expand seed IVR SOSL URL ({OAUTH_INSTANCE_URL}, {{TEL}})",
        lambda: ivr.expand(CALL_VALUES, system_urls=SYSTEM_URLS),
        budget,
        20e-6,
    )
    sizes = [2048, 20480, 204800]
    body_means = []
    for size in sizes:
        text = json_body_template(size)
        compiled = compile_template(text, Context.BODY_JSON)
        assert len(compiled.variables) == 10
        body_means.append(
            report(
                f"expand JSON body {len(text.encode()) // 1024} KiB, 10 variables",
                partial(compiled.expand, CALL_VALUES),
                budget,
                100e-6 if size == 2048 else None,
            )
        )
    report(
        "compile (parse + validate) seed example-1 URL",
        lambda: compile_template(EXAMPLE1_URL, Context.URL),
        budget,
        None,
    )
    report(
        "compile 2 KB JSON body",
        lambda: compile_template(json_body_template(2048), Context.BODY_JSON),
        budget,
        None,
    )
    print()

    print("Patterns (compiled once; match/extract measured, timeout=1 s)")
    seeds = [
        ('seed ex.1 /"Id":"(?P<CONTACT_ID>.*)",/', '/"Id":"(?P<CONTACT_ID>.*)",/', query_response),
        (
            'seed ex.2 /"id":"(?P<CASE_ID>.*)",/ (no match)',
            '/"id":"(?P<CASE_ID>.*)",/',
            query_response,
        ),
        ('seed IVR /"Name":"(?P<NAME>.*)",/', '/"Name":"(?P<NAME>.*)",/', search_response),
        ('seed IVR /"searchRecords":¥[¥]/ (no match)', '/"searchRecords":¥[¥]/', search_response),
        (
            "JSONPath NAME = $.searchRecords[0].Name",
            "NAME = $.searchRecords[0].Name",
            search_response,
        ),
    ]
    for label, text, make in seeds:
        extractor = compile_extractor(text)
        means = []
        for size in (2048, 204800):
            body = make(size)
            means.append(
                report(
                    f"{label} on {len(body.encode()) // 1024} KiB",
                    partial(extractor.extract, body, timeout=1.0, json_body=True),
                    budget,
                    50e-6 if size == 2048 and not text.startswith("NAME =") else None,
                )
            )
        print(f"{'':<66} 200 KB / 2 KB time ratio: {means[1] / means[0]:.1f} (size ratio 100)")
    response = compile_pattern('/"searchRecords":¥[¥]/')
    empty = '{"searchRecords":[]}'
    report(
        "response pattern matches() on the empty SOSL answer",
        lambda: response.matches(empty, timeout=1.0),
        budget,
        None,
    )
    print()
    ratio = body_means[-1] / body_means[0]
    print(f"JSON body 200 KB / 2 KB time ratio: {ratio:.1f} (size ratio 100)")


if __name__ == "__main__":
    main()
