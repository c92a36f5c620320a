"""SalesConnectClient against the Sales Connect emulator over loopback sockets.

The emulator is the real HTTP server (uvicorn on a free port); faults are switched on through its
test namespace, state is seeded and inspected through its Python API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from emulators.salesconnect import SalesConnectConfig, create_app
from emulators.sc_state import SalesConnectEmulator
from emulators.server import RunningServer, serve_in_thread
from sync.connectors.http import RetryPolicy, ServiceError
from sync.connectors.salesconnect import SalesConnectClient

SECRET = "s3cret-for-tests"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=5.0, request_timeout=10.0)
BASE = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class MemorySecrets:
    def __init__(self, **values: str) -> None:
        self.values = dict(values)

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = create_app(SalesConnectConfig(client_secret=SECRET, seed=3))
    with serve_in_thread(app) as running:
        running.emulator = app.state.emulator  # type: ignore[attr-defined]
        yield running


@pytest.fixture
def emulator(server: RunningServer) -> SalesConnectEmulator:
    emulator: SalesConnectEmulator = server.emulator  # type: ignore[attr-defined]
    emulator.reset()
    return emulator


@pytest.fixture
async def client(server: RunningServer, emulator: SalesConnectEmulator) -> AsyncIterator[Any]:
    async with SalesConnectClient(
        server.base_url + "/api/v1",
        client_id="reminder-sync-demo",
        client_secret=SECRET,
        policy=FAST,
        page_size=50,
    ) as sc:
        yield sc


def api_requests(emulator: SalesConnectEmulator, path: str) -> list[Any]:
    return [r for r in emulator.requests if r.path == "/api/v1" + path]


def faults(server: RunningServer, body: dict[str, Any]) -> None:
    httpx.post(server.base_url + "/__emulator__/faults", json=body).raise_for_status()


# -- reads --------------------------------------------------------------------------------------


async def test_pages_through_more_than_a_thousand_tasks(client: Any, emulator: Any) -> None:
    for n in range(1_030):
        emulator.add_task(name=f"task {n}", created_at=BASE + timedelta(seconds=n))
    tasks = await client.changed_tasks(None)
    assert len(tasks) == 1_030
    assert len({t["id"] for t in tasks}) == 1_030
    assert {t["name"] for t in tasks} == {f"task {n}" for n in range(1_030)}
    assert len(api_requests(emulator, "/tasks")) == 21  # 50 a page: 20 full pages and one of 30


async def _wait_for(condition: Any, seconds: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def test_the_next_page_is_on_its_way_while_the_caller_works_on_one(
    client: Any, emulator: Any
) -> None:
    for n in range(120):
        emulator.add_task(name=f"task {n}", created_at=BASE + timedelta(seconds=n))
    asked_while_holding: list[bool] = []
    async for _page in client.changed_task_pages(None):
        # The caller has not asked for more: the next page's request is made all the same
        # (it may be out before the caller has the page: counted against the page held, not
        # against the requests seen when it got it, which raced with the read-ahead).
        held = len(asked_while_holding) + 1
        asked_while_holding.append(
            await _wait_for(lambda n=held: len(api_requests(emulator, "/tasks")) > n, 1.0)
        )
    assert asked_while_holding == [True, True, False]  # 50 a page: the last one has no next
    assert len(api_requests(emulator, "/tasks")) == 3


async def test_the_next_page_is_asked_for_before_the_caller_gets_the_page(
    client: Any, emulator: Any
) -> None:
    """The caller converting a page without yielding (its CPU work) overlaps the service
    building the next page: the request went out before the page was handed over."""
    import time

    for n in range(120):
        emulator.add_task(name=f"task {n}", created_at=BASE + timedelta(seconds=n))
    asked_by_then: list[int] = []
    async for _page in client.changed_task_pages(None):
        time.sleep(0.3)  # work on the page that never gives the event loop a turn
        asked_by_then.append(len(api_requests(emulator, "/tasks")))
    assert asked_by_then == [2, 3, 3]  # pages 2 and 3 asked for while 1 and 2 were worked on


async def test_a_caller_that_stops_early_leaves_no_request_behind(
    server: RunningServer, client: Any, emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(300):
        emulator.add_task(name=f"task {n}", created_at=BASE + timedelta(seconds=n))
    # The second page's request hangs: only a cancel ends it before the test does.
    faults(server, {"rules": [{"fault": "hang", "path": "/api/v1/tasks", "after": 1}]})
    pages = client.changed_task_pages(None)
    async for _page in pages:
        break
    await pages.aclose()
    await asyncio.sleep(0.05)  # a cancelled request ends at the loop's next turns
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the read-ahead did not go on
    assert len(api_requests(emulator, "/tasks")) <= 2  # the first, and at most the read-ahead
    assert "never retrieved" not in caplog.text


async def test_equal_timestamps_at_a_page_edge_are_neither_missed_nor_repeated(
    client: Any, emulator: Any
) -> None:
    emulator.add_task(name="before the checkpoint", created_at=BASE - timedelta(seconds=1))
    same = {emulator.add_task(name=f"same {n}", created_at=BASE)["id"] for n in range(120)}
    later = {emulator.add_task(name="later", created_at=BASE + timedelta(seconds=5))["id"]}
    tasks = await client.changed_tasks(BASE)
    ids = [t["id"] for t in tasks]
    assert len(ids) == len(set(ids)) == 121
    assert set(ids) == same | later
    # 121 tasks at 50 a page: the page edges fall inside the group that shares one updated_at.
    assert len(api_requests(emulator, "/tasks")) == 3


async def test_a_task_changed_while_paging_is_seen_at_its_new_version(
    server: RunningServer, emulator: Any
) -> None:
    ids = [emulator.add_task(name=f"t{n}", created_at=BASE)["id"] for n in range(30)]
    first_page_ids: list[str] = []

    class EditAfterFirstPage(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path.endswith("/tasks") and not first_page_ids:
                await response.aread()
                first_page_ids.extend(t["id"] for t in json.loads(response.content)["tasks"])
                emulator.update(first_page_ids[0], None, {"status": "complete"})
            return response

    async with SalesConnectClient(
        server.base_url + "/api/v1",
        client_id="reminder-sync-demo",
        client_secret=SECRET,
        policy=FAST,
        page_size=10,
        transport=EditAfterFirstPage(),
    ) as sc:
        tasks = {t["id"]: t for t in await sc.changed_tasks(BASE)}
    assert set(tasks) == set(ids)
    edited = tasks[first_page_ids[0]]
    assert (edited["status"], edited["version"]) == ("complete", 2)


async def test_tombstones_come_with_the_changes_and_a_deleted_task_reads_as_none(
    client: Any, emulator: Any
) -> None:
    kept = emulator.add_task(name="kept")
    gone = emulator.add_task(name="gone")
    emulator.delete_task(gone["id"])
    tasks = {t["id"]: t for t in await client.changed_tasks(None)}
    assert tasks[gone["id"]]["deleted_at"] is not None
    assert tasks[kept["id"]]["deleted_at"] is None
    assert await client.get_task(gone["id"]) is None
    assert (await client.get_task(gone["id"], include_deleted=True))["version"] == 2
    assert (await client.get_task(kept["id"]))["name"] == "kept"
    assert await client.get_task("tsk_does/not/exist") is None


# -- writes -------------------------------------------------------------------------------------


async def test_creates_are_batched_by_200_and_assigned_to_the_caller(
    client: Any, emulator: Any
) -> None:
    items = [(f"key-{n}", {"name": f"new {n}", "due_date": "2025-03-04"}) for n in range(450)]
    results = await client.create(items)
    assert [r.ok for r in results] == [True] * 450
    assert [r.task["name"] for r in results] == [f"new {n}" for n in range(450)]
    assert len(api_requests(emulator, "/tasks/batch")) == 3
    assert len(emulator.tasks()) == 450
    assert {t["assignee_id"] for t in emulator.tasks()} == {await client.me()}


async def test_a_create_retried_with_the_same_key_makes_one_task(
    server: RunningServer, client: Any, emulator: Any
) -> None:
    # The first attempt is processed, then the connection drops before the answer arrives;
    # the client resends the batch and the key makes the server return the same task.
    faults(server, {"rules": [{"fault": "drop", "phase": "after", "path": "/api/v1/tasks/batch"}]})
    [result] = await client.create([("intent-42", {"name": "Call Jane"})])
    assert result.ok
    batch_calls = api_requests(emulator, "/tasks/batch")
    assert len(batch_calls) == 2
    assert [t["id"] for t in emulator.tasks()] == [result.id]
    # A replay much later (say, after a crash) still finds the same task.
    [again] = await client.create([("intent-42", {"name": "Call Jane"})])
    assert again.id == result.id
    assert len(emulator.tasks()) == 1


async def test_a_stale_if_match_is_reported_as_a_conflict(client: Any, emulator: Any) -> None:
    task = emulator.add_task(name="Call Jane")
    emulator.update(task["id"], None, {"name": "Call Jane today"})  # someone else: version 2
    fresh = emulator.add_task(name="Send deck")
    results = await client.update(
        [(task["id"], 1, {"status": "complete"}), (fresh["id"], 1, {"priority": "high"})]
    )
    stale, ok = results
    assert not stale.ok and stale.error is not None
    assert (stale.error.category, stale.error.code, stale.error.status) == (
        "conflict",
        "version_mismatch",
        412,
    )
    assert ok.ok and ok.task["priority"] == "high" and ok.task["version"] == 2
    assert emulator.get(task["id"])["status"] == "open"  # the stale write changed nothing


async def test_validation_errors_are_reported_per_item(client: Any, emulator: Any) -> None:
    results = await client.create(
        [
            ("k1", {"name": "x" * 501}),
            ("k2", {"name": "fine", "due_date": "2025-02-30"}),
            ("k3", {"name": "ok"}),
        ]
    )
    assert [r.ok for r in results] == [False, False, True]
    assert results[0].error.category == "validation" and results[0].error.code == "too_long"
    assert "due_date" in str(results[1].error)
    assert len(emulator.tasks()) == 1


async def test_deletes_with_versions(client: Any, emulator: Any) -> None:
    a = emulator.add_task(name="a")
    b = emulator.add_task(name="b")
    results = await client.delete([(a["id"], 1), (b["id"], 7), ("tsk_missing", None)])
    assert results[0].ok and results[0].task["deleted_at"] is not None
    assert results[1].error.category == "conflict"
    assert results[2].error.category == "not_found"
    assert [t["name"] for t in emulator.tasks()] == ["b"]


async def test_settings_round_trip(client: Any, emulator: Any) -> None:
    emulator.freeze_clock(BASE)
    assert (await client.get_settings())["salesforce_sync_enabled"] is False
    settings = await client.put_settings({"salesforce_sync_enabled": True})
    assert settings["enabled_at"] == "2025-03-03T09:00:00.000Z"


# -- retries and auth ---------------------------------------------------------------------------


async def test_429_with_retry_after_is_waited_out(
    server: RunningServer, client: Any, emulator: Any
) -> None:
    emulator.add_task(name="one")
    faults(
        server,
        {"rules": [{"fault": "rate_limit", "retry_after": 1, "times": 2, "path": "/api/v1/tasks"}]},
    )
    tasks = await client.changed_tasks(None)
    assert [t["name"] for t in tasks] == ["one"]
    calls = api_requests(emulator, "/tasks")
    assert [c.status for c in calls] == [429, 429, 200]
    # Each retry came no sooner than Retry-After said (a lower bound: never flaky).
    assert calls[1].at - calls[0].at >= 0.9
    assert calls[2].at - calls[1].at >= 0.9


async def test_503_is_retried_and_a_long_retry_after_is_reported_not_slept(
    server: RunningServer, client: Any, emulator: Any
) -> None:
    faults(server, {"rules": [{"fault": "unavailable", "retry_after": None, "times": 2}]})
    assert await client.me() == "usr_demo"
    faults(server, {"rules": [{"fault": "rate_limit", "retry_after": 3600, "times": 1}]})
    with pytest.raises(ServiceError) as caught:
        await client.me()
    assert caught.value.category == "rate_limit" and caught.value.retry_at is not None


async def test_an_expired_token_is_refreshed_once(
    server: RunningServer, client: Any, emulator: Any
) -> None:
    assert await client.me() == "usr_demo"
    assert emulator.token_grants == 1
    emulator.expire_tokens()
    # Several calls in flight with the expired token: one new token serves them all.
    results = await asyncio.gather(*(client.me() for _ in range(5)))
    assert results == ["usr_demo"] * 5
    assert emulator.token_grants == 2
    statuses = [r.status for r in api_requests(emulator, "/me")]
    assert statuses.count(401) == 5 and statuses.count(200) == 6


async def test_wrong_secret_is_an_auth_error_without_the_secret(server: RunningServer) -> None:
    async with SalesConnectClient(
        server.base_url + "/api/v1",
        client_id="reminder-sync-demo",
        client_secret="nope-xyz",
        policy=FAST,
    ) as sc:
        with pytest.raises(ServiceError) as caught:
            await sc.me()
    error = caught.value
    assert error.category == "auth" and error.code == "invalid_client"
    assert "nope-xyz" not in str(error) and "nope-xyz" not in repr(error)
    assert "connect salesconnect" in str(error)


async def test_token_and_secret_come_from_the_secret_store(
    server: RunningServer, emulator: Any
) -> None:
    secrets = MemorySecrets(**{"salesconnect.client_secret": SECRET})
    sc = SalesConnectClient.from_connection(
        base_url=server.base_url + "/api/v1",
        token_url=None,
        client_id="reminder-sync-demo",
        secrets=secrets,
        policy=FAST,
    )
    async with sc:
        assert await sc.me() == "usr_demo"
        token = secrets.values["salesconnect.access_token"]
        assert token not in repr(sc) and SECRET not in repr(sc)
    # A second client reuses the saved token: no new grant.
    async with SalesConnectClient.from_connection(
        base_url=server.base_url + "/api/v1",
        token_url=None,
        client_id="reminder-sync-demo",
        secrets=secrets,
        policy=FAST,
    ) as again:
        assert await again.me() == "usr_demo"
    assert emulator.token_grants == 1


async def test_no_secret_saved_says_how_to_connect(server: RunningServer) -> None:
    async with SalesConnectClient.from_connection(
        base_url=server.base_url + "/api/v1",
        token_url=None,
        client_id="x",
        secrets=MemorySecrets(),
        policy=FAST,
    ) as sc:
        with pytest.raises(ServiceError, match="reminder-sync connect salesconnect") as caught:
            await sc.me()
    assert caught.value.category == "auth"


async def test_a_dripping_body_hits_the_deadline(server: RunningServer, emulator: Any) -> None:
    emulator.add_task(name="slow")
    faults(
        server, {"rules": [{"fault": "slow_body", "delay_seconds": 0.5, "path": "/api/v1/tasks"}]}
    )
    policy = RetryPolicy(attempts=2, base_delay=0.01, request_timeout=1.0)
    async with SalesConnectClient(
        server.base_url + "/api/v1",
        client_id="reminder-sync-demo",
        client_secret=SECRET,
        policy=policy,
    ) as sc:
        with pytest.raises(ServiceError) as caught:
            await sc.changed_tasks(None)
    assert caught.value.category == "transient" and caught.value.retryable


class LockedKeyring:
    """A desktop keyring that refuses every call until unlocked (the one part mocked here)."""

    priority = 1

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.locked = True

    def _check(self) -> None:
        if self.locked:
            from keyring.errors import KeyringLocked

            raise KeyringLocked("the collection is locked")

    def get_password(self, service: str, name: str) -> str | None:
        self._check()
        return self.values.get(name)

    def set_password(self, service: str, name: str, value: str) -> None:
        self._check()
        self.values[name] = value

    def delete_password(self, service: str, name: str) -> None:
        self._check()
        self.values.pop(name, None)


async def test_a_locked_keyring_is_an_auth_error_with_the_stores_advice(
    server: RunningServer, emulator: Any
) -> None:
    from sync.connections import RevealingSecrets
    from sync.secrets import KeyringStore

    backend = LockedKeyring({"salesconnect.client_secret": SECRET})
    store = RevealingSecrets(KeyringStore(backend=backend, timeout=2.0))
    async with SalesConnectClient.from_connection(
        base_url=server.base_url + "/api/v1",
        token_url=None,
        client_id="reminder-sync-demo",
        secrets=store,
        policy=FAST,
    ) as sc:
        with pytest.raises(ServiceError) as caught:
            await sc.me()
        error = caught.value
        assert (error.category, error.code) == ("auth", "SECRET_STORE")
        assert "keyring" in str(error) and "salesconnect.access_token" in str(error)
        assert SECRET not in str(error) and SECRET not in repr(error)
        assert emulator.token_grants == 0  # nothing was sent without the secret

        backend.locked = False  # the user unlocked it: the same client now works
        assert await sc.me() == "usr_demo"
    assert backend.values["salesconnect.access_token"]
