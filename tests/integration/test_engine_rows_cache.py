"""The dashboard rows are kept between calls and patched as tasks change: after every kind of
change (edits, conflicts and their answers, parked errors, deletes, creates from the dashboard)
they are exactly the rows a full rebuild gives, and `status().pending` agrees with them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sync.dashboard import Row, RowState
from sync.model import Choice, Resolution, Side, Task

from .test_engine_sync import first_sync, sc_partner


def as_rebuilt(engine: Any) -> list[Row]:
    return sorted(engine._build_rows(None, None), key=lambda r: r.key)


def check(engine: Any) -> list[Row]:
    cached = sorted(engine.rows(), key=lambda r: r.key)
    assert cached == as_rebuilt(engine)
    pending = sum(1 for r in cached if r.state is RowState.PENDING)
    assert engine.status().pending == pending
    return cached


async def test_cached_rows_match_a_full_rebuild_after_every_kind_of_change(
    sf, sc, clock, engine
) -> None:
    keep = sf.create_task(Subject="Keep me")
    edit = sf.create_task(Subject="Edit me")
    clash = sf.create_task(Subject="Both edit me")
    gone = sf.create_task(Subject="Delete me")
    bad = sf.create_task(Subject="Refused later")
    await first_sync(engine)
    assert {r.state for r in check(engine)} == {RowState.IN_SYNC}

    # Edits waiting for a run show as pending; the cache sees them once the engine reads them.
    sc.update_task(sc_partner(engine, edit), name="Edited in SC")
    await engine.edit_task(Side.SALESFORCE, keep, {"priority": "high"})
    assert next(r for r in check(engine) if r.sf and r.sf.id == keep).state is RowState.PENDING

    # A conflict, a delete, a refused write and a new task, all in one run.
    sc.update_task(sc_partner(engine, clash), details="SC says")
    sf.update_task(clash, Description="SF says")
    sf.delete_task(gone)
    sf.app.state.emulator.update_task(bad, Subject="")  # Sales Connect refuses a blank name
    new_sc = sc.create_task(name="Made in SC")
    await engine.run_once()
    rows = check(engine)
    states = {(r.sf.id if r.sf else None): r.state for r in rows}
    assert states[clash] is RowState.CONFLICT
    assert states[bad] is RowState.ERROR
    assert gone not in states
    assert any(r.sc and r.sc.id == new_sc and r.sf for r in rows)  # linked on its first run

    # The answer, the fix of the refused task, and a task created from the dashboard.
    [conflict] = engine.conflicts()
    await engine.resolve(conflict.id, Resolution(conflict.id, {"details": Choice.TAKE_SALESFORCE}))
    check(engine)
    sf.update_task(bad, Subject="Fixed")
    made = await engine.create_task(Side.SALESFORCE, Task("Made on the dashboard"))
    assert next(r for r in check(engine) if r.sf and r.sf.id == made).state is RowState.PENDING
    await engine.run_once()
    rows = check(engine)
    assert {r.state for r in rows} == {RowState.IN_SYNC}
    assert engine.conflicts() == [] and engine.store.errors() == []

    # Deleting from the dashboard, then the run that carries the delete across.
    await engine.delete_task(Side.SALESCONNECT, sc_partner(engine, keep))
    check(engine)
    await engine.run_once()
    assert all(r.sf is None or r.sf.id != keep for r in check(engine))


async def test_a_burst_of_changed_rows_is_built_a_slice_at_a_time(sf, sc, clock, engine) -> None:
    ids = [sf.create_task(Subject=f"Task {n}") for n in range(30)]
    await first_sync(engine)
    check(engine)
    for task_id in ids:
        sf.update_task(task_id, Subject=f"Renamed {task_id}")
    await engine.run_once()
    # 30 tasks changed on each side: five tasks a call means several calls, each doing a part.
    calls = 1
    while not engine.prepare_rows(5):
        calls += 1
        if calls == 3:  # a change made in between is built too
            sf.update_task(ids[0], Subject="Changed mid-way")
            await engine.run_once()
    assert calls >= 6
    rows = check(engine)
    names = {r.sc.fields.name for r in rows if r.sc}
    assert "Changed mid-way" in names
    assert sum(name.startswith("Renamed") for name in names) == 29


async def test_rows_so_far_builds_nothing(sf, sc, clock, engine) -> None:
    task_id = sf.create_task(Subject="Before")
    await first_sync(engine)
    check(engine)
    sf.update_task(task_id, Subject="After")
    await engine.run_once()

    def name_in(rows: Iterable[Row]) -> str:
        return next(r.sc.fields.name for r in rows if r.sf and r.sf.id == task_id)

    assert name_in(engine.rows_so_far().values()) == "Before"  # as last built
    assert name_in(engine.rows()) == "After"
    assert name_in(engine.rows_so_far().values()) == "After"
