"""The emulator's REST data API over loopback sockets: records, queries, windows, limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulators.salesforce import SalesforceEmulator, create_app, default_config
from emulators.sf_ids import make_id
from tests.emulators.salesforce_setup import authorized_client, serve_salesforce

SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
V = "/services/data/v62.0"


@pytest.fixture
def api(
    sf_emulator: SalesforceEmulator, sf_client: Callable[..., httpx.Client]
) -> tuple[httpx.Client, SalesforceEmulator]:
    return sf_client(V), sf_emulator


def sf_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# ----------------------------------------------------------------------------- records


def test_create_fills_system_fields(api) -> None:
    client, emulator = api
    response = client.post("/sobjects/Task/", json={"Subject": "Call Jane"})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    record = client.get(f"/sobjects/Task/{body['id']}").json()
    assert record["attributes"] == {"type": "Task", "url": f"{V}/sobjects/Task/{body['id']}"}
    assert record["Id"] == body["id"] and record["Id"].startswith("00T") and len(body["id"]) == 18
    assert record["OwnerId"] == emulator.config.user_id
    assert record["TaskSubtype"] == "Task"
    assert record["Status"] == "Not Started" and record["Priority"] == "Normal"
    assert record["IsClosed"] is False and record["IsDeleted"] is False
    for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        assert SF_DATETIME.match(record[name]), record[name]
    assert record["ActivityDate"] is None and record["Description"] is None


def test_get_with_fields_and_a_15_character_id(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="Call", ActivityDate="2026-12-01")
    record = client.get(
        f"/sobjects/Task/{task['Id'][:15]}", params={"fields": "Subject,activitydate"}
    )
    assert record.status_code == 200
    assert set(record.json()) == {"attributes", "Subject", "ActivityDate"}
    assert record.json()["ActivityDate"] == "2026-12-01"


def test_status_drives_is_closed_and_priority_drives_is_high_priority(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="x")
    patch = client.patch(
        f"/sobjects/Task/{task['Id']}", json={"Status": "Completed", "Priority": "High"}
    )
    assert patch.status_code == 204 and patch.content == b""
    record = emulator.task(task["Id"])
    assert record["IsClosed"] is True and record["IsHighPriority"] is True
    assert record["CompletedDateTime"] is not None
    client.patch(f"/sobjects/Task/{task['Id']}", json={"Status": "In Progress"})
    record = emulator.task(task["Id"])
    assert record["IsClosed"] is False and record["CompletedDateTime"] is None


def test_update_bumps_last_modified_and_system_modstamp(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="old", created_at=emulator.now() - timedelta(hours=5))
    client.patch(f"/sobjects/Task/{task['Id']}", json={"Subject": "new", "Description": ""})
    record = emulator.task(task["Id"])
    assert record["CreatedDate"] == task["CreatedDate"]
    assert record["SystemModstamp"] > task["SystemModstamp"]
    assert record["LastModifiedDate"] == record["SystemModstamp"]
    assert record["Description"] is None  # "" is stored as null


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        ({"Subject": "x" * 256}, "STRING_TOO_LONG", ["Subject"]),
        ({"Subject": "😀" * 128}, "STRING_TOO_LONG", ["Subject"]),  # UTF-16 units count
        ({"Description": "d" * 32001}, "STRING_TOO_LONG", ["Description"]),
        ({"Status": "Done"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status"]),
        ({"Priority": "Urgent"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Priority"]),
        ({"Status": None}, "REQUIRED_FIELD_MISSING", ["Status"]),
        ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
        ({"OwnerId": make_id("005", 999)}, "INVALID_CROSS_REFERENCE_KEY", ["OwnerId"]),
        ({"Bogus__c": 1}, "INVALID_FIELD", []),
    ],
)
def test_validation_errors(api, body: dict, code: str, fields: list[str]) -> None:
    client, emulator = api
    response = client.post("/sobjects/Task", json=body)
    assert response.status_code == 400
    error = response.json()[0]
    assert error["errorCode"] == code
    assert error["fields"] == fields
    assert error["message"]
    assert emulator.tasks() == []  # nothing written


def test_exactly_255_characters_and_32000_are_accepted(api) -> None:
    client, _ = api
    response = client.post(
        "/sobjects/Task", json={"Subject": "s" * 255, "Description": "d" * 32000}
    )
    assert response.status_code == 201


def test_task_subtype_can_be_set_on_create_but_not_changed(api) -> None:
    client, _ = api
    created = client.post("/sobjects/Task", json={"Subject": "call", "TaskSubtype": "Call"}).json()
    response = client.patch(f"/sobjects/Task/{created['id']}", json={"TaskSubtype": "Task"})
    assert response.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'{"ActivityDate": "2026-13-45"}', b'{"IsReminderSet": "yes"}'],
)
def test_json_parser_errors(api, raw: bytes) -> None:
    client, _ = api
    response = client.post(
        "/sobjects/Task", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_missing_deleted_and_malformed_ids(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="gone")
    emulator.delete_task(task["Id"])
    never = make_id("00T", 987654)

    assert client.get(f"/sobjects/Task/{task['Id']}").json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    patched = client.patch(f"/sobjects/Task/{task['Id']}", json={"Subject": "x"})
    assert patched.status_code == 404
    assert patched.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    deleted = client.delete(f"/sobjects/Task/{task['Id']}")
    assert deleted.status_code == 404 and deleted.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert client.patch(f"/sobjects/Task/{never}", json={}).json()[0]["errorCode"] == "NOT_FOUND"
    odd = client.get("/sobjects/Task/not-an-id")
    assert odd.status_code == 404
    assert "Provided external ID field does not exist" in odd.json()[0]["message"]


def test_delete_moves_to_recycle_bin(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="bye")
    assert client.delete(f"/sobjects/Task/{task['Id']}").status_code == 204
    record = emulator.task(task["Id"])
    assert record["IsDeleted"] is True
    assert record["SystemModstamp"] > task["SystemModstamp"]
    assert emulator.tasks() == []
    assert len(emulator.tasks(include_deleted=True)) == 1


def test_unknown_object_version_and_method(api) -> None:
    client, _ = api
    assert client.get("/sobjects/Widget/describe").status_code == 404
    assert client.get("/services/nothing").status_code == 404
    old = client.get(client.base_url.join("/services/data/v20.0/limits"))
    assert old.status_code == 404 and old.json()[0]["errorCode"] == "NOT_FOUND"
    put = client.put("/sobjects/Task/" + make_id("00T", 1), json={})
    assert put.status_code == 405 and put.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


# ----------------------------------------------------------------------------- upsert


def test_upsert_creates_then_updates_then_reports_duplicates(api) -> None:
    client, emulator = api
    url = "/sobjects/Task/ReminderSync_Key__c/k-1"
    created = client.patch(url, json={"Subject": "one"})
    assert created.status_code == 201
    assert created.json()["created"] is True
    updated = client.patch(url, json={"Subject": "two"})
    assert updated.status_code == 200
    assert updated.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    assert client.get(url).json()["Subject"] == "two"
    emulator.add_task(Subject="dup", ReminderSync_Key__c="K-1")  # external ids ignore case
    many = client.patch(url, json={"Subject": "three"})
    assert many.status_code == 300
    assert len(many.json()) == 2 and all(u.startswith(f"{V}/sobjects/Task/") for u in many.json())


def test_upsert_answers_204_before_api_46(api) -> None:
    client, emulator = api
    emulator.add_task(Subject="x", ReminderSync_Key__c="k")
    response = client.patch(
        client.base_url.join("/services/data/v45.0/sobjects/Task/ReminderSync_Key__c/k"),
        json={"Subject": "y"},
    )
    assert response.status_code == 204


def test_upsert_on_a_field_that_is_not_an_external_id(api) -> None:
    client, _ = api
    response = client.patch("/sobjects/Task/Subject/abc", json={})
    assert response.status_code == 404
    assert response.json()[0] == {
        "message": "Provided external ID field does not exist or is not accessible: Subject",
        "errorCode": "NOT_FOUND",
    }


def test_org_without_the_external_id_field() -> None:
    config = replace(default_config(), external_id_field=None)
    with (
        serve_salesforce(config) as (server, emulator),
        authorized_client(server, emulator, V, timeout=5) as client,
    ):
        upsert = client.patch("/sobjects/Task/ReminderSync_Key__c/k", json={})
        assert upsert.status_code == 404
        names = [f["name"] for f in client.get("/sobjects/Task/describe").json()["fields"]]
        assert "ReminderSync_Key__c" not in names
        query = client.get("/query", params={"q": "SELECT ReminderSync_Key__c FROM Task"})
        assert query.json()[0]["errorCode"] == "INVALID_FIELD"


# ----------------------------------------------------------------------------- describe etc.


def test_describe_has_real_lengths_and_the_orgs_picklists(api) -> None:
    client, _ = api
    describe = client.get("/sobjects/Task/describe").json()
    assert describe["name"] == "Task" and describe["keyPrefix"] == "00T"
    fields = {f["name"]: f for f in describe["fields"]}
    assert fields["Subject"]["length"] == 255 and fields["Subject"]["type"] == "combobox"
    assert fields["Description"]["length"] == 32000
    assert fields["Description"]["type"] == "textarea"
    status = fields["Status"]
    assert status["restrictedPicklist"] is True
    assert [p["value"] for p in status["picklistValues"]] == [
        "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred",
    ]  # fmt: skip
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["Not Started"]
    assert fields["ReminderSync_Key__c"]["externalId"] is True
    assert fields["IsClosed"]["updateable"] is False


def test_picklist_objects_are_queryable(api) -> None:
    client, _ = api
    statuses = client.get(
        "/query",
        params={"q": "SELECT MasterLabel, IsClosed, IsDefault FROM TaskStatus ORDER BY SortOrder"},
    ).json()
    assert [(r["MasterLabel"], r["IsClosed"]) for r in statuses["records"]][:3] == [
        ("Not Started", False), ("In Progress", False), ("Completed", True),
    ]  # fmt: skip
    priorities = client.get(
        "/query", params={"q": "SELECT MasterLabel, IsHighPriority FROM TaskPriority"}
    ).json()
    assert {r["MasterLabel"]: r["IsHighPriority"] for r in priorities["records"]} == {
        "High": True, "Normal": False, "Low": False,
    }  # fmt: skip


def test_custom_org_statuses_are_served_everywhere() -> None:
    from emulators.salesforce import StatusValue

    statuses = (StatusValue("Open", is_default=True), StatusValue("Done", is_closed=True))
    app = create_app(replace(default_config(), task_statuses=statuses))
    emulator = app.state.emulator
    task = emulator.add_task(Subject="x", Status="Done")
    assert task["IsClosed"] is True
    with pytest.raises(ValueError, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        emulator.add_task(Subject="x", Status="Completed")


def test_versions_and_user(api, served) -> None:
    client, emulator = api
    server, _ = served
    versions = httpx.get(server.base_url + "/services/data/").json()
    assert versions[-1] == {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}
    user = client.get(f"/sobjects/User/{emulator.config.user_id}").json()
    assert user["Username"] == emulator.config.username


# ----------------------------------------------------------------------------- query


def test_query_paging_of_2600_tasks_and_batch_size(api) -> None:
    client, emulator = api
    for number in range(2600):
        emulator.add_task(Subject=f"T{number:04d}")
    first = client.get("/query", params={"q": "SELECT Id, Subject FROM Task ORDER BY Subject"})
    body = first.json()
    assert body["totalSize"] == 2600 and body["done"] is False and len(body["records"]) == 2000
    assert re.match(rf"^{V}/query/01g\w+-2000$", body["nextRecordsUrl"])
    rest = client.get(client.base_url.join(body["nextRecordsUrl"])).json()
    assert rest["done"] is True and "nextRecordsUrl" not in rest and len(rest["records"]) == 600
    subjects = [r["Subject"] for r in body["records"] + rest["records"]]
    assert subjects == [f"T{n:04d}" for n in range(2600)]
    # The cursor is gone once its last page has been read.
    again = client.get(client.base_url.join(body["nextRecordsUrl"]))
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"

    pages = 0
    url: str | None = None
    seen = 0
    headers = {"Sforce-Query-Options": "batchSize=1000"}
    response = client.get("/query", params={"q": "SELECT Id FROM Task"}, headers=headers).json()
    while True:
        pages += 1
        seen += len(response["records"])
        url = response.get("nextRecordsUrl")
        if not url:
            break
        response = client.get(client.base_url.join(url), headers=headers).json()
    assert (pages, seen) == (3, 2600)
    tiny = client.get(
        "/query",
        params={"q": "SELECT Id FROM Task"},
        headers={"Sforce-Query-Options": "batchSize=5"},
    ).json()
    assert len(tiny["records"]) == 200  # Salesforce's minimum batch


def test_query_cursor_expires_when_idle(api) -> None:
    client, emulator = api
    for number in range(2100):
        emulator.add_task(Subject=f"T{number}")
    body = client.get("/query", params={"q": "SELECT Id FROM Task"}).json()
    emulator.advance_clock(16 * 60)
    client.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
    late = client.get(client.base_url.join(body["nextRecordsUrl"]))
    assert late.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_and_query_all_differ_on_deleted_rows(api) -> None:
    client, emulator = api
    kept = emulator.add_task(Subject="kept")
    gone = emulator.add_task(Subject="gone")
    emulator.delete_task(gone["Id"])
    soql = "SELECT Id, IsDeleted FROM Task WHERE SystemModstamp >= 2020-01-01T00:00:00Z"
    live = client.get("/query", params={"q": soql}).json()
    assert [r["Id"] for r in live["records"]] == [kept["Id"]]
    every = client.get("/queryAll", params={"q": soql}).json()
    assert {r["Id"]: r["IsDeleted"] for r in every["records"]} == {
        kept["Id"]: False,
        gone["Id"]: True,
    }
    count = client.get("/queryAll", params={"q": "SELECT COUNT() FROM Task"}).json()
    assert count == {"totalSize": 2, "done": True, "records": []}


def test_query_errors_are_the_error_array(api) -> None:
    client, _ = api
    bad = client.get("/query", params={"q": "SELECT Nope FROM Task"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope'" in bad.json()[0]["message"]
    missing = client.get("/query")
    assert missing.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_dates_come_back_in_salesforce_format(api) -> None:
    client, emulator = api
    emulator.add_task(Subject="x", ActivityDate="2026-12-01", created_at="2026-11-01T10:00:00Z")
    record = client.get(
        "/query", params={"q": "SELECT ActivityDate, CreatedDate FROM Task"}
    ).json()["records"][0]
    assert record["ActivityDate"] == "2026-12-01"
    assert record["CreatedDate"] == "2026-11-01T10:00:00.000+0000"


# ----------------------------------------------------------------------------- windows


def test_updated_window_has_minute_granularity(api) -> None:
    client, emulator = api
    now = emulator.now().replace(second=30, microsecond=0)
    early = emulator.add_task(Subject="early", created_at=now - timedelta(minutes=10))
    inside = emulator.add_task(Subject="inside", created_at=now - timedelta(minutes=5))
    start = now - timedelta(minutes=5)  # seconds are ignored: 5 min 30 s ago becomes :00
    response = client.get(
        "/sobjects/Task/updated/",
        params={"start": sf_time(start), "end": sf_time(now + timedelta(minutes=2))},
    )
    body = response.json()
    assert inside["Id"] in body["ids"] and early["Id"] not in body["ids"]
    assert SF_DATETIME.match(body["latestDateCovered"])
    assert body["latestDateCovered"].endswith(":00.000+0000")


def test_updated_window_refusals(api) -> None:
    client, emulator = api
    now = emulator.now()
    too_old = client.get(
        "/sobjects/Task/updated",
        params={"start": sf_time(now - timedelta(days=31)), "end": sf_time(now)},
    )
    assert too_old.status_code == 400
    assert too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    backwards = client.get(
        "/sobjects/Task/updated",
        params={"start": sf_time(now), "end": sf_time(now - timedelta(hours=1))},
    )
    assert backwards.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    same_minute = client.get(
        "/sobjects/Task/updated",
        params={"start": "2026-11-30T06:25:01Z", "end": "2026-11-30T06:25:59Z"},
    )
    assert same_minute.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_deleted_lists_records_with_their_dates_and_the_window(api) -> None:
    client, emulator = api
    now = emulator.now()
    task = emulator.add_task(Subject="x", created_at=now - timedelta(days=3))
    emulator.delete_task(task["Id"], at=now - timedelta(days=2))
    params = {"start": sf_time(now - timedelta(days=14)), "end": sf_time(now)}
    body = client.get("/sobjects/Task/deleted/", params=params).json()
    assert body["deletedRecords"] == [
        {"id": task["Id"], "deletedDate": emulator.task(task["Id"])["SystemModstamp"]}
    ]
    earliest = datetime.strptime(body["earliestDateAvailable"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert timedelta(days=14, hours=23) < now - earliest <= timedelta(days=15)


def test_deleted_window_is_lost_after_15_days_or_an_emptied_recycle_bin(api) -> None:
    client, emulator = api
    now = emulator.now()
    old = client.get(
        "/sobjects/Task/deleted",
        params={"start": sf_time(now - timedelta(days=16)), "end": sf_time(now)},
    )
    assert old.status_code == 400 and old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"

    task = emulator.add_task(Subject="x")
    emulator.delete_task(task["Id"])
    emulator.empty_recycle_bin()
    recent = client.get(
        "/sobjects/Task/deleted",
        params={"start": sf_time(now - timedelta(days=1)), "end": sf_time(now)},
    )
    assert recent.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    assert emulator.task(task["Id"]) is None


def test_deleted_rows_are_purged_after_15_days(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="x")
    emulator.delete_task(task["Id"])
    emulator.advance_clock(16 * 24 * 3600)
    client.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
    every = client.get("/queryAll", params={"q": "SELECT Id FROM Task"}).json()
    assert every["totalSize"] == 0
    gone = client.patch(f"/sobjects/Task/{task['Id']}", json={})
    assert gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


# ----------------------------------------------------------------------------- collections


def records(*bodies: dict) -> list[dict]:
    return [{"attributes": {"type": "Task"}, **body} for body in bodies]


def test_collection_create_reports_each_record(api) -> None:
    client, emulator = api
    response = client.post(
        "/composite/sobjects",
        json={"allOrNone": False, "records": records({"Subject": "a"}, {"Subject": "b" * 300})},
    )
    assert response.status_code == 200
    ok, bad = response.json()
    assert ok["success"] is True and ok["id"].startswith("00T")
    assert bad["success"] is False and "id" not in bad
    assert bad["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert bad["errors"][0]["fields"] == ["Subject"]
    assert [t["Subject"] for t in emulator.tasks()] == ["a"]


def test_collection_all_or_none_rolls_back(api) -> None:
    client, emulator = api
    response = client.post(
        "/composite/sobjects",
        json={"allOrNone": True, "records": records({"Subject": "a"}, {"Status": "Nope"})},
    )
    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emulator.tasks() == []


def test_collection_update_and_its_errors(api) -> None:
    client, emulator = api
    live = emulator.add_task(Subject="live")
    gone = emulator.add_task(Subject="gone")
    emulator.delete_task(gone["Id"])
    response = client.patch(
        "/composite/sobjects",
        json={
            "records": records(
                {"id": live["Id"], "Subject": "changed"},
                {"id": gone["Id"], "Subject": "x"},
                {"Subject": "no id"},
                {"id": "garbage", "Subject": "x"},
                {"id": make_id("00T", 999999), "Subject": "x"},
            )
        },
    )
    results = response.json()
    assert results[0] == {"id": live["Id"], "success": True, "errors": []}
    codes = [r["errors"][0]["statusCode"] for r in results[1:]]
    assert codes == [
        "ENTITY_IS_DELETED", "MISSING_ARGUMENT", "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY",
    ]  # fmt: skip
    assert emulator.task(live["Id"])["Subject"] == "changed"


def test_collection_delete(api) -> None:
    client, emulator = api
    one = emulator.add_task(Subject="1")
    two = emulator.add_task(Subject="2")
    emulator.delete_task(two["Id"])
    response = client.delete(
        "/composite/sobjects", params={"ids": f"{one['Id']},{two['Id']}", "allOrNone": "false"}
    )
    ok, bad = response.json()
    assert ok == {"id": one["Id"], "success": True, "errors": []}
    assert bad["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    missing = client.delete("/composite/sobjects")
    assert missing.status_code == 400
    assert missing.json() == [
        {"message": "At least 1 Id is required.", "errorCode": "REQUIRED_FIELD_MISSING"}
    ]


def test_collection_limits_and_version(api) -> None:
    client, _ = api
    too_many = client.post(
        "/composite/sobjects", json={"records": records(*[{"Subject": str(n)} for n in range(201)])}
    )
    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    exactly = client.post(
        "/composite/sobjects", json={"records": records(*[{"Subject": str(n)} for n in range(200)])}
    )
    assert all(r["success"] for r in exactly.json())
    old = client.post(
        client.base_url.join("/services/data/v41.0/composite/sobjects"),
        json={"records": records({"Subject": "x"})},
    )
    assert old.status_code == 404


def test_collection_retrieve(api) -> None:
    client, emulator = api
    task = emulator.add_task(Subject="here")
    gone = emulator.add_task(Subject="gone")
    emulator.delete_task(gone["Id"])
    ids = f"{task['Id']},{gone['Id']}"
    got = client.get("/composite/sobjects/Task", params={"ids": ids, "fields": "Id,Subject"})
    assert got.json() == [
        {
            "attributes": {"type": "Task", "url": f"{V}/sobjects/Task/{task['Id']}"},
            "Id": task["Id"],
            "Subject": "here",
        },
        None,
    ]
    posted = client.post(
        "/composite/sobjects/Task", json={"ids": [task["Id"]], "fields": ["Status"]}
    )
    assert posted.json()[0]["Status"] == "Not Started"
    bad_field = client.get("/composite/sobjects/Task", params={"ids": ids, "fields": "Nope"})
    assert bad_field.json()[0]["errorCode"] == "INVALID_FIELD"


# ----------------------------------------------------------------------------- limits


def test_every_data_response_carries_sforce_limit_info(api) -> None:
    client, emulator = api
    first = client.get("/limits")
    used_before = int(first.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    second = client.get("/sobjects/Task/describe")
    assert second.headers["Sforce-Limit-Info"] == f"api-usage={used_before + 1}/15000"
    error = client.get("/query", params={"q": "nonsense"})
    assert error.headers["Sforce-Limit-Info"].startswith("api-usage=")
    limits = client.get("/limits").json()["DailyApiRequests"]
    assert limits == {"Max": 15000, "Remaining": 15000 - emulator.api_usage()[0]}


def test_daily_limit_ends_in_403_until_24_hours_pass() -> None:
    config = replace(default_config(), daily_api_limit=5)
    with (
        serve_salesforce(config) as (server, emulator),
        authorized_client(server, emulator, V, timeout=5) as client,
    ):
        statuses = [client.get("/limits").status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 200, 403]
        refused = client.get("/limits")
        assert refused.json() == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=5/5"
        emulator.advance_clock(24 * 3600 + 1)
        client.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
        assert client.get("/limits").status_code == 200


def test_unauthenticated_requests_do_not_count(api, served) -> None:
    _, emulator = api
    server, _ = served
    used = emulator.api_usage()[0]
    response = httpx.get(server.base_url + V + "/limits", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert emulator.api_usage()[0] == used


# ----------------------------------------------------------------------------- seeding API


def test_add_task_refuses_bad_seeds(api) -> None:
    _, emulator = api
    with pytest.raises(ValueError, match="STRING_TOO_LONG"):
        emulator.add_task(Subject="x" * 300)
    with pytest.raises(ValueError, match="set by the server"):
        emulator.add_task(IsDeleted=True)
    with pytest.raises(ValueError, match="modified_at"):
        emulator.add_task(created_at="2026-01-02T00:00:00Z", modified_at="2026-01-01T00:00:00Z")


def test_add_task_with_past_times_and_recurrence_fields(api) -> None:
    _, emulator = api
    root = emulator.add_task(Subject="weekly", IsRecurrence=True)
    child = emulator.add_task(
        Subject="weekly",
        RecurrenceActivityId=root["Id"],
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        modified_at="2026-11-02T08:00:00Z",
    )
    assert child["CreatedDate"] == "2026-11-01T00:00:00.000+0000"
    assert child["LastModifiedDate"] == "2026-11-02T08:00:00.000+0000"
    assert child["SystemModstamp"] == child["LastModifiedDate"]
    assert child["RecurrenceActivityId"] == root["Id"]
    assert emulator.task(root["Id"])["IsRecurrence"] is True
