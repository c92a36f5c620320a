"""The Salesforce client reads every recorded response example in tests/fixtures/salesforce/.

The examples are responses recorded for another Salesforce client (restforce, MIT). Each one is
served, byte for byte, by an in-process httpx transport standing in for the org, and read through
the client's real request path (`send`, error classification, paging, result parsing). The
emulator-based integration tests cover the same calls over sockets; these pin the real shapes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sync.connectors.http import RetryPolicy, ServiceError
from sync.connectors.salesforce import (
    RecordResult,
    SalesforceClient,
    classify_response,
    parse_record_result,
)
from sync.connectors.salesforce_auth import (
    SECRET_ACCESS_TOKEN,
    SECRET_CLIENT_SECRET,
    SECRET_INSTANCE_URL,
    SECRET_REFRESH_TOKEN,
    AuthMethod,
    SalesforceAuthConfig,
    SalesforceSession,
    TokenResponse,
    ids_from_identity_url,
    login_headless,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"
POLICY = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, request_timeout=5.0)
TASK_ID = "00T5g000001AbCdEAF"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> object:
    return json.loads(raw(name))


class DictStore:
    """The secret-store protocol over a dict (stands in for the OS keyring)."""

    def __init__(self, **values: str) -> None:
        self.values = dict(values)

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


class Recorded:
    """Answers requests with recorded bodies: routes[(method, path)] = [(status, file), ...]."""

    def __init__(self, routes: dict[tuple[str, str], list[tuple[int, str]]]) -> None:
        self.routes = {key: list(answers) for key, answers in routes.items()}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json=[{"errorCode": "NOT_FOUND", "message": "no route"}])
        status, name = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(
            status, content=raw(name), headers={"Content-Type": "application/json"}
        )


def make_client(recorded: Recorded) -> tuple[SalesforceClient, DictStore]:
    store = DictStore(
        **{
            SECRET_ACCESS_TOKEN: "access-token-1",
            SECRET_INSTANCE_URL: "https://na1.salesforce.com",
            SECRET_REFRESH_TOKEN: "refresh-token-1",
        }
    )
    config = SalesforceAuthConfig("https://login.salesforce.com", "client-id")
    auth_http = httpx.AsyncClient(transport=httpx.MockTransport(recorded))
    session = SalesforceSession(config, store, http=auth_http)
    client = SalesforceClient(session, policy=POLICY, transport=httpx.MockTransport(recorded))
    return client, store


V = "/services/data/v62.0"
TOKEN = "/services/oauth2/token"


# ---------------------------------------------------------------------------------------------
# One check per recorded file


async def check_auth_success() -> None:
    body = load("oauth/auth_success_response.json")
    tokens = TokenResponse.parse(body)
    assert tokens.instance_url == "https://na1.salesforce.com"
    assert tokens.refresh_token is None
    assert ids_from_identity_url(tokens.identity_url) == ("00Dx0000000BV7z", "005x00000012Q9P")
    # And through a real client-credentials login:
    recorded = Recorded({("POST", TOKEN): [(200, "oauth/auth_success_response.json")]})
    store = DictStore(**{SECRET_CLIENT_SECRET: "shh"})
    config = SalesforceAuthConfig(
        "https://acme.my.salesforce.com", "cid", method=AuthMethod.CLIENT_CREDENTIALS
    )
    session = await login_headless(
        config, store, http=httpx.AsyncClient(transport=httpx.MockTransport(recorded))
    )
    assert session.instance_url == "https://na1.salesforce.com"
    assert session.user_id == "005x00000012Q9P"
    assert store.values[SECRET_ACCESS_TOKEN] == body["access_token"]  # type: ignore[index]
    assert "00Dx0000000BV7z!AR8" not in repr(session)


async def _refresh_with(name: str) -> tuple[SalesforceSession, DictStore]:
    recorded = Recorded({("POST", TOKEN): [(200, name)]})
    store = DictStore(**{SECRET_REFRESH_TOKEN: "refresh-token-1"})
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    session = SalesforceSession(
        config, store, http=httpx.AsyncClient(transport=httpx.MockTransport(recorded))
    )
    await session.start()
    form = dict(httpx.QueryParams(recorded.requests[0].content.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-token-1",
        "client_id": "cid",
    }
    return session, store


async def check_refresh_success() -> None:
    session, store = await _refresh_with("oauth/refresh_success_response.json")
    assert await session.headers() == {"Authorization": "Bearer refreshed_access_token"}
    assert store.values[SECRET_REFRESH_TOKEN] == "refresh-token-1"  # not rotated: kept


async def check_reauth_success() -> None:
    session, _store = await _refresh_with("oauth/reauth_success_response.json")
    assert await session.headers() == {"Authorization": "Bearer new_access_token"}
    assert session.instance_url == "https://na1.salesforce.com"
    assert (session.org_id, session.user_id) == ("foo", "bar")


async def _expect_invalid_grant(name: str, description: str) -> None:
    recorded = Recorded({("POST", TOKEN): [(400, name)]})
    store = DictStore(**{SECRET_REFRESH_TOKEN: "refresh-token-1"})
    config = SalesforceAuthConfig("https://login.salesforce.com", "cid")
    session = SalesforceSession(
        config, store, http=httpx.AsyncClient(transport=httpx.MockTransport(recorded))
    )
    with pytest.raises(ServiceError) as caught:
        await session.start()
    error = caught.value
    assert (error.category, error.code, error.status) == ("auth", "invalid_grant", 400)
    assert description in str(error)
    assert "Log in again" in str(error)
    assert "refresh-token-1" not in str(error) + repr(error)
    assert len(recorded.requests) == 1  # a refused grant is not retried


async def check_auth_error() -> None:
    await _expect_invalid_grant(
        "oauth/auth_error_response.json", "authentication failure - Invalid Password"
    )


async def check_refresh_error() -> None:
    await _expect_invalid_grant("oauth/refresh_error_response.json", "expired access/refresh token")


async def check_composite_destroy_bad_request() -> None:
    recorded = Recorded(
        {
            ("DELETE", f"{V}/composite/sobjects"): [
                (400, "sobject/composite_sobjects_destroy_bad_request_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    with pytest.raises(ServiceError) as caught:
        await client.delete([TASK_ID])
    assert caught.value.code == "REQUIRED_FIELD_MISSING"
    assert caught.value.category == "validation"
    assert "At least 1 Id is required." in str(caught.value)


async def check_composite_destroy_success() -> None:
    recorded = Recorded(
        {
            ("DELETE", f"{V}/composite/sobjects"): [
                (200, "sobject/composite_sobjects_destroy_success_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    assert await client.delete([TASK_ID]) == [RecordResult(id="Foo", success=True, errors=())]
    sent = recorded.requests[0].url
    assert sent.params["ids"] == TASK_ID
    assert sent.params["allOrNone"] == "false"


async def check_composite_error_object() -> None:
    # A lone error object: as an error status it is still understood...
    response = httpx.Response(400, content=raw("sobject/composite_sobjects_error_response.json"))
    error = classify_response(response)
    assert error is not None
    assert (error.code, error.category) == ("INVALID_FIELD", "validation")
    # ...and as a 200 answer to a create it is a clear "could not read" error, not a crash.
    recorded = Recorded(
        {
            ("POST", f"{V}/composite/sobjects"): [
                (200, "sobject/composite_sobjects_error_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    with pytest.raises(ServiceError) as caught:
        await client.create([{"Subject": "Call Jane"}])
    assert caught.value.code == "MALFORMED_RESPONSE"
    assert "could not be read" in str(caught.value)
    assert len(recorded.requests) == 1  # a create is never replayed


async def check_composite_success() -> None:
    recorded = Recorded(
        {
            ("POST", f"{V}/composite/sobjects"): [
                (200, "sobject/composite_sobjects_success_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    results = await client.create([{"Subject": "Call Jane"}])
    assert results == [RecordResult(id="some_id", success=True, errors=())]
    sent = json.loads(recorded.requests[0].content)
    assert sent == {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Task"}, "Subject": "Call Jane"}],
    }
    assert recorded.requests[0].headers["authorization"] == "Bearer access-token-1"


async def check_create_success() -> None:
    result = parse_record_result(load("sobject/create_success_response.json"))
    assert result == RecordResult(id="some_id", success=True, errors=())


async def check_upsert_created_success() -> None:
    result = parse_record_result(load("sobject/upsert_created_success_response.json"))
    assert result == RecordResult(id="foo", success=True, errors=())


async def _get_error(name: str, status: int) -> ServiceError:
    recorded = Recorded({("GET", f"{V}/sobjects/Task/{TASK_ID}"): [(status, name)]})
    client, _ = make_client(recorded)
    with pytest.raises(ServiceError) as caught:
        await client.get_task(TASK_ID)
    return caught.value


async def check_delete_error() -> None:
    error = classify_response(
        httpx.Response(404, content=raw("sobject/delete_error_response.json"))
    )
    assert error is not None
    assert (error.code, error.category) == ("NOT_FOUND", "not_found")
    assert "rid" in str(error)


async def check_upsert_error() -> None:
    error = await _get_error("sobject/upsert_error_response.json", 400)
    assert (error.code, error.category, error.status) == ("NOT_FOUND", "not_found", 400)
    assert "Namez" in str(error)


async def check_upsert_multiple_error() -> None:
    error = await _get_error("sobject/upsert_multiple_error_response.json", 300)
    assert (error.code, error.category, error.status) == ("MULTIPLE_CHOICES", "conflict", 300)
    assert "2 records" in str(error)


async def check_sobject_find_success() -> None:
    recorded = Recorded(
        {
            ("GET", f"{V}/sobjects/Task/{TASK_ID}"): [
                (200, "sobject/sobject_find_success_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    record = await client.get_task(TASK_ID)
    assert record is not None
    assert record["Id"] == "23foo"
    assert record["IsDeleted"] is False
    assert record["OtherDateTime_Label"] is None


async def check_sobject_find_error() -> None:
    recorded = Recorded(
        {
            ("GET", f"{V}/sobjects/Task/{TASK_ID}"): [
                (404, "sobject/sobject_find_error_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    assert await client.get_task(TASK_ID) is None  # a 404 on a direct read: it is gone


async def check_get_deleted() -> None:
    recorded = Recorded(
        {
            ("GET", f"{V}/sobjects/Task/deleted/"): [
                (200, "sobject/get_deleted_success_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    start = datetime(2013, 5, 5, 10, 30, 45, tzinfo=UTC)
    end = datetime(2013, 5, 8, 21, 20, 59, tzinfo=UTC)
    deleted = await client.deleted_ids(start, end)
    assert deleted == [{"id": "a00D0000008pQRAIA2", "deletedDate": "2013-05-07T22:07:19.000+0000"}]
    params = recorded.requests[0].url.params
    assert params["start"] == "2013-05-05T10:30:00+00:00"  # minute granularity
    assert params["end"] == "2013-05-08T21:20:00+00:00"
    assert client.deleted_coverage["latestDateCovered"] == "2013-05-08T21:20:00.000+0000"
    # A start before the earliest date available means the window was lost.
    with pytest.raises(ServiceError) as caught:
        await client.deleted_ids(datetime(2013, 5, 1, tzinfo=UTC), end)
    assert caught.value.code == "INVALID_REPLICATION_DATE"


async def check_get_updated() -> None:
    recorded = Recorded(
        {
            ("GET", f"{V}/sobjects/Task/updated/"): [
                (200, "sobject/get_updated_success_response.json")
            ]
        }
    )
    client, _ = make_client(recorded)
    ids = await client.updated_ids(
        datetime(2015, 8, 18, tzinfo=UTC), datetime(2015, 8, 19, 8, 17, tzinfo=UTC)
    )
    assert len(ids) == 7
    assert ids[0] == "003q000000KvQ1tAAF"


async def check_query_empty() -> None:
    recorded = Recorded({("GET", f"{V}/query"): [(200, "sobject/query_empty_response.json")]})
    client, _ = make_client(recorded)
    assert [r async for r in client.query("SELECT Id FROM Task")] == []
    assert recorded.requests[0].url.params["q"] == "SELECT Id FROM Task"


async def check_query_error() -> None:
    recorded = Recorded({("GET", f"{V}/query"): [(400, "sobject/query_error_response.json")]})
    client, _ = make_client(recorded)
    with pytest.raises(ServiceError) as caught:
        async for _ in client.query("SELECT Nope FROM Task"):
            pass
    assert (caught.value.code, caught.value.category) == ("INVALID_FIELD", "validation")
    assert len(recorded.requests) == 1  # a validation error is not retried


async def check_query_paginated() -> None:
    recorded = Recorded(
        {
            ("GET", f"{V}/query"): [(200, "sobject/query_paginated_first_page_response.json")],
            ("GET", "/services/data/v26.0/query/01gD"): [
                (200, "sobject/query_paginated_last_page_response.json")
            ],
        }
    )
    client, _ = make_client(recorded)
    labels = [r["Text_Label"] async for r in client.query("SELECT Text_Label FROM Whizbang")]
    assert labels == ["First Page", "Last Page"]
    assert (
        str(recorded.requests[1].url) == "https://na1.salesforce.com/services/data/v26.0/query/01gD"
    )
    assert client.calls == 2


async def check_query_success() -> None:
    recorded = Recorded({("GET", f"{V}/query"): [(200, "sobject/query_success_response.json")]})
    client, _ = make_client(recorded)
    records = [r async for r in client.query("SELECT Id FROM Whizbang")]
    assert len(records) == 1
    assert records[0]["ParentWhizbang__r"]["Name"] == "Parent Whizbang"
    assert records[0]["Whizbangs__r"]["records"][0]["Name"] == "Child Whizbang"
    assert records[0]["Checkbox_Label"] is False


async def check_write_error() -> None:
    recorded = Recorded(
        {("PATCH", f"{V}/composite/sobjects"): [(400, "sobject/write_error_response.json")]}
    )
    client, _ = make_client(recorded)
    with pytest.raises(ServiceError) as caught:
        await client.update([{"Id": TASK_ID, "foo": 1}])
    assert caught.value.code == "INVALID_FIELD"
    assert "No such column 'foo' on sobject of type Bar" in str(caught.value)


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "oauth/auth_error_response.json": check_auth_error,
    "oauth/auth_success_response.json": check_auth_success,
    "oauth/reauth_success_response.json": check_reauth_success,
    "oauth/refresh_error_response.json": check_refresh_error,
    "oauth/refresh_success_response.json": check_refresh_success,
    "sobject/composite_sobjects_destroy_bad_request_response.json": (
        check_composite_destroy_bad_request
    ),
    "sobject/composite_sobjects_destroy_success_response.json": check_composite_destroy_success,
    "sobject/composite_sobjects_error_response.json": check_composite_error_object,
    "sobject/composite_sobjects_success_response.json": check_composite_success,
    "sobject/create_success_response.json": check_create_success,
    "sobject/delete_error_response.json": check_delete_error,
    "sobject/get_deleted_success_response.json": check_get_deleted,
    "sobject/get_updated_success_response.json": check_get_updated,
    "sobject/query_empty_response.json": check_query_empty,
    "sobject/query_error_response.json": check_query_error,
    "sobject/query_paginated_first_page_response.json": check_query_paginated,
    "sobject/query_paginated_last_page_response.json": check_query_paginated,
    "sobject/query_success_response.json": check_query_success,
    "sobject/sobject_find_error_response.json": check_sobject_find_error,
    "sobject/sobject_find_success_response.json": check_sobject_find_success,
    "sobject/upsert_created_success_response.json": check_upsert_created_success,
    "sobject/upsert_error_response.json": check_upsert_error,
    "sobject/upsert_multiple_error_response.json": check_upsert_multiple_error,
    "sobject/write_error_response.json": check_write_error,
}


def test_every_recorded_example_has_a_check() -> None:
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.json")}
    assert on_disk == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_the_client_reads_the_recorded_example(name: str) -> None:
    await CHECKS[name]()
