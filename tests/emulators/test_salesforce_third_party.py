"""The acid test: simple-salesforce, unmodified, works against the emulator.

simple-salesforce always builds ``https://`` URLs, so the emulator is served over TLS with a
self-signed certificate that the client's own ``requests.Session`` is told to trust (its
documented ``session`` argument). The client logs in with an access token from the emulator's
OAuth endpoint: ``Salesforce(instance_url=..., session_id=token, version=..., session=...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from emulators.salesforce import SalesforceEmulator
from emulators.server import RunningServer, self_signed_certificate
from tests.emulators.salesforce_setup import serve_salesforce

VERSION = "62.0"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[RunningServer, SalesforceEmulator, str]]:
    cert = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    with serve_salesforce(tls=cert) as (server, emulator):
        yield server, emulator, cert.certfile


@pytest.fixture
def org(served) -> tuple[SalesforceEmulator, Salesforce, RunningServer, str]:
    server, emulator, certfile = served
    emulator.reset()
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment beats .verify
    session.verify = certfile
    # A real token from the OAuth endpoint, as an app would hold after logging in.
    response = session.post(
        server.base_url + "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": emulator.config.client_id,
            "client_secret": emulator.config.client_secret,
            "username": emulator.config.username,
            "password": emulator.config.password,
        },
    )
    token = response.json()
    sf = Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        version=VERSION,
        session=session,
    )
    return emulator, sf, server, certfile


def test_create_get_update_delete(org) -> None:
    emulator, sf, _, _ = org
    created = sf.Task.create({"Subject": "Call Jane", "ActivityDate": "2026-12-01"})
    assert created["success"] is True
    task_id = created["id"]
    assert len(task_id) == 18 and task_id.startswith("00T")

    fetched = sf.Task.get(task_id)
    assert fetched["Subject"] == "Call Jane"
    assert fetched["Status"] == "Not Started"
    assert fetched["OwnerId"] == emulator.config.user_id
    assert fetched["attributes"]["type"] == "Task"

    assert sf.Task.update(task_id, {"Status": "Completed"}) == 204
    updated = sf.Task.get(task_id)
    assert updated["IsClosed"] is True
    assert updated["LastModifiedDate"] >= fetched["LastModifiedDate"]

    assert sf.Task.delete(task_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.get(task_id)
    assert emulator.task(task_id)["IsDeleted"] is True


def test_validation_errors_reach_the_client_as_the_error_array(org) -> None:
    _, sf, _, _ = org
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "x" * 256})
    assert caught.value.content[0]["errorCode"] == "STRING_TOO_LONG"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FRM Task")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_upsert_and_get_by_external_id(org) -> None:
    _, sf, _, _ = org
    assert sf.Task.upsert("ReminderSync_Key__c/key-1", {"Subject": "First"}) == 201
    assert sf.Task.upsert("ReminderSync_Key__c/key-1", {"Subject": "Second"}) == 200
    record = sf.Task.get_by_custom_id("ReminderSync_Key__c", "key-1")
    assert record["Subject"] == "Second"
    assert record["ReminderSync_Key__c"] == "key-1"


def test_query_paging_with_query_more_and_query_all(org) -> None:
    emulator, sf, _, _ = org
    for number in range(2600):
        emulator.add_task(Subject=f"Task {number:04d}")

    first = sf.query("SELECT Id, Subject FROM Task ORDER BY Subject")
    assert first["totalSize"] == 2600
    assert first["done"] is False
    assert len(first["records"]) == 2000
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["done"] is True
    assert len(second["records"]) == 600
    subjects = [r["Subject"] for r in first["records"] + second["records"]]
    assert subjects == [f"Task {n:04d}" for n in range(2600)]

    everything = sf.query_all("SELECT Id FROM Task")
    assert everything["totalSize"] == 2600
    assert len({r["Id"] for r in everything["records"]}) == 2600

    small_pages = sf.query("SELECT Id FROM Task", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(small_pages["records"]) == 500


def test_query_all_with_deleted_rows(org) -> None:
    emulator, sf, _, _ = org
    kept = emulator.add_task(Subject="kept")
    gone = emulator.add_task(Subject="gone")
    emulator.delete_task(gone["Id"])
    live = sf.query_all("SELECT Id FROM Task")
    assert [r["Id"] for r in live["records"]] == [kept["Id"]]
    with_deleted = sf.query_all("SELECT Id, IsDeleted FROM Task", include_deleted=True)
    flags = {r["Id"]: r["IsDeleted"] for r in with_deleted["records"]}
    assert flags == {kept["Id"]: False, gone["Id"]: True}


def test_collections_through_restful(org) -> None:
    emulator, sf, _, _ = org
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "one"},
                {"attributes": {"type": "Task"}, "Subject": "two", "Priority": "Urgent"},
            ],
        },
    )
    assert created[0]["success"] is True
    assert created[1]["success"] is False
    assert created[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    task_id = created[0]["id"]

    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Task"}, "id": task_id, "Subject": "uno"}]},
    )
    assert updated == [{"id": task_id, "success": True, "errors": []}]
    retrieved = sf.restful(
        "composite/sobjects/Task", params={"ids": task_id, "fields": "Id,Subject"}
    )
    assert retrieved[0]["Subject"] == "uno"
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": task_id})
    assert deleted == [{"id": task_id, "success": True, "errors": []}]
    assert emulator.tasks() == []


def test_updated_and_deleted(org) -> None:
    emulator, sf, _, _ = org
    now = emulator.now()
    touched = emulator.add_task(Subject="touched", created_at=now - timedelta(hours=2))
    removed = emulator.add_task(Subject="removed", created_at=now - timedelta(hours=3))
    emulator.delete_task(removed["Id"], at=now - timedelta(hours=1))
    start, end = now - timedelta(days=1), now + timedelta(minutes=1)

    updated = sf.Task.updated(start.astimezone(UTC), end.astimezone(UTC))
    assert updated["ids"] == [touched["Id"]]
    assert updated["latestDateCovered"].endswith("+0000")

    deleted = sf.Task.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [removed["Id"]]

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.deleted(now - timedelta(days=16), end)
    assert caught.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_describe_and_limits(org) -> None:
    _, sf, _, _ = org
    describe = sf.Task.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert fields["Subject"]["length"] == 255
    assert fields["Description"]["length"] == 32000
    assert [p["value"] for p in fields["Priority"]["picklistValues"]] == ["High", "Normal", "Low"]
    assert "Task" in [o["name"] for o in sf.describe()["sobjects"]]

    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    usage = sf.api_usage["api-usage"]
    assert usage.total == 15000
    assert usage.used == 15000 - limits["DailyApiRequests"]["Remaining"]


def test_expired_session_raises_the_clients_expired_error(org) -> None:
    emulator, sf, _, _ = org
    sf.query("SELECT Id FROM Task")
    emulator.advance_clock(emulator.config.access_token_lifetime_seconds + 1)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Task")
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_daily_limit_exhaustion_is_a_403(org) -> None:
    emulator, sf, _, _ = org
    emulator.set_api_usage(emulator.config.daily_api_limit)
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Task")
    assert caught.value.status == 403
    assert caught.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
