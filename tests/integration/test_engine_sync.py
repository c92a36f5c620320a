"""The sync engine against both emulators over loopback: one test per scenario of issue 5.

Each test drives the services through their own wire APIs (as the user's other tools would),
runs the engine, and checks what each service holds afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sync.dashboard import RowState
from sync.events import Outcome
from sync.model import Side

ELLIPSIS = "…"


async def first_sync(engine: Any) -> Any:
    await engine.set_enabled(True, start=False)
    summary = await engine.run_once()
    assert summary.outcome in (Outcome.DONE, Outcome.CONFLICTS), summary.message
    return summary


def sc_partner(engine: Any, sf_id: str) -> str:
    link = engine.store.link_by_sf(sf_id)
    assert link is not None, f"SF task {sf_id} is not linked"
    return link.sc_id


def sf_partner(engine: Any, sc_id: str) -> str:
    link = engine.store.link_by_sc(sc_id)
    assert link is not None, f"SC task {sc_id} is not linked"
    return link.sf_id


def snapshot(sf: Any, sc: Any) -> tuple[dict, dict]:
    """Every task on both sides with its change stamp: equal snapshots = nothing written."""
    sf_state = {t["Id"]: (t["SystemModstamp"], t["Subject"]) for t in sf.tasks()}
    sc_state = {t["id"]: (t["version"], t["updated_at"]) for t in sc.tasks(include_deleted=True)}
    return sf_state, sc_state


async def test_first_sync_imports_sf_tasks_changed_in_the_last_24_hours_and_not_older_ones(
    sf, sc, clock, engine
) -> None:
    with clock.at(hours=-30):
        sf.create_task(Subject="Old call, 30 hours ago")
    with clock.at(hours=-20):
        sf.create_task(Subject="Recent call, 20 hours ago")
    sf.create_task(Subject="Call Jane today", ActivityDate="2026-12-01", Priority="High")

    summary = await first_sync(engine)

    names = sc.by_name()
    assert "Recent call, 20 hours ago" in names
    assert "Call Jane today" in names
    assert "Old call, 30 hours ago" not in names
    assert names["Call Jane today"]["due_date"] == "2026-12-01"
    assert names["Call Jane today"]["priority"] == "high"
    assert summary.created == {"salesconnect": 2}
    old_row = [r for r in engine.rows() if r.sf and r.sf.fields.name.startswith("Old call")]
    assert old_row == [] or old_row[0].state is RowState.NOT_SYNCED


async def test_sc_tasks_from_before_enabled_at_are_not_pushed_and_later_ones_are(
    sf, sc, clock, engine
) -> None:
    with clock.at(hours=-1):
        before = sc.create_task(name="Written before enabling")
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    after = sc.create_task(name="Written after enabling")

    await engine.run_once()

    subjects = sf.by_subject()
    assert "Written after enabling" in subjects
    assert "Written before enabling" not in subjects
    assert engine.store.link_by_sc(after) is not None
    assert engine.store.link_by_sc(before) is None
    row = next(r for r in engine.rows() if r.sc and r.sc.id == before)
    assert row.state is RowState.NOT_SYNCED
    assert "before sync was enabled" in row.reason


async def test_each_of_the_five_fields_travels_from_sales_connect_to_salesforce(
    sf, sc, clock, engine
) -> None:
    sf_id = sf.create_task(Subject="Prepare deck", Description="v1")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)

    sc.update_task(
        sc_id,
        name="Prepare deck for ACME",
        status="complete",
        priority="high",
        due_date="2026-12-24",
        details="v2\nwith pricing",
    )
    summary = await engine.run_once()

    task = sf.get_task(sf_id)
    assert task["Subject"] == "Prepare deck for ACME"
    assert task["Status"] == "Completed"
    assert task["Priority"] == "High"
    assert task["ActivityDate"] == "2026-12-24"
    assert task["Description"] == "v2\nwith pricing"
    assert summary.updated == {"salesforce": 1}


async def test_each_of_the_five_fields_travels_from_salesforce_to_sales_connect(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    sc_id = sc.create_task(name="Send contract", details="draft")
    await engine.run_once()
    sf_id = sf_partner(engine, sc_id)

    sf.update_task(
        sf_id,
        Subject="Send signed contract",
        Status="Completed",
        Priority="High",
        ActivityDate="2027-01-15",
        Description="final",
    )
    await engine.run_once()

    task = sc.get_task(sc_id)
    assert task["name"] == "Send signed contract"
    assert task["status"] == "complete"
    assert task["priority"] == "high"
    assert task["due_date"] == "2027-01-15"
    assert task["details"] == "final"


async def test_unmapped_sf_status_and_low_priority_leave_sc_alone(sf, sc, clock, engine) -> None:
    sf_id = sf.create_task(Subject="Follow up", Priority="High")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)
    version_before = sc.get_task(sc_id)["version"]

    sf.update_task(sf_id, Status="In Progress", Priority="Low")
    summary = await engine.run_once()

    task = sc.get_task(sc_id)
    assert task["version"] == version_before  # nothing written to SC
    assert (task["status"], task["priority"]) == ("open", "high")
    assert summary.outcome is Outcome.DONE and summary.conflicts == 0
    row = next(r for r in engine.rows() if r.sc and r.sc.id == sc_id)
    assert row.state is RowState.NOT_SYNCED
    assert set(row.unmapped) == {"status", "priority"}

    # A later move to a mapped value syncs.
    sf.update_task(sf_id, Status="Completed")
    await engine.run_once()
    assert sc.get_task(sc_id)["status"] == "complete"


async def test_disjoint_edits_on_both_sides_merge(sf, sc, clock, engine) -> None:
    sf_id = sf.create_task(Subject="Call Bob", ActivityDate="2026-12-01")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)

    sc.update_task(sc_id, name="Call Bob about renewal")
    sf.update_task(sf_id, ActivityDate="2026-12-05")
    summary = await engine.run_once()

    assert summary.conflicts == 0
    sc_task, sf_task = sc.get_task(sc_id), sf.get_task(sf_id)
    assert (sc_task["name"], sc_task["due_date"]) == ("Call Bob about renewal", "2026-12-05")
    assert (sf_task["Subject"], sf_task["ActivityDate"]) == ("Call Bob about renewal", "2026-12-05")


async def test_same_field_edit_is_a_conflict_that_overwrites_neither_side(
    sf, sc, clock, engine
) -> None:
    sf_id = sf.create_task(Subject="Demo")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)

    sc.update_task(sc_id, name="Demo on Monday")
    sf.update_task(sf_id, Subject="Demo on Tuesday")
    summary = await engine.run_once()

    assert summary.outcome is Outcome.CONFLICTS
    assert sc.get_task(sc_id)["name"] == "Demo on Monday"
    assert sf.get_task(sf_id)["Subject"] == "Demo on Tuesday"
    [conflict] = engine.conflicts()
    assert conflict.fields == ("name",)
    row = next(r for r in engine.rows() if r.sc and r.sc.id == sc_id)
    assert row.state is RowState.CONFLICT and row.conflict_id == conflict.id

    from sync.engine import resolution_taking

    await engine.resolve(conflict.id, resolution_taking(conflict, Side.SALESCONNECT))
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DONE
    assert sf.get_task(sf_id)["Subject"] == "Demo on Monday"
    assert engine.conflicts() == []


async def test_sf_and_sc_deletes_propagate(sf, sc, clock, engine) -> None:
    gone_in_sf = sf.create_task(Subject="Deleted in Salesforce")
    gone_in_sc = sf.create_task(Subject="Deleted in Sales Connect")
    kept = sf.create_task(Subject="Kept")
    await first_sync(engine)
    sc_of_sf_deleted = sc_partner(engine, gone_in_sf)
    sc.delete_task(sc_partner(engine, gone_in_sc))

    sf.delete_task(gone_in_sf)
    summary = await engine.run_once()

    assert sc.get_task(sc_of_sf_deleted) is None
    assert sf.get_task(gone_in_sc) is None
    assert sf.get_task(kept) is not None
    assert summary.deleted == {"salesconnect": 1, "salesforce": 1}
    assert len(engine.store.links()) == 1


async def test_edit_vs_delete_is_a_conflict(sf, sc, clock, engine) -> None:
    sf_id = sf.create_task(Subject="Quote")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)

    sf.delete_task(sf_id)
    sc.update_task(sc_id, details="customer asked for 10% off")
    summary = await engine.run_once()

    assert summary.outcome is Outcome.CONFLICTS
    assert sc.get_task(sc_id) is not None  # never a silent delete
    [conflict] = engine.conflicts()
    assert conflict.kind == "edit_vs_delete"
    assert conflict.deleted_side is Side.SALESFORCE

    # Restoring recreates the task in Salesforce and links it to the edited one.
    from sync.engine import resolution_taking

    await engine.resolve(conflict.id, resolution_taking(conflict, Side.SALESCONNECT))
    await engine.run_once()
    new_sf = sf_partner(engine, sc_id)
    assert new_sf != sf_id
    assert sf.get_task(new_sf)["Description"] == "customer asked for 10% off"


async def test_a_run_with_nothing_new_writes_nothing_on_either_side(sf, sc, clock, engine) -> None:
    sf.create_task(Subject="One", Status="In Progress", Priority="Low")
    sf.create_task(Subject="Two", ActivityDate="2026-12-03")
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    sc.create_task(name="Three " + "x" * 300)
    await engine.run_once()
    before = snapshot(sf, sc)

    summary = await engine.run_once()

    assert summary.writes == 0
    assert snapshot(sf, sc) == before


async def test_a_300_character_sc_name_arrives_as_255_with_ellipsis_and_never_bounces_back(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    long_name = "Renewal " + "n" * 292
    assert len(long_name) == 300
    sc_id = sc.create_task(name=long_name)

    await engine.run_once()
    sf_id = sf_partner(engine, sc_id)
    subject = sf.get_task(sf_id)["Subject"]
    assert len(subject) == 255 and subject.endswith(ELLIPSIS)
    assert long_name.startswith(subject[:-1])

    summary = await engine.run_once()
    assert summary.writes == 0
    assert sc.get_task(sc_id)["name"] == long_name  # the cut never came back to SC


async def test_a_last_run_older_than_15_days_triggers_the_direct_reconcile(
    sf, sc, clock, engine
) -> None:
    deleted = sf.create_task(Subject="Deleted while away")
    kept = sf.create_task(Subject="Still there")
    await first_sync(engine)
    sc_deleted, sc_kept = sc_partner(engine, deleted), sc_partner(engine, kept)

    sf.delete_task(deleted)
    clock.shift(days=16)  # the deletion record is gone from Salesforce's window
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sc.get_task(sc_deleted) is None  # found by reading the linked id directly
    assert sc.get_task(sc_kept) is not None  # absence from the window is not deletion
    kinds = [entry["kind"] for entry in engine.activity()]
    assert "reconcile" in kinds


async def test_the_mass_delete_guard_stops_a_run(sf, sc, clock, engine) -> None:
    ids = [sf.create_task(Subject=f"Account review {n}") for n in range(6)]
    await first_sync(engine)
    partners = [sc_partner(engine, i) for i in ids]

    for sf_id in ids[:5]:
        sf.delete_task(sf_id)
    summary = await engine.run_once()

    assert summary.outcome is Outcome.GUARD
    assert summary.guard is not None and summary.guard.side is Side.SALESCONNECT
    assert "Nothing was deleted" in summary.message
    assert all(sc.get_task(i) is not None for i in partners)

    # Confirmed: the deletes go through.
    summary = await engine.run_once(allow_mass_delete=True)
    assert summary.deleted == {"salesconnect": 5}
    assert [i for i in partners if sc.get_task(i) is not None] == partners[5:]


async def test_the_daily_api_limit_ends_a_run_cleanly_and_the_next_run_resumes(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    names = [f"New lead {n}" for n in range(3)]
    for name in names:
        sc.create_task(name=name)
    sf.faults(kinds=["limit"], path_contains="composite/sobjects", methods=["POST"], count=1)

    summary = await engine.run_once()

    assert summary.outcome is Outcome.LIMIT
    assert summary.retry_at is not None
    assert "REQUEST_LIMIT_EXCEEDED" in summary.message or "limit" in summary.message.lower()
    assert not [t for t in sf.stored_tasks() if t["Subject"].startswith("New lead")]
    assert engine.status().errors == 0  # the limit is not blamed on the tasks

    clock.shift(hours=25)  # the allowance frees up
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    subjects = [t["Subject"] for t in sf.tasks()]
    assert sorted(s for s in subjects if s.startswith("New lead")) == names  # once each


@pytest.mark.parametrize("sf_config", [{"page_size": 5}])
@pytest.mark.parametrize("offset_hours", [-3, 3])
async def test_after_an_import_the_next_run_reads_only_new_sf_changes_on_a_shifted_clock(
    sf, sc, clock, engine, offset_hours: int
) -> None:
    # Both services and the engine run hours away from real time, as in the demo; a watermark
    # taken from real time instead of the org's would skip (or re-read) changes.
    clock.set(timedelta(hours=offset_hours))
    imported = 20  # four query pages of 5
    with clock.at(minutes=-30):
        ids = [sf.create_task(Subject=f"Imported {n}") for n in range(imported)]
    await first_sync(engine)
    assert len(sc.tasks()) == imported

    emulator = sf.app.state.emulator
    sf.update_task(ids[0], Subject="Edited after the import")
    before, _ = emulator.api_usage()
    summary = await engine.run_once()
    calls = emulator.api_usage()[0] - before
    assert summary.updated == {"salesconnect": 1}
    assert sc.get_task(sc_partner(engine, ids[0]))["name"] == "Edited after the import"
    # One query page (the edit) and the deleted-records window; re-reading the import from
    # its newest stamp would take at least four pages.
    assert calls <= 3, f"{calls} Salesforce calls: the run re-read the import"

    # The org's clock moves on; an edit made later, on that clock, is read (nothing skipped).
    clock.shift(minutes=10)
    sf.update_task(ids[1], Subject="Edited ten minutes later")
    summary = await engine.run_once()
    assert summary.updated == {"salesconnect": 1}
    assert sc.get_task(sc_partner(engine, ids[1]))["name"] == "Edited ten minutes later"
