"""What the compact in-memory shapes must not change: a task read on two pages is read once, a
link's notes cannot be changed behind its back, and the links kept as JSON text save and load
exactly as the dicts they replaced."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sync.model import Link, Side, SideTask, Task
from sync.sides import SalesConnectSide, SalesforceSide
from sync.store import StateStore
from tests.conftest import sc_task_json

USER = "user-1"


class PagedSalesConnect:
    """Hands out fixed pages, as the service does when a task changes while it is paged."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages

    async def changed_task_pages(self, updated_since: Any) -> AsyncIterator[list[dict[str, Any]]]:
        for page in self.pages:
            yield page


async def test_a_task_that_changed_while_paging_is_read_once_at_its_newest_version() -> None:
    side = SalesConnectSide(
        PagedSalesConnect(  # type: ignore[arg-type]
            [
                [sc_task_json("a", 1, "first"), sc_task_json("b", 3, "b as edited")],
                [sc_task_json("a", 2, "first, edited"), sc_task_json("b", 2, "b before the edit")],
                [sc_task_json("c", 1, "third")],
            ]
        )
    )
    side.user_id = USER
    tasks = await side.changed(None)
    assert [(t.id, t.version, t.fields.name) for t in tasks] == [
        ("a", "2", "first, edited"),
        ("b", "3", "b as edited"),  # an older copy on a later page does not win
        ("c", "1", "third"),
    ]


class PagedSalesforce:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages

    async def changed_task_pages(
        self, owner_id: str, since: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        for page in self.pages:
            yield page


async def test_every_salesforce_record_of_every_page_is_read() -> None:
    def record(n: int) -> dict[str, Any]:
        stamp = f"2025-03-04T09:00:{n:02d}.000+0000"
        return {
            "Id": f"00T{n:015d}",
            "Subject": f"Task {n}",
            "OwnerId": USER,
            "SystemModstamp": stamp,
        }

    side = SalesforceSide(PagedSalesforce([[record(1), record(2)], [], [record(3)]]))  # type: ignore[arg-type]
    side.user_id = USER
    tasks = await side.changed(None)
    assert [t.fields.name for t in tasks] == ["Task 1", "Task 2", "Task 3"]
    assert all(t.in_scope for t in tasks)


def test_a_links_notes_cannot_be_changed_behind_its_back() -> None:
    notes = {"details": "truncated"}
    link = Link("sc1", "00T000000000001", Task("x"), notes=notes)
    notes["name"] = "unmapped"  # the caller's dict changes later...
    assert dict(link.notes) == {"details": "truncated"}  # ...the link does not
    with pytest.raises(TypeError):
        link.notes["name"] = "unmapped"  # type: ignore[index]
    assert Link("sc1", "00T000000000001", Task("x"), notes={}) == Link(
        "sc1", "00T000000000001", Task("x")
    )


def test_links_kept_as_text_save_and_load_exactly(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.json"
    links = [
        Link(
            f"sc{i}",
            f"00T{i:015d}",
            Task(f"Call customer {i} ☕", due_date=date(2025, 3, 5), details='a "quote"\nline'),
            sc_version=str(i),
            notes={"details": "truncated"} if i % 2 else {},
        )
        for i in range(1, 6)
    ]
    with StateStore.open(path) as store:
        for link in links:
            store.put_link(link)
        store.put_link(dataclasses.replace(links[0], sf_version="v2"))  # replaced in place
    first = path.read_bytes()
    docs = json.loads(first)["links"]
    assert [doc["sc_id"] for doc in docs.values()] == [f"sc{i}" for i in range(1, 6)]
    assert docs["1"]["sf_version"] == "v2" and docs["1"]["notes"] == {"details": "truncated"}

    with StateStore.open(path) as again:
        assert again.link_by_sc("sc1").sf_version == "v2"  # type: ignore[union-attr]
        assert again.link_by_sf(links[3].sf_id) == links[3]
        again._storage.mark_dirty()  # the same state written again
    second = path.read_bytes()
    # Only the file's version number moves on; every table after it is the same, byte for byte.
    before, after = json.loads(first), json.loads(second)
    assert after["meta"]["1"]["generation"] == before["meta"]["1"]["generation"] + 1
    assert first.split(b'"links"', 1)[1] == second.split(b'"links"', 1)[1]


def test_tasks_of_both_sides_with_the_same_id_are_cached_apart(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.json"
    sc = SideTask(Side.SALESCONNECT, "same-id", Task("in Sales Connect"), version="3")
    sf = SideTask(Side.SALESFORCE, "same-id", Task("in Salesforce"), version="v")
    with StateStore.open(path) as store:
        store.put_cached_tasks([sc, sf, SideTask(Side.SALESFORCE, "other", Task("other"))])
        store.drop_cached_task(Side.SALESFORCE, "other")
    with StateStore.open(path) as again:
        assert again.cached_tasks(Side.SALESCONNECT) == {"same-id": sc}
        assert again.cached_tasks(Side.SALESFORCE) == {"same-id": sf}
        again.drop_cached_task(Side.SALESCONNECT, "same-id")
        assert again.cached_task(Side.SALESCONNECT, "same-id") is None
        assert again.cached_task(Side.SALESFORCE, "same-id") == sf
