"""How the app follows the engine: bursts of events cost one read of the engine, progress costs
none, and a change re-renders only the rows it touched (the rest keep their cells)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sync import events
from tests.tui.conftest import SIZE, wait_until
from tui import messages
from tui.app import ReminderSyncApp
from tui.screens.dashboard import DashboardScreen
from tui.widgets.status_bar import StatusBar


def count_reads(engine: Any) -> Counter[str]:
    """Count the app's reads of the rows (engine.rows() or rows_so_far(), both "rows") and of
    engine.status() (the real methods answer; a read the engine makes inside another is the
    engine's own and not counted)."""
    calls: Counter[str] = Counter()
    inside: list[str] = []
    for name, counted_as in (("rows", "rows"), ("rows_so_far", "rows"), ("status", "status")):
        real = getattr(engine, name)

        def counted(real: Any = real, name: str = counted_as) -> Any:
            if not inside:
                calls[name] += 1
            inside.append(name)
            try:
                return real()
            finally:
                inside.pop()

        setattr(engine, name, counted)
    return calls


def dashboard(app: ReminderSyncApp) -> DashboardScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    return screen


async def test_the_first_paint_reads_the_rows_and_the_status_once(demo: Any) -> None:
    calls = count_reads(demo.engine)
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert dashboard(app).table.row_count > 0
        assert calls == {"rows": 1, "status": 1}
        await pilot.press("v", "v", "slash", *"call", "escape")  # views and filter: no reads
        assert calls == {"rows": 1, "status": 1}


async def test_progress_redraws_the_status_line_without_asking_the_engine(demo: Any) -> None:
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(messages.SyncStarted(events.SyncStarted("r1", "manual")))
        # The start is shown by one refresh, which may wait for the first paint's to age.
        await wait_until(
            pilot,
            lambda: "syncing" in str(app.screen.query_one(StatusBar).render()),
            what="the run's start in the status line",
        )
        calls = count_reads(demo.engine)
        for done in range(1, 301):
            app.post_message(messages.SyncProgress(events.SyncProgress("r1", "write", done, 300)))
        await wait_until(
            pilot,
            lambda: "write 300/300" in str(app.screen.query_one(StatusBar).render()),
            what="the last progress in the status line",
        )
        assert calls == {}


async def test_a_burst_of_changes_reads_the_rows_once(demo: Any) -> None:
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        keys = list(dashboard(app)._rows_by_key)
        calls = count_reads(demo.engine)
        for key in keys * 5:
            app.post_message(messages.TasksChanged(events.TasksChanged((key,))))
        await wait_until(pilot, lambda: calls["rows"] >= 1, what="a refresh")
        await pilot.pause(0.3)  # anything left of the burst has been applied by now
        assert calls["rows"] <= 2, calls  # one, or two if a flush fell inside the burst
        assert calls["status"] <= 2, calls


async def test_a_synced_change_re_renders_only_its_row(demo: Any) -> None:
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")  # All: every row is on screen
        dash = dashboard(app)
        linked = [row for row in dash._rows_by_key.values() if str(row.state) == "in_sync"]
        changed, untouched = linked[0], linked[1:]
        before = {row.key: dash.table.cells_of(row.key) for row in untouched}
        assert all(before.values())
        calls = count_reads(demo.engine)

        demo.sf.update_task(changed.sf.id, Subject="Renamed in Salesforce")
        await demo.engine.run_once()
        await wait_until(
            pilot,
            lambda: any(
                "Renamed in Salesforce" in str(cell) for cell in dash.table.cells_of(changed.key)
            ),
            what="the new name on the dashboard",
        )
        # Both sides show it once the run carried it across.
        sc_name = str(dash.table.cells_of(changed.key)[1])
        assert sc_name.startswith("Renamed in Salesforce")
        # The other rows kept the very cells they had: nothing else was rendered again.
        assert all(dash.table.cells_of(key) is cells for key, cells in before.items())
        # A whole run (start, progress, changes, finish) read the rows a handful of times.
        assert calls["rows"] <= 4, calls


async def test_a_hidden_dashboard_catches_up_when_shown_again(demo: Any) -> None:
    from tui.screens.settings import SettingsScreen

    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        dash = dashboard(app)
        row = next(r for r in dash._rows_by_key.values() if str(r.state) == "in_sync")
        await pilot.press("comma")
        assert isinstance(app.screen, SettingsScreen)
        calls = count_reads(demo.engine)
        demo.sf.update_task(row.sf.id, Subject="Renamed while away")
        await demo.engine.run_once()
        await pilot.pause(0.3)
        assert calls["rows"] == 0  # nobody can see the rows: they are not read
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: str(dash.table.cells_of(row.key)[1]).startswith("Renamed while away"),
            what="the change on the dashboard after settings closed",
        )
        assert calls["rows"] == 1


async def in_sync_rows(app: ReminderSyncApp, pilot: Any, count: int) -> tuple[Any, list[Any]]:
    """The dashboard in the All view, and its first `count` rows in sync."""
    await pilot.press("v")
    dash = dashboard(app)
    return dash, [r for r in dash._rows_by_key.values() if str(r.state) == "in_sync"][:count]


async def test_a_burst_of_changes_is_built_in_slices_between_other_work(
    demo: Any, monkeypatch: Any
) -> None:
    import tui.app

    monkeypatch.setattr(tui.app, "ROWS_PER_STEP", 2)
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        dash, linked = await in_sync_rows(app, pilot, 8)
        slices = Counter[str]()
        real = demo.engine.prepare_rows

        def counted(limit: int = 200) -> bool:
            slices["calls"] += 1
            return real(limit)

        demo.engine.prepare_rows = counted
        for n, row in enumerate(linked):
            demo.sf.update_task(row.sf.id, Subject=f"Burst {n}")
        await demo.engine.run_once()
        await wait_until(
            pilot,
            lambda: all(
                str(dash.table.cells_of(r.key)[1]).startswith(f"Burst {n}")
                for n, r in enumerate(linked)
            ),
            what="every row of the burst on the dashboard",
        )
        assert slices["calls"] >= 8  # 16 changed tasks, two a slice


async def test_the_heap_is_frozen_after_a_refresh_and_given_back_at_exit(demo: Any) -> None:
    import gc

    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: dashboard(app).rows_shown, what="the first rows")
        await pilot.pause()
        assert gc.get_freeze_count() > 0  # the collector no longer walks the state and rows
    assert gc.get_freeze_count() == 0


async def test_a_run_in_the_app_collects_young_objects_in_short_pauses(demo: Any) -> None:
    # The app's heap is frozen after each refresh, so it keeps the collector's young
    # collections short during a run instead of the headless engine's rarer, longer ones.
    import gc

    from sync.engine import RUN_GC_THRESHOLD as HEADLESS
    from sync.events import SyncProgress
    from tui.heap import RUN_GC_THRESHOLD

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, ...]] = []
    demo.engine.subscribe(
        lambda event: seen.append(gc.get_threshold()) if isinstance(event, SyncProgress) else None
    )
    try:
        app = ReminderSyncApp(demo.engine, run_engine=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: dashboard(app).rows_shown, what="the first rows")
            await demo.engine.run_once()
        assert seen and set(seen) == {RUN_GC_THRESHOLD}
        assert RUN_GC_THRESHOLD[0] < HEADLESS[0]
        assert gc.get_threshold() == (700, 10, 10)  # put back after the run
    finally:
        gc.set_threshold(*before)


async def test_rows_built_so_far_are_shown_while_a_burst_is_still_being_built(
    demo: Any, monkeypatch: Any
) -> None:
    import tui.app

    monkeypatch.setattr(tui.app, "ROWS_PER_STEP", 1)
    monkeypatch.setattr(tui.app, "SLICES_BEFORE_SHOWING", 1)
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        dash, linked = await in_sync_rows(app, pilot, 6)
        for n, row in enumerate(linked):
            demo.sf.update_task(row.sf.id, Subject=f"Burst {n}")
        await demo.engine.run_once()

        def renamed() -> int:
            return sum(str(dash.table.cells_of(r.key)[1]).startswith("Burst") for r in linked)

        # Two tasks a refresh: the first rows show long before the last are built.
        await wait_until(pilot, lambda: 0 < renamed() < len(linked), what="a part shown")
        await wait_until(pilot, lambda: renamed() == len(linked), what="all of the burst")


async def test_the_cursor_follows_its_task_when_a_run_links_it(demo: Any) -> None:
    from datetime import date

    from sync.dashboard import ids_of_key

    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        dash = dashboard(app)
        # A Salesforce task Sales Connect refuses (a blank name): an unlinked row with an error.
        sf_id = demo.sf.add_task(Subject="placeholder", ActivityDate=str(date.today()))["Id"]
        demo.sf.update_task(sf_id, Subject="")
        await demo.engine.run_once()
        unlinked = f"sf:{sf_id}"
        await wait_until(pilot, lambda: dash.table.index_of(unlinked) is not None, what="row")
        dash.table.move_to_key(unlinked)
        # Named now: the next run copies it, its row becomes a link row and sorts elsewhere.
        demo.sf.update_task(sf_id, Subject="zz Linked at last")
        await demo.engine.run_once()
        await wait_until(pilot, lambda: dash.table.index_of(unlinked) is None, what="link row")
        assert dash.table.cursor_key is not None
        assert ids_of_key(dash.table.cursor_key)[1] == sf_id


async def unseen_run(app: ReminderSyncApp, pilot: Any, engine: Any) -> None:
    """A run the screens do not hear of, its rows built: the test refreshes them itself."""
    refresh, app._refresh = app._refresh, lambda **_: None  # type: ignore[method-assign]
    try:
        await engine.run_once()
        await pilot.pause(0.3)  # its events handled, refreshes (none) done
    finally:
        app._refresh = refresh  # type: ignore[method-assign]
    while not engine.prepare_rows(100):
        pass


async def test_a_refresh_takes_the_rows_then_shows_them_a_loop_turn_later(demo: Any) -> None:
    """Taking a burst's rows and showing them are two loop steps, so neither stalls the loop
    with the other; the table then shows every row, and the cursor stays on its task."""
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        dash, linked = await in_sync_rows(app, pilot, 6)
        dash.table.move_to_key(linked[2].key)
        for n, row in enumerate(linked):
            demo.sf.update_task(row.sf.id, Subject=f"Burst {n}")
        await demo.engine.run_once()
        await pilot.pause(0.3)  # the run's own refreshes are over
        demo.sf.update_task(linked[0].sf.id, Subject="Taken, not yet shown")
        await unseen_run(app, pilot, demo.engine)
        dash.refresh_from_engine(rows=True, keys=None)
        assert "Taken" in dash._rows_by_key[linked[0].key].sf.fields.name
        assert "Taken" not in str(dash.table.cells_of(linked[0].key)[1])  # not in this step
        await wait_until(
            pilot,
            lambda: "Taken" in str(dash.table.cells_of(linked[0].key)[1]),
            what="the taken row in the table",
        )
        assert [str(dash.table.cells_of(r.key)[1])[:7] for r in linked[1:]] == [
            f"Burst {n}" for n in range(1, 6)
        ]
        assert dash.table.cursor_key == linked[2].key


async def test_rows_taken_just_before_another_screen_opens_are_shown_on_return(
    demo: Any,
) -> None:
    from tui.screens.settings import SettingsScreen

    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        dash, linked = await in_sync_rows(app, pilot, 1)
        demo.sf.update_task(linked[0].sf.id, Subject="Renamed as Settings opened")
        await unseen_run(app, pilot, demo.engine)
        await app.push_screen(SettingsScreen())
        dash.refresh_rows(show_later=True)  # taken as it opened: shown on return, not now
        await pilot.pause(0.1)
        assert "Renamed as" not in str(dash.table.cells_of(linked[0].key)[1])
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: "Renamed as" in str(dash.table.cells_of(linked[0].key)[1]),
            what="the row on return",
        )


async def test_rows_taken_as_the_app_closes_are_not_shown(demo: Any) -> None:
    """The show a loop turn later finds the table gone (the app tears its screens down)."""
    app = ReminderSyncApp(demo.engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        dash = dashboard(app)
        await pilot.pause()
        dash.refresh_rows(show_later=True)
        await dash.table.remove()
        dash._show_taken_rows()  # no NoMatches out of a loop callback
        assert dash._unshown
