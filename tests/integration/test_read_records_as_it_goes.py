"""A run puts each task it reads into the task cache as the task's page is converted (while
the next page's request is in flight), not in a pass after planning; a dry run puts nothing,
and what the cache ends with is what the old pass left: the task the read kept, and for a task
deleted between two pages the copy from before the run, marked deleted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sync.engine import build_engine
from sync.events import Event, Outcome, SyncProgress
from sync.model import Side, SideTask
from sync.sides import SalesConnectSide
from tests.conftest import enable_sync, sc_task_json

SC, SF = Side.SALESCONNECT, Side.SALESFORCE
PAGE = 5  # Sales Connect tasks per listing page in these tests


class SmallPages(httpx.AsyncHTTPTransport):
    """Sales Connect listings in pages of PAGE tasks (each page's ids kept in `listed`).
    `between` runs once, when the first page of a listing has been served: a change made while
    the engine pages. `fail_page`: that page of the first listing is refused (a 400)."""

    def __init__(
        self, between: Callable[[], Any] | None = None, fail_page: int | None = None
    ) -> None:
        super().__init__()
        self.between = between
        self.fail_page = fail_page
        self.listed: list[list[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing = request.method == "GET" and request.url.path.endswith("/tasks")
        if not listing:
            return await super().handle_async_request(request)
        request.url = request.url.copy_set_param("limit", str(PAGE))
        if self.fail_page is not None and len(self.listed) + 1 == self.fail_page:
            self.fail_page = None
            self.listed.append([])
            body = {"code": "bad_request", "message": "refused", "category": "validation"}
            return httpx.Response(400, json=body, request=request)
        response = await super().handle_async_request(request)
        await response.aread()
        self.listed.append([t["id"] for t in json.loads(response.content)["tasks"]])
        if self.between is not None and len(self.listed) == 1:
            between, self.between = self.between, None
            between()  # the next pages are asked for after this
        return response


def phases(engine: Any) -> list[str]:
    """The run's phases as they start (the last is the current one)."""
    seen: list[str] = []

    def on(event: Event) -> None:
        if isinstance(event, SyncProgress) and (not seen or seen[-1] != event.phase):
            seen.append(event.phase)

    engine.subscribe(on)
    return seen


def names(tasks: dict[str, SideTask]) -> dict[str, str]:
    return {task_id: task.fields.name for task_id, task in tasks.items()}


async def test_the_cache_holds_each_task_read_and_of_one_read_twice_the_newest(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    await enable_sync(connected_home, secrets, clock)
    sc_ids = [sc.create_task(name=f"Quote {n}") for n in range(12)]
    sf_ids = [sf.create_task(Subject=f"Call {n}") for n in range(3)]
    edited = sc_ids[0]  # the oldest change: on the first page
    pages = SmallPages(between=lambda: sc.update_task(edited, name="Quote 0, edited"))
    engine = build_engine(
        connected_home, secrets, clock=clock.now, transports={"salesconnect": pages}
    )
    seen = phases(engine)
    at_plan: dict[Side, dict[str, SideTask]] = {}

    def on(event: Event) -> None:
        if isinstance(event, SyncProgress) and event.phase == "plan" and not at_plan:
            at_plan.update({side: engine.store.cached_tasks(side) for side in (SC, SF)})

    engine.subscribe(on)
    try:
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
        # The edited task came twice: on the first page, and again after the edit.
        assert [i for page in pages.listed for i in page].count(edited) == 2, pages.listed
        newest = sc.get_task(edited)
        assert newest is not None and newest["name"] == "Quote 0, edited"

        # Before planning, every task read is cached, the edited one at its newest version.
        assert "plan" in seen
        assert set(at_plan[SC]) == set(sc_ids)
        assert set(at_plan[SF]) == set(sf_ids)
        assert at_plan[SC][edited].fields.name == "Quote 0, edited"
        assert at_plan[SC][edited].version == str(newest["version"])
        assert names(at_plan[SF]) == {i: f"Call {n}" for n, i in enumerate(sf_ids)}

        # And after the run (which cached the 15 tasks it created besides).
        after = engine.store.cached_tasks(SC)
        assert set(sc_ids) <= set(after)
        assert after[edited].fields.name == "Quote 0, edited"
        assert after[edited].version == str(newest["version"])
        assert set(sf_ids) <= set(engine.store.cached_tasks(SF))
        assert engine.store.link_by_sc(edited).sc_version == str(newest["version"])  # type: ignore[union-attr]
    finally:
        await engine.aclose()
    assert len(sf.tasks()) == 15  # each SC task created once, not once per copy read


async def test_a_dry_run_leaves_the_cache_as_it_was(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    await enable_sync(connected_home, secrets, clock)
    sc_id = sc.create_task(name="Send the quote")
    sf_id = sf.create_task(Subject="Call the customer")
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        await engine.run_once()
        clock.shift(minutes=1)
        sc.update_task(sc_id, name="Send the quote, edited")
        sf.update_task(sf_id, Subject="Call the customer, edited")
        new_sc = sc.create_task(name="New in Sales Connect")
        new_sf = sf.create_task(Subject="New in Salesforce")
        before = {side: engine.store.cached_tasks(side) for side in (SC, SF)}

        summary = await engine.run_once(dry_run=True)

        assert summary.dry_run and len(summary.planned) == 4  # it did read the changes
        for side in (SC, SF):
            after = engine.store.cached_tasks(side)
            assert after.keys() == before[side].keys()
            assert all(after[i] is before[side][i] for i in after)  # the very same copies
        assert engine.store.cached_task(SC, new_sc) is None
        assert engine.store.cached_task(SF, new_sf) is None
        assert engine.store.cached_task(SC, sc_id).fields.name == "Send the quote"  # type: ignore[union-attr]
    finally:
        await engine.aclose()


async def test_tasks_are_cached_during_the_read_before_planning(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    """Sales Connect is read first, then Salesforce's changes, then its deleted records: when
    Salesforce is asked, the Sales Connect tasks read are cached already, and when its deleted
    records are asked for, so are the Salesforce tasks read (the old pass came after planning)."""
    await enable_sync(connected_home, secrets, clock)
    sc_ids = [sc.create_task(name=f"Quote {n}") for n in range(3)]
    sf_ids = [sf.create_task(Subject=f"Call {n}") for n in range(3)]
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        first = await engine.run_once()
        assert first.outcome is Outcome.DONE and first.writes == 6
    finally:
        await engine.aclose()
    clock.shift(minutes=1)
    for n, task_id in enumerate(sc_ids):
        sc.update_task(task_id, name=f"Quote {n}, edited")
    for n, task_id in enumerate(sf_ids):
        sf.update_task(task_id, Subject=f"Call {n}, edited")

    asked: list[tuple[str, str, dict[str, str], dict[str, str]]] = []

    class Watching(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if seen and seen[-1] == "read":
                cached_sc = names(engine.store.cached_tasks(SC))
                cached_sf = names(engine.store.cached_tasks(SF))
                asked.append((seen[-1], request.url.path, cached_sc, cached_sf))
            return await super().handle_async_request(request)

    engine = build_engine(
        connected_home, secrets, clock=clock.now, transports={"salesforce": Watching()}
    )
    seen = phases(engine)
    try:
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
        assert summary.updated == {"salesconnect": 3, "salesforce": 3}
    finally:
        await engine.aclose()
    query = next(a for a in asked if "/queryAll" in a[1])
    deleted = next(a for a in asked if "/sobjects/Task/deleted" in a[1])
    assert asked.index(query) < asked.index(deleted)
    for n, task_id in enumerate(sc_ids):
        assert query[2][task_id] == f"Quote {n}, edited"
    for n, task_id in enumerate(sf_ids):
        assert deleted[3][task_id] == f"Call {n}, edited"


async def test_a_linked_task_deleted_between_pages_is_cached_as_before_the_run_deleted(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    """Read alive on the first page, then as a tombstone: the put of the live copy is taken
    back, so the deleted copy is made from the one cached before the run, as it always was."""
    await enable_sync(connected_home, secrets, clock)
    sc_ids = [sc.create_task(name=f"Quote {n}") for n in range(12)]
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        assert (await engine.run_once()).writes == 12
    finally:
        await engine.aclose()
    clock.shift(minutes=1)
    for n, task_id in enumerate(sc_ids):
        sc.update_task(task_id, name=f"Quote {n}, edited")
    gone = sc_ids[0]  # edited first: on the first page
    pages = SmallPages(between=lambda: sc.delete_task(gone))
    engine = build_engine(
        connected_home, secrets, clock=clock.now, transports={"salesconnect": pages}
    )
    at_write: list[SideTask | None] = []

    def on(event: Event) -> None:
        if isinstance(event, SyncProgress) and event.phase == "write" and not at_write:
            at_write.append(engine.store.cached_task(SC, gone))

    engine.subscribe(on)
    try:
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
    finally:
        await engine.aclose()
    assert pages.listed[0][0] == gone and [i for p in pages.listed for i in p].count(gone) == 2
    assert summary.deleted == {"salesforce": 1}
    [cached] = at_write
    assert cached is not None and cached.deleted
    assert cached.fields.name == "Quote 0"  # as cached before the run, not as first read


async def test_a_read_that_fails_part_way_leaves_its_first_pages_cached_and_the_next_run_whole(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    await enable_sync(connected_home, secrets, clock)
    sc_ids = [sc.create_task(name=f"Quote {n}") for n in range(12)]
    pages = SmallPages(fail_page=2)
    engine = build_engine(
        connected_home, secrets, clock=clock.now, transports={"salesconnect": pages}
    )
    try:
        failed = await engine.run_once()
        assert failed.outcome is Outcome.FAILED
        # The first page's tasks stay cached (the dashboard's copy of what was seen); nothing
        # else moved: no link, no cursor.
        assert set(engine.store.cached_tasks(SC)) == set(pages.listed[0])
        assert engine.store.links() == {}
        assert engine.store.cursor(SC).watermark is None

        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
        assert summary.writes == 12
        assert set(engine.store.cached_tasks(SC)) == set(sc_ids)
        assert all(engine.store.link_by_sc(i) is not None for i in sc_ids)
    finally:
        await engine.aclose()


async def test_seen_is_called_with_each_task_kept_and_last_with_the_one_kept() -> None:
    raw = sc_task_json

    class Paged:
        async def changed_task_pages(self, since: Any) -> Any:
            yield [raw("a", 1, "a"), raw("b", 3, "b as edited")]
            yield [raw("a", 2, "a, edited"), raw("b", 2, "b before the edit")]
            yield [raw("c", 1, "c"), raw("a", 4, "a", deleted=True)]

    side = SalesConnectSide(Paged())  # type: ignore[arg-type]
    side.user_id = "user-1"
    calls: list[SideTask] = []
    kept = await side.changed(None, seen=calls.append)
    assert [(t.id, t.version, t.deleted) for t in calls] == [
        ("a", "1", False),
        ("b", "3", False),
        ("a", "2", False),  # replaces a
        ("c", "1", False),  # (b at version 2 is older than the b kept: not seen)
        ("a", "4", True),
    ]
    last = {t.id: t for t in calls}
    assert [last[t.id] is t for t in kept] == [True, True, True]
