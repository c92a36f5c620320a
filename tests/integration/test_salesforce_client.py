"""SalesforceClient against the Salesforce emulator, over loopback sockets (uvicorn).

The session logs in with the client-credentials flow through the emulator's real token endpoint;
faults are switched on through the emulator's test namespace (`/__emulator__/faults`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from emulators.salesforce import (
    SalesforceEmulator,
    SalesforceEmulatorConfig,
    StatusValue,
    create_app,
)
from emulators.server import RunningServer, serve_in_thread, serving
from sync.connectors.http import RetryPolicy, ServiceError
from sync.connectors.salesforce import (
    TASK_FIELDS,
    LimitInfo,
    SalesforceClient,
)
from sync.connectors.salesforce_auth import (
    SECRET_ACCESS_TOKEN,
    SECRET_CLIENT_SECRET,
    SECRET_INSTANCE_URL,
    AuthMethod,
    SalesforceAuthConfig,
    SalesforceSession,
    login_headless,
)
from sync.mapping import build_picklists

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0, request_timeout=10.0)
MISSING_ID = "00T5g00000ZZZZZZZZ"


class DictStore:
    def __init__(self, **values: str) -> None:
        self.values = dict(values)

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class Org:
    emulator: SalesforceEmulator
    server: RunningServer
    client: SalesforceClient
    session: SalesforceSession
    store: DictStore

    @property
    def config(self) -> SalesforceEmulatorConfig:
        return self.emulator.config

    async def faults(self, **plan: object) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{self.server.base_url}/__emulator__/faults", json=plan)
            response.raise_for_status()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[tuple[Starlette, RunningServer]]:
    """One emulator for the module (reset before each test): starting uvicorn costs time."""
    app = create_app()
    with serve_in_thread(app) as server:
        yield app, server


@asynccontextmanager
async def connected(app: Starlette, server: RunningServer) -> AsyncIterator[Org]:
    config = app.state.emulator.config
    store = DictStore(**{SECRET_CLIENT_SECRET: config.client_secret})
    auth = SalesforceAuthConfig(
        server.base_url, config.client_id, method=AuthMethod.CLIENT_CREDENTIALS
    )
    session = await login_headless(auth, store)
    client = SalesforceClient(session, policy=FAST)
    try:
        yield Org(app.state.emulator, server, client, session, store)
    finally:
        await client.aclose()
        await session.aclose()


@pytest.fixture
async def org(shared_server: tuple[Starlette, RunningServer]) -> AsyncIterator[Org]:
    app, server = shared_server
    app.state.emulator.reset()
    async with connected(app, server) as org:
        yield org


@pytest.fixture
async def own_org(request: pytest.FixtureRequest) -> AsyncIterator[Org]:
    """An emulator with its own configuration (indirect parameter: config overrides)."""
    config = replace(SalesforceEmulatorConfig(), **request.param)
    app = create_app(config)
    async with serving(app) as server, connected(app, server) as org:
        yield org


def seed(org: Org, n: int, **fields: object) -> list[str]:
    return [
        org.emulator.add_task(Subject=f"Task {i}", **fields)["Id"]  # type: ignore[arg-type]
        for i in range(n)
    ]


# ---------------------------------------------------------------------------------------------
# Identity, picklists, limits


async def test_user_id_is_the_connected_user(org: Org) -> None:
    assert await org.client.user_id() == org.config.user_id


async def test_picklists_come_from_the_org(org: Org) -> None:
    picklists = await org.client.picklists()
    statuses = {s["value"]: s for s in picklists["Status"]}
    assert list(statuses) == [s.label for s in org.config.task_statuses]
    assert statuses["Completed"]["isClosed"] is True
    assert statuses["Not Started"]["isDefault"] is True
    assert statuses["In Progress"]["isClosed"] is False
    priorities = [p["value"] for p in picklists["Priority"]]
    assert priorities == ["High", "Normal", "Low"]
    assert [p["isDefault"] for p in picklists["Priority"]] == [False, True, False]
    mapped = build_picklists(picklists)
    assert (mapped.open_status, mapped.closed_status) == ("Not Started", "Completed")


@pytest.mark.parametrize(
    "own_org",
    [
        {
            "task_statuses": (
                StatusValue("Open", is_default=True),
                StatusValue("Done", is_closed=True),
            )
        }
    ],
    indirect=True,
)
async def test_picklists_follow_an_org_with_its_own_values(own_org: Org) -> None:
    org = own_org
    picklists = await org.client.picklists()
    assert [s["value"] for s in picklists["Status"]] == ["Open", "Done"]
    mapped = build_picklists(picklists)
    assert (mapped.open_status, mapped.closed_status) == ("Open", "Done")


async def test_limit_info_and_calls_are_tracked_on_every_response(org: Org) -> None:
    seed(org, 3)
    before = org.client.calls
    assert [r async for r in org.client.query("SELECT Id FROM Task")]
    await org.client.user_id()
    used, maximum = org.emulator.api_usage()
    assert org.client.limits == LimitInfo(used=used, max=maximum)
    assert org.client.limits.max == 15000
    assert org.client.calls == before + 1  # user_id came from the login, no call


# ---------------------------------------------------------------------------------------------
# Queries


async def test_a_query_of_2600_tasks_follows_next_records_url(org: Org) -> None:
    seeded = set(seed(org, 2600))
    calls = org.client.calls
    ids = [r["Id"] async for r in org.client.query("SELECT Id, Subject FROM Task")]
    assert len(ids) == 2600
    assert set(ids) == seeded
    assert org.client.calls - calls == 2  # 2,000 + 600


async def test_a_query_asks_for_its_next_page_before_the_caller_needs_it(org: Org) -> None:
    seed(org, 2600)
    calls = org.client.calls
    records = org.client.query("SELECT Id FROM Task")
    await anext(records)  # the first of 2,000 on the first page
    for _ in range(200):  # the second page is read while the caller works on the first
        if org.client.calls - calls == 2:
            break
        await asyncio.sleep(0.005)
    assert org.client.calls - calls == 2
    assert 1 + len([r async for r in records]) == 2600
    assert org.client.calls - calls == 2


async def test_changed_tasks_come_in_small_pages_from_one_query_call(org: Org) -> None:
    from sync.connectors.salesforce import CHANGES_PAGE

    seeded = set(seed(org, 2 * CHANGES_PAGE + 10))
    calls = org.client.calls
    pages = [page async for page in org.client.changed_task_pages(org.config.user_id, None)]
    # Handed over a few hundred at a time (short steps of the shared event loop)...
    assert [len(page) for page in pages] == [CHANGES_PAGE, CHANGES_PAGE, 10]
    assert {r["Id"] for page in pages for r in page} == seeded
    # ...from one query call: the API's pages hold 2,000 records.
    assert org.client.calls - calls == 1


async def test_query_all_includes_deleted_rows_and_query_does_not(org: Org) -> None:
    keep, gone = seed(org, 2)
    org.emulator.delete_task(gone)
    live = {r["Id"] async for r in org.client.query("SELECT Id FROM Task")}
    every = {r["Id"]: r async for r in org.client.query_all("SELECT Id, IsDeleted FROM Task")}
    assert live == {keep}
    assert set(every) == {keep, gone}
    assert every[gone]["IsDeleted"] is True


async def test_a_malformed_query_is_a_validation_error(org: Org) -> None:
    with pytest.raises(ServiceError) as caught:
        async for _ in org.client.query("SELECT NoSuchField FROM Task"):
            pass
    assert caught.value.category == "validation"
    assert caught.value.code == "INVALID_FIELD"
    with pytest.raises(ServiceError) as caught:
        async for _ in org.client.query("SELEKT Id FROM Task"):
            pass
    assert caught.value.code == "MALFORMED_QUERY"


async def test_changed_tasks_reads_by_systemmodstamp_with_overlap(org: Org) -> None:
    now = org.emulator.now()
    since = now - timedelta(hours=1)
    old = org.emulator.add_task(Subject="old", created_at=now - timedelta(hours=30))["Id"]
    edge = org.emulator.add_task(Subject="edge", created_at=since - timedelta(minutes=1))["Id"]
    before_overlap = org.emulator.add_task(
        Subject="before", created_at=since - timedelta(minutes=5)
    )["Id"]
    recent = org.emulator.add_task(Subject="recent", created_at=now - timedelta(minutes=10))["Id"]
    edited = org.emulator.add_task(
        Subject="edited", created_at=now - timedelta(days=3), modified_at=now - timedelta(minutes=3)
    )["Id"]
    deleted = org.emulator.add_task(Subject="deleted", created_at=now - timedelta(days=2))["Id"]
    org.emulator.delete_task(deleted)
    other = org.emulator.add_task(Subject="colleague's", OwnerId=org.config.other_users[0][0])
    rows = await org.client.changed_tasks(org.config.user_id, since)
    ids = [r["Id"] for r in rows]
    assert set(ids) == {edge, recent, edited, deleted}
    assert old not in ids and before_overlap not in ids and other["Id"] not in ids
    by_id = {r["Id"]: r for r in rows}
    assert by_id[deleted]["IsDeleted"] is True
    assert set(TASK_FIELDS) <= set(by_id[recent])
    stamps = [r["SystemModstamp"] for r in rows]
    assert stamps == sorted(stamps)
    everything = await org.client.changed_tasks(org.config.user_id, None)
    assert {r["Id"] for r in everything} == {edge, recent, edited, deleted, old, before_overlap}


def stamp_time(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_after_a_bulk_import_the_watermark_moves_to_the_query_time(org: Org) -> None:
    """The import is an hour old: the next read must not fetch its 2,500 tasks again."""
    user = org.config.user_id
    hour_ago = org.emulator.now() - timedelta(hours=1)
    imported = {org.emulator.add_task(Subject=f"Imported {i}", created_at=hour_ago)["Id"]
                for i in range(2500)}  # fmt: skip
    before = org.emulator.now()
    rows = await org.client.changed_tasks(user, hour_ago - timedelta(minutes=1))
    after = org.emulator.now()
    assert {r["Id"] for r in rows} == imported
    watermark = stamp_time(org.client.changes_watermark)
    newest = max(stamp_time(r["SystemModstamp"]) for r in rows)
    overlap = timedelta(minutes=2)
    assert watermark > newest  # moved on from the import's last stamp...
    # ...to the query's time minus the overlap (a Date header is whole seconds, and a server
    # may send one up to a second old: both only make the watermark earlier, never later)
    assert before - overlap - timedelta(seconds=3) <= watermark <= after - overlap

    calls = org.client.calls
    again = await org.client.changed_tasks(user, watermark)
    assert again == [] and org.client.calls - calls == 1  # one page saying "nothing", not two
    old_way = await org.client.changed_tasks(user, newest)  # the old watermark re-read them all
    assert len(old_way) == 2500


async def test_a_record_landing_late_inside_the_overlap_is_still_read(org: Org) -> None:
    """A transaction that commits after our query with a stamp before it (inside the overlap)
    must show up in the next read that starts from the stored watermark."""
    user = org.config.user_id
    org.emulator.add_task(Subject="old", created_at=org.emulator.now() - timedelta(hours=2))
    await org.client.changed_tasks(user, org.emulator.now() - timedelta(hours=3))
    watermark = stamp_time(org.client.changes_watermark)
    queried = watermark + timedelta(minutes=2)  # the query's time (Date, whole seconds)
    overlap = timedelta(minutes=2)
    late = org.emulator.add_task(Subject="late", created_at=queried - timedelta(seconds=90))
    edge = org.emulator.add_task(Subject="edge", created_at=watermark - overlap)  # >= is kept
    just_in = org.emulator.add_task(Subject="in", created_at=queried - overlap + timedelta(0, 1))
    rows = await org.client.changed_tasks(user, watermark)
    assert {late["Id"], edge["Id"], just_in["Id"]} <= {r["Id"] for r in rows}
    assert "old" not in {r["Subject"] for r in rows}


async def test_with_the_org_clock_ahead_of_its_date_header_the_newest_stamp_is_kept(
    org: Org,
) -> None:
    """The emulator's shifted clock stamps records later than its (real-time) Date header:
    the watermark never goes below what was read, and later edits are read."""
    org.emulator.advance_clock(3600)
    user = org.config.user_id
    task = org.emulator.add_task(Subject="made in the shifted hour")
    rows = await org.client.changed_tasks(user, org.emulator.now() - timedelta(minutes=5))
    assert [r["Id"] for r in rows] == [task["Id"]]
    assert org.client.changes_watermark == rows[0]["SystemModstamp"]
    org.emulator.advance_clock(60)
    org.emulator.update_task(task["Id"], Subject="edited later")
    rows = await org.client.changed_tasks(user, stamp_time(org.client.changes_watermark))
    assert [r["Subject"] for r in rows] == ["edited later"]


@pytest.mark.parametrize(
    "date_headers",
    [
        [],
        ["not a date"],
        ["Mon, 30 Nov 2099 10:00:00 GMT"],  # far ahead of this machine: a broken proxy
        ["Mon, 30 Nov 2026 10:00:00 GMT", "Mon, 30 Nov 2026 10:00:05 GMT"],  # two answers
    ],
)
def test_an_unusable_date_header_gives_no_server_time(date_headers: list[str]) -> None:
    from sync.connectors.salesforce import _server_time

    response = httpx.Response(200, headers=[("Date", d) for d in date_headers])
    assert _server_time(response) is None
    good = httpx.Response(200, headers={"Date": "Mon, 30 Nov 2026 10:00:00 GMT"})
    assert _server_time(good) == datetime(2026, 11, 30, 10, tzinfo=UTC)


async def test_changed_tasks_refuses_an_id_that_would_inject_soql(org: Org) -> None:
    with pytest.raises(ServiceError) as caught:
        await org.client.changed_tasks("005' OR OwnerId != '", None)
    assert caught.value.code == "MALFORMED_ID"


# ---------------------------------------------------------------------------------------------
# Replication: deleted and updated


async def test_deleted_ids_lists_deletions_in_the_window(org: Org) -> None:
    keep, gone = seed(org, 2)
    start = org.emulator.now() - timedelta(minutes=5)
    org.emulator.delete_task(gone)
    org.emulator.advance_clock(120)  # Salesforce covers whole minutes that have passed
    deleted = await org.client.deleted_ids(start, org.emulator.now())
    assert [d["id"] for d in deleted] == [gone]
    assert deleted[0]["deletedDate"]
    assert keep not in {d["id"] for d in deleted}


async def test_deleted_ids_beyond_15_days_is_invalid_replication_date(org: Org) -> None:
    now = org.emulator.now()
    with pytest.raises(ServiceError) as caught:
        await org.client.deleted_ids(now - timedelta(days=16), now)
    assert caught.value.code == "INVALID_REPLICATION_DATE"


async def test_an_emptied_recycle_bin_loses_the_window(org: Org) -> None:
    (gone,) = seed(org, 1)
    start = org.emulator.now() - timedelta(hours=1)
    org.emulator.delete_task(gone)
    org.emulator.advance_clock(120)
    org.emulator.empty_recycle_bin()
    with pytest.raises(ServiceError) as caught:
        await org.client.deleted_ids(start, org.emulator.now())
    assert caught.value.code == "INVALID_REPLICATION_DATE"


async def test_updated_ids(org: Org) -> None:
    start = org.emulator.now() - timedelta(minutes=5)
    (task,) = seed(org, 1)
    org.emulator.advance_clock(120)
    ids = await org.client.updated_ids(start, org.emulator.now())
    assert task in ids


# ---------------------------------------------------------------------------------------------
# Reads by id


async def test_retrieve_maps_missing_and_deleted_ids_to_none_in_batches_of_200(org: Org) -> None:
    ids = seed(org, 450)
    org.emulator.delete_task(ids[0])
    calls = org.client.calls
    found = await org.client.retrieve([*ids, MISSING_ID])
    assert org.client.calls - calls == 3
    assert found[ids[0]] is None
    assert found[MISSING_ID] is None
    assert found[ids[449]] is not None
    assert found[ids[449]]["Subject"] == "Task 449"
    assert sum(v is not None for v in found.values()) == 449


async def test_get_task_returns_none_for_a_deleted_task(org: Org) -> None:
    live, gone = seed(org, 2)
    org.emulator.delete_task(gone)
    record = await org.client.get_task(live)
    assert record is not None and record["Subject"] == "Task 0"
    assert await org.client.get_task(gone) is None
    assert await org.client.get_task(MISSING_ID) is None


# ---------------------------------------------------------------------------------------------
# Writes


async def test_create_in_batches_with_per_record_results(org: Org) -> None:
    records = [{"Subject": f"New {i}", "OwnerId": org.config.user_id} for i in range(450)]
    records[7] = {"Subject": "x" * 256}
    records[300] = {"Subject": "bad status", "Status": "Bogus"}
    calls = org.client.calls
    results = await org.client.create(records)
    assert org.client.calls - calls == 3
    assert len(results) == 450
    assert results[7].success is False and results[7].codes == ("STRING_TOO_LONG",)
    assert results[300].codes == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",)
    good = [r for r in results if r.success]
    assert len(good) == 448
    assert all(r.id and r.id.startswith("00T") and len(r.id) == 18 for r in good)
    assert len(org.emulator.tasks()) == 448


async def test_update_and_its_record_errors(org: Org) -> None:
    task, gone = seed(org, 2)
    org.emulator.delete_task(gone)
    results = await org.client.update(
        [
            {"Id": task, "Subject": "Renamed", "Status": "Completed"},
            {"Id": gone, "Subject": "Too late"},
        ]
    )
    assert results[0].success and results[0].id == task
    assert results[1].success is False
    assert results[1].codes == ("ENTITY_IS_DELETED",)
    stored = org.emulator.task(task)
    assert stored is not None and stored["Subject"] == "Renamed" and stored["IsClosed"] is True


async def test_update_with_an_unknown_field_is_a_validation_error(org: Org) -> None:
    (task,) = seed(org, 1)
    try:
        results = await org.client.update([{"Id": task, "NoSuchField__c": "x"}])
    except ServiceError as error:
        assert (error.category, error.code) == ("validation", "INVALID_FIELD")
    else:
        assert results[0].codes == ("INVALID_FIELD",)


async def test_delete_and_delete_again(org: Org) -> None:
    ids = seed(org, 3)
    results = await org.client.delete(ids[:2])
    assert [r.success for r in results] == [True, True]
    assert {t["Id"] for t in org.emulator.tasks()} == {ids[2]}
    again = await org.client.delete(ids[:1])
    assert again[0].success is False
    assert again[0].codes == ("ENTITY_IS_DELETED",)


async def test_find_by_external_id(org: Org) -> None:
    field = org.config.external_id_field
    assert field
    created = await org.client.create(
        [{"Subject": "a", field: "key-1"}, {"Subject": "b", field: "it's key-2"}]
    )
    found = await org.client.find_by_external_id(field, ["key-1", "it's key-2", "key-3"])
    assert found == {"key-1": created[0].id, "it's key-2": created[1].id}
    with pytest.raises(ServiceError) as caught:
        await org.client.find_by_external_id("Id FROM Task --", ["x"])
    assert caught.value.code == "INVALID_FIELD"


# ---------------------------------------------------------------------------------------------
# Faults: limits, retries, deadlines, tokens, locks


async def test_daily_limit_stops_with_no_retry_and_says_when(org: Org) -> None:
    org.emulator.set_api_usage(org.config.daily_api_limit)
    calls = org.client.calls
    with pytest.raises(ServiceError) as caught:
        await org.client.retrieve([MISSING_ID])
    error = caught.value
    assert (error.category, error.code, error.retryable) == (
        "limit",
        "REQUEST_LIMIT_EXCEEDED",
        False,
    )
    assert error.retry_at is not None and error.retry_at > datetime.now(UTC)
    assert "daily API limit" in str(error)
    assert org.client.calls - calls == 1


async def test_429_then_503_sequence_is_retried(org: Org) -> None:
    (task,) = seed(org, 1)
    await org.faults(kinds=["429"], count=1, retry_after=0)
    assert (await org.client.retrieve([task]))[task] is not None
    await org.faults(kinds=["503", "503_html"], count=2)
    assert (await org.client.retrieve([task]))[task] is not None


async def test_a_create_refused_with_503_is_sent_again_and_created_once(org: Org) -> None:
    await org.faults(kinds=["503"], count=2, methods=["POST"])
    results = await org.client.create([{"Subject": "Once"}])
    assert results[0].success
    assert [t["Subject"] for t in org.emulator.tasks()] == ["Once"]


async def test_a_create_failing_with_500_is_not_replayed(org: Org) -> None:
    await org.faults(kinds=["500"], count=1, methods=["POST"])
    with pytest.raises(ServiceError) as caught:
        await org.client.create([{"Subject": "Maybe"}])
    assert caught.value.status == 500
    assert caught.value.category == "transient"
    assert org.emulator.tasks() == []


async def test_a_create_whose_answer_was_lost_is_found_again_by_its_key(org: Org) -> None:
    field = org.config.external_id_field
    assert field
    await org.faults(kinds=["reset_after"], count=1, methods=["POST"])
    with pytest.raises(ServiceError) as caught:
        await org.client.create([{"Subject": "Lost answer", field: "corr-1"}])
    assert caught.value.code == "NETWORK_ERROR"
    assert len(org.emulator.tasks()) == 1  # created once, never twice
    found = await org.client.find_by_external_id(field, ["corr-1"])
    assert found == {"corr-1": org.emulator.tasks()[0]["Id"]}


async def test_a_dropped_read_is_retried(org: Org) -> None:
    seed(org, 2)
    await org.faults(kinds=["reset"], count=1, methods=["GET"])
    rows = [r async for r in org.client.query("SELECT Id FROM Task")]
    assert len(rows) == 2


async def test_a_dripping_server_hits_the_deadline(org: Org) -> None:
    seed(org, 20)
    client = SalesforceClient(
        org.session, policy=RetryPolicy(attempts=2, base_delay=0.01, request_timeout=0.8)
    )
    await org.faults(kinds=["drip"], count=1, drip_seconds=0.2, drip_chunk_bytes=16)
    try:
        with pytest.raises(ServiceError) as caught:
            async for _ in client.query("SELECT Id, Subject FROM Task"):
                pass
    finally:
        await client.aclose()
    assert caught.value.code == "DEADLINE_EXCEEDED"


async def test_a_hanging_server_hits_the_deadline(org: Org) -> None:
    client = SalesforceClient(org.session, policy=RetryPolicy(attempts=2, request_timeout=0.5))
    await org.faults(kinds=["hang"], count=1, hang_seconds=1.5)
    try:
        with pytest.raises(ServiceError) as caught:
            await client.retrieve([MISSING_ID])
    finally:
        await client.aclose()
    assert caught.value.code == "DEADLINE_EXCEEDED"


async def test_an_expired_token_is_refreshed_once_and_the_request_replayed(org: Org) -> None:
    (task,) = seed(org, 1)
    refreshes = org.session.refreshes
    old = org.store.values[SECRET_ACCESS_TOKEN]
    await org.faults(kinds=["expire_token"], count=1)
    results = await org.client.update([{"Id": task, "Subject": "After refresh"}])
    assert results[0].success
    assert org.session.refreshes == refreshes + 1
    assert org.store.values[SECRET_ACCESS_TOKEN] != old
    stored = org.emulator.task(task)
    assert stored is not None and stored["Subject"] == "After refresh"


async def test_concurrent_401s_share_one_refresh(org: Org) -> None:
    seed(org, 1)
    refreshes = org.session.refreshes
    org.emulator.oauth.expire(org.store.values[SECRET_ACCESS_TOKEN])

    async def read() -> int:
        return len([r async for r in org.client.query("SELECT Id FROM Task")])

    assert await asyncio.gather(*(read() for _ in range(6))) == [1] * 6
    assert org.session.refreshes == refreshes + 1


async def test_locked_rows_are_retried_for_update_only_those_records(org: Org) -> None:
    ids = seed(org, 3)
    await org.faults(kinds=["lock"], count=1, methods=["PATCH"])
    results = await org.client.update([{"Id": i, "Subject": "Locked once"} for i in ids])
    assert all(r.success for r in results)
    assert all(org.emulator.task(i)["Subject"] == "Locked once" for i in ids)  # type: ignore[index]


async def test_a_locked_create_is_reported_not_replayed(org: Org) -> None:
    await org.faults(kinds=["lock"], count=1, methods=["POST"])
    results = await org.client.create([{"Subject": "a"}, {"Subject": "b"}])
    assert all(r.codes == ("UNABLE_TO_LOCK_ROW",) for r in results)
    assert org.emulator.tasks() == []


async def test_no_token_reaches_a_log_line_or_an_error(org: Org, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    (task,) = seed(org, 1)
    await org.faults(kinds=["expire_token"], count=1)
    await org.client.update([{"Id": task, "Subject": "x"}])
    with pytest.raises(ServiceError) as caught:
        async for _ in org.client.query("SELECT Nope FROM Task"):
            pass
    secrets = [org.store.values[SECRET_ACCESS_TOKEN], org.config.client_secret]
    texts = [caplog.text, str(caught.value), repr(caught.value), repr(org.session)]
    assert all(s not in t for s in secrets for t in texts)


# ---------------------------------------------------------------------------------------------
# A misbehaving server: paging must stay on the instance


def _paging_app(next_url: str | None) -> Starlette:
    async def query(request: Request) -> JSONResponse:
        body: dict = {"totalSize": 4, "done": False, "records": [{"Id": "00T000000000001AAA"}]}
        if next_url:
            body["nextRecordsUrl"] = next_url
        return JSONResponse(body)

    return Starlette(routes=[Route("/services/data/v62.0/query", query)])


@pytest.mark.parametrize(
    ("next_url", "code"),
    [
        ("https://evil.example/services/data/v62.0/query/01g-2000", "UNTRUSTED_NEXT_PAGE"),
        ("//evil.example/services/data/v62.0/query/01g-2000", "UNTRUSTED_NEXT_PAGE"),
        ("/services/apexrest/steal", "UNTRUSTED_NEXT_PAGE"),
        (None, "MALFORMED_RESPONSE"),
    ],
)
async def test_paging_never_leaves_the_instance(next_url: str | None, code: str) -> None:
    async with serving(_paging_app(next_url)) as server:
        store = DictStore(**{SECRET_ACCESS_TOKEN: "tok", SECRET_INSTANCE_URL: server.base_url})
        session = SalesforceSession(SalesforceAuthConfig(server.base_url, "cid"), store)
        client = SalesforceClient(session, policy=FAST)
        seen = []
        with pytest.raises(ServiceError) as caught:
            async for record in client.query("SELECT Id FROM Task"):
                seen.append(record)
        await client.aclose()
    assert caught.value.code == code
    assert len(seen) == 1
    assert "tok" not in str(caught.value)


async def test_a_response_that_is_not_json_is_a_clear_error() -> None:
    async def query(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<html>maintenance</html>", status_code=200)

    app = Starlette(routes=[Route("/services/data/v62.0/query", query)])
    async with serving(app) as server:
        store = DictStore(**{SECRET_ACCESS_TOKEN: "tok", SECRET_INSTANCE_URL: server.base_url})
        session = SalesforceSession(SalesforceAuthConfig(server.base_url, "cid"), store)
        client = SalesforceClient(session, policy=FAST)
        with pytest.raises(ServiceError) as caught:
            async for _ in client.query("SELECT Id FROM Task"):
                pass
        await client.aclose()
    error = caught.value
    assert (error.code, error.category, error.retryable) == (
        "MALFORMED_RESPONSE",
        "transient",
        True,
    )
    assert "is not JSON" in str(error) and "Nothing was changed" in str(error)
