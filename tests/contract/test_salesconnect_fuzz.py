"""Property-based fuzzing of the emulator from its own OpenAPI document (schemathesis).

Schemathesis generates valid and invalid requests for every operation and checks each answer:
no 5xx, every status documented, every body and required header as the document says, invalid
input rejected with 4xx. Its "valid data is accepted" check is replaced by a stricter-worded one
below: a schema cannot say which cursors the server issued or which idempotency keys it has seen,
so exactly those refusals (and 404 for ids that do not exist) are allowed for valid data.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from emulators.salesconnect import SalesConnectConfig, create_app
from emulators.server import RunningServer, serve_in_thread

# Refusals of schema-valid requests that depend on server state, not on the request's shape.
STATEFUL_REFUSALS = {
    (400, "invalid_cursor"),
    (422, "idempotency_key_reused"),
    (404, "not_found"),
    (401, "invalid_client"),
}


def valid_data_is_accepted(ctx: object, response: schemathesis.Response, case: schemathesis.Case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if 200 <= response.status_code < 300:
        return None
    code = response.json().get("code") if response.content else None
    assert (response.status_code, code) in STATEFUL_REFUSALS, (
        f"a schema-valid request was refused: {response.status_code} {response.text}"
    )
    return None


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RunningServer]:
    with serve_in_thread(create_app(SalesConnectConfig(token_lifetime=86_400))) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_token(fuzz_server: RunningServer) -> str:
    response = httpx.post(
        fuzz_server.base_url + "/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "reminder-sync-demo",
            "client_secret": "demo-secret",
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def sc_schema(fuzz_server: RunningServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("sc_schema")


def _fuzz(case: schemathesis.Case, token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_data_is_accepted],
    )


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_emulator_survives_fuzzing(case: schemathesis.Case, fuzz_token: str) -> None:
    _fuzz(case, fuzz_token)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_emulator_survives_long_fuzzing(case: schemathesis.Case, fuzz_token: str) -> None:
    _fuzz(case, fuzz_token)
