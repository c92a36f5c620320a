"""What the engine offers the dashboard, against both emulators: events, rows and their states,
parked errors, editing from the dashboard, settings, and the background loop."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sync import events
from sync.dashboard import RowState
from sync.events import Outcome
from sync.model import Side, Task

from .test_engine_sync import first_sync, sc_partner


async def test_a_run_tells_its_listeners_started_progress_changes_conflicts_and_finished(
    sf, sc, clock, engine
) -> None:
    sf_id = sf.create_task(Subject="Lunch with Ana")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)
    sc.update_task(sc_id, name="Lunch with Ana (Tue)")
    sf.update_task(sf_id, Subject="Lunch with Ana (Wed)")
    seen: list[Any] = []
    unsubscribe = engine.subscribe(seen.append)

    summary = await engine.run_once()
    unsubscribe()

    kinds = [type(e) for e in seen]
    assert kinds[0] is events.SyncStarted and kinds[-1] is events.SyncFinished
    assert events.SyncProgress in kinds
    assert events.TasksChanged in kinds
    [found] = [e for e in seen if isinstance(e, events.ConflictFound)]
    assert found.conflict.fields == ("name",)
    assert seen[-1].summary is summary
    phases = [e.phase for e in seen if isinstance(e, events.SyncProgress)]
    assert phases.index("read") < phases.index("plan") < phases.index("record")


async def test_rows_show_one_row_per_link_and_unlinked_tasks_with_their_state(
    sf, sc, clock, engine
) -> None:
    with clock.at(hours=-1):
        old_sc = sc.create_task(name="Old SC task")
    in_sync = sf.create_task(Subject="In sync")
    unmapped = sf.create_task(Subject="Waiting", Status="Waiting on someone else")
    conflicted = sf.create_task(Subject="Conflicted")
    await first_sync(engine)
    sc.update_task(sc_partner(engine, conflicted), details="SC says")
    sf.update_task(conflicted, Description="SF says")
    await engine.run_once()
    pending_sc = sc_partner(engine, in_sync)
    sc.update_task(pending_sc, name="In sync, renamed")  # not yet carried across
    await engine.edit_task(Side.SALESCONNECT, pending_sc, {"priority": "high"})

    rows = {(r.sc.id if r.sc else None, r.sf.id if r.sf else None): r for r in engine.rows()}

    assert rows[(pending_sc, in_sync)].state is RowState.PENDING
    assert rows[(sc_partner(engine, unmapped), unmapped)].state is RowState.NOT_SYNCED
    conflict_row = rows[(sc_partner(engine, conflicted), conflicted)]
    assert conflict_row.state is RowState.CONFLICT
    assert conflict_row.conflict_id == engine.conflicts()[0].id
    old_row = rows[(old_sc, None)]
    assert old_row.state is RowState.NOT_SYNCED
    assert old_row.key == f"sc:{old_sc}"
    keys = [r.key for r in engine.rows()]
    assert len(keys) == len(set(keys)) == 4

    await engine.run_once()
    row = next(r for r in engine.rows() if r.sc and r.sc.id == pending_sc)
    assert row.state is RowState.IN_SYNC
    assert sf.get_task(in_sync)["Subject"] == "In sync, renamed"
    assert sf.get_task(in_sync)["Priority"] == "High"


async def test_one_failing_task_is_parked_with_its_error_and_the_run_goes_on(
    sf, sc, clock, engine
) -> None:
    good = sf.create_task(Subject="Good task")
    bad = sf.create_task(Subject="x" * 10)
    sf.app.state.emulator.update_task(bad, Subject="")  # SC refuses a task without a name

    summary = await first_sync(engine)

    assert summary.errors == 1 and summary.created == {"salesconnect": 1}
    assert sc_partner(engine, good)
    [error] = engine.store.errors()
    assert (error.side, error.task_id, error.category) == (Side.SALESFORCE, bad, "validation")
    row = next(r for r in engine.rows() if r.sf and r.sf.id == bad)
    assert row.state is RowState.ERROR and "validation" in row.reason
    assert engine.status().errors == 1

    sf.update_task(bad, Subject="Fixed task")
    summary = await engine.run_once()
    assert summary.errors == 0
    assert engine.store.errors() == []
    assert "Fixed task" in sc.by_name()


async def test_editing_creating_and_deleting_from_the_dashboard_reach_the_other_side(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    sf_new = await engine.create_task(Side.SALESFORCE, Task(name="Made in SF column"))
    sc_new = await engine.create_task(Side.SALESCONNECT, Task(name="Made in SC column"))
    assert sf.get_task(sf_new)["Subject"] == "Made in SF column"
    assert sc.get_task(sc_new)["name"] == "Made in SC column"
    await engine.run_once()
    assert "Made in SF column" in sc.by_name()
    assert "Made in SC column" in sf.by_subject()

    await engine.edit_task(Side.SALESFORCE, sf_new, {"status": "complete"})
    await engine.delete_task(Side.SALESCONNECT, sc_new)
    await engine.run_once()

    assert sc.by_name()["Made in SF column"]["status"] == "complete"
    assert "Made in SC column" not in sf.by_subject()


async def test_set_enabled_records_enabled_at_and_starts_the_first_sync(
    sf, sc, clock, engine
) -> None:
    sf.create_task(Subject="Imported once enabled")
    assert engine.settings.enabled is False
    finished = asyncio.Event()
    engine.subscribe(lambda e: finished.set() if isinstance(e, events.SyncFinished) else None)

    await engine.set_enabled(True)

    assert engine.settings.enabled_at is not None
    async with asyncio.timeout(20):
        await finished.wait()
    assert "Imported once enabled" in sc.by_name()
    assert sc.app.state.emulator.settings()["salesforce_sync_enabled"] is True


async def test_sync_now_during_a_run_queues_one_more_run_and_never_two_at_once(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    started: list[str] = []
    finished: list[str] = []
    active = 0
    overlap = False

    def listen(event: Any) -> None:
        nonlocal active, overlap
        if isinstance(event, events.SyncStarted):
            active += 1
            overlap = overlap or active > 1
            started.append(event.reason)
        elif isinstance(event, events.SyncFinished):
            active -= 1
            finished.append(event.run_id)

    engine.subscribe(listen)
    await engine.update_settings(poll_interval=3600)
    loop = asyncio.create_task(engine.run_forever())
    try:
        async with asyncio.timeout(20):
            while not started:
                await asyncio.sleep(0.005)
            for _ in range(3):
                engine.request_sync()
            while len(finished) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert len(started) == 2
    assert not overlap
    assert engine.status().next_run is None  # the loop is stopped


async def test_update_settings_validates_and_saves(engine) -> None:
    settings = await engine.update_settings(poll_interval=60, timezone="Europe/Paris")
    assert settings.poll_interval == 60
    try:
        await engine.update_settings(poll_interval=1)
    except ValueError as exc:
        assert "poll interval" in str(exc)
    else:
        raise AssertionError("a 1-second poll interval was accepted")
    assert engine.settings.poll_interval == 60


async def test_a_run_with_sync_off_reads_and_writes_nothing(sf, sc, engine) -> None:
    sf.create_task(Subject="Stays put")
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DISABLED
    assert sc.tasks() == []


async def test_not_synced_reasons_survive_a_restart_and_a_run_that_does_not_reread_the_task(
    sf, sc, clock, engine, make_engine
) -> None:
    with clock.at(hours=-24.5):  # read by the first sync, but outside its 24-hour window
        too_old = sf.create_task(Subject="Changed just before the window")
    fresh = sf.create_task(Subject="Imported")
    await first_sync(engine)

    def state_of(an_engine: Any) -> tuple[RowState, str]:
        [row] = [r for r in an_engine.rows() if r.sf and r.sf.id == too_old]
        return row.state, row.reason

    before = state_of(engine)
    assert before == (RowState.NOT_SYNCED, "last changed before the first-sync window")
    await engine.aclose()

    restarted = make_engine()
    assert state_of(restarted) == before  # not "pending" until the next run
    assert restarted.status().pending == 0

    summary = await restarted.run_once()  # the task is not read again: nothing changed
    assert summary.writes == 0 and summary.skipped == 0
    assert state_of(restarted) == before
    assert restarted.store.link_by_sf(fresh) is not None


async def test_the_activity_log_is_stamped_with_the_engines_clock(sf, sc, clock, engine) -> None:
    # The emulators and the engine run 40 days ahead: the log must agree with them, not the wall.
    clock.set(timedelta(days=40))
    await engine.set_enabled(True, start=False)
    await engine.run_once()

    entries = engine.activity()
    assert entries, "a run and a settings change must be logged"
    for entry in entries[:2]:
        at = datetime.fromisoformat(entry["at"])
        assert abs(at - clock.now()) < timedelta(minutes=5), entry


async def test_closing_the_engine_during_a_requested_run_lets_the_run_finish(
    sf, sc, make_engine
) -> None:
    engine = make_engine()
    await engine.set_enabled(True, start=False)
    ids = [sf.create_task(Subject=f"Call {n}") for n in range(30)]
    started = asyncio.Event()
    engine.subscribe(lambda e: started.set() if isinstance(e, events.SyncStarted) else None)
    engine.request_sync()  # "sync now", then the app quits while the run is reading
    async with asyncio.timeout(20):
        await started.wait()
    await engine.aclose()

    later = make_engine()
    assert {link.sf_id for link in later.store.links().values()} == set(ids)
    assert len(sc.tasks()) == 30  # created once, and the links were saved


async def test_a_headless_run_works_out_no_row_keys_and_rows_asked_later_are_right(
    sf, sc, clock, engine, monkeypatch
) -> None:
    """Nobody listens and no rows were built (a `reminder-sync sync`): the run makes no row
    keys; rows asked for afterwards show what it did. Then a listener hears every row the
    next run changes."""
    made: list[int] = []
    keys_of = engine._keys_of
    monkeypatch.setattr(engine, "_keys_of", lambda reads: made.append(1) or keys_of(reads))
    await first_sync(engine)
    clock.shift(minutes=1)
    sc_id = sc.create_task(name="Call Ada")
    await engine.run_once()
    assert made == []
    [row] = engine.rows()  # built now, from the state the run left
    assert row.state is RowState.IN_SYNC and row.sc.id == sc_id and row.sf is not None

    clock.shift(minutes=1)
    second = sc.create_task(name="Call Grace")
    seen: list[Any] = []
    unsubscribe = engine.subscribe(seen.append)
    await engine.run_once()
    unsubscribe()
    announced = {key for e in seen if isinstance(e, events.TasksChanged) for key in e.keys}
    sf_id = engine.store.link_by_sc(second).sf_id
    assert f"{second}|{sf_id}" in announced
    assert {r.sc.id for r in engine.rows() if r.state is RowState.IN_SYNC} == {sc_id, second}
