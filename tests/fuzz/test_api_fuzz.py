"""Every operation of the OpenAPI document, fed generated requests (valid and invalid,
from the document's own schemas, by schemathesis), as an admin and as a PBX, on SQLite
and PostgreSQL: no answer may be a 5xx.

Deterministic: hypothesis is derandomised (the same requests on every run), nothing is
shrunk, and every outbound request stays on loopback (seeded rules point at a closed
port of 127.0.0.1; host names other than localhost do not resolve in this test).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from starlette.testclient import TestClient

from tests.fuzz.conftest import OUTBOUND, bearer_headers, seed

EXAMPLES_PER_OPERATION = 12


def _operations(client: TestClient) -> list[Any]:
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    operations = [result.ok() for result in schema.get_all_operations()]
    # Outbound first (see OUTBOUND); then the rest in the document's order.
    return sorted(operations, key=lambda op: not op.path.endswith(OUTBOUND))


AUDIO = ("audio/wav", "audio/x-wav", "audio/mpeg", "audio/ogg", "audio/mp4", "audio/webm")


@schemathesis.serializer(*AUDIO, "audio/flac")
def _raw_bytes(context: Any, value: Any) -> bytes:
    """Recording uploads: whatever was generated, as the raw body."""
    return value if isinstance(value, bytes) else str(value).encode()


def _fuzz(
    client: TestClient, headers: dict[str, str], seeds: dict[str, Any], own: int
) -> list[str]:
    failures: list[str] = []
    sent: list[int] = []
    spec = client.app.openapi()  # type: ignore[attr-defined]
    for operation in _operations(client):
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, use_seed=st.booleans())
        def run(case: Any, use_seed: bool) -> None:
            params = case.path_parameters or {}
            if use_seed and params:
                case.path_parameters = {k: seeds.get(k, v) for k, v in params.items()}
            if operation.path == "/api/v1/tokens/{token_id}" and str(
                (case.path_parameters or {}).get("token_id")
            ) == str(own):
                return  # revoking the token the fuzz test uses would end the test
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **headers}
            kwargs.pop("cookies", None)  # the API authenticates by token
            if isinstance(kwargs.get("data"), bytes | str):
                kwargs["content"] = kwargs.pop("data")
            response = client.request(**kwargs)
            sent.append(response.status_code)
            declared = spec["paths"][operation.path][operation.method]["responses"]
            # A gateway answer the operation declares (the CRM or the storage cannot be
            # reached: 502/503/504) is the truth, not a defect; a 500, or any undeclared
            # 5xx, is one.
            if response.status_code == 500 or (
                response.status_code > 500 and str(response.status_code) not in declared
            ):
                failures.append(
                    f"{operation.method.upper()} {operation.path}: {response.status_code} "
                    f"{response.text[:300]}\n  {case.as_curl_command()}"
                )

        run()
    print(f"API fuzz: {len(sent)} requests")
    return failures


@pytest.mark.parametrize("role", ["admin", "pbx"])
def test_no_generated_request_is_answered_5xx(served: TestClient, role: str) -> None:
    admin, pbx = bearer_headers(served)
    seeds = seed(served, admin, pbx)
    headers = admin if role == "admin" else pbx
    own = 1 if role == "admin" else 2
    failures = _fuzz(served, headers, seeds, own)
    assert not failures, f"{len(failures)} answers were 5xx:\n" + "\n".join(failures[:40])
