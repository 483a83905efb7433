"""Every query parameter of the API that takes a time, given the times people write: a
bare date, a time without an offset (the configured time zone), one with an offset, and
the first and last days of the calendar. Each is answered with its result or a 422
naming the parameter, never a 5xx. (The generated requests of test_api_fuzz give times
with an offset only, as JSON Schema's date-time says: a naive time went unchecked.)"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.fuzz.conftest import bearer_headers, seed

WRITTEN = (
    "2026-12-04",
    "2026-12-04T08:59",
    "2026-12-04T08:59:00+09:00",
    "2026-12-04T08:59:00Z",
    "0001-01-01",
    "0001-01-01T00:00",
    "9999-12-31",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-01:00",
)


def _is_time(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("format") in ("date-time", "date") for option in options)


def _time_parameters(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and _is_time(parameter.get("schema", {})):
                    found.append((method, path, parameter["name"]))
    return found


def test_every_time_parameter_takes_the_times_people_write(served: TestClient) -> None:
    admin, pbx = bearer_headers(served)
    seeds = seed(served, admin, pbx)
    parameters = _time_parameters(served.app.openapi())  # type: ignore[attr-defined]
    # The call list, the history list and the rule's re-run at least.
    assert {(path, name) for _, path, name in parameters} >= {
        ("/api/v1/calls", "from"),
        ("/api/v1/calls", "to"),
        ("/api/v1/history-links/{link_id}/histories", "from"),
        ("/api/v1/call-actions/{rule_id}/rerun", "to"),
    }
    failures = []
    for method, template, name in parameters:
        path = template.format(**{key: seeds.get(key, 1) for key in seeds})
        for value in WRITTEN:
            answer = served.request(method.upper(), path, params={name: value}, headers=admin)
            if answer.status_code >= 500:
                failures.append(f"{method.upper()} {path}?{name}={value}: {answer.status_code}")
            elif answer.status_code == 422:
                locations = [error["loc"] for error in answer.json()["detail"]]
                if ["query", name] not in locations:
                    failures.append(f"{method.upper()} {path}?{name}={value}: 422 {locations}")
    assert not failures, "\n".join(failures)
