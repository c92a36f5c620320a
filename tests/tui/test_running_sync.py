"""The app while a sync is running: `s` queues one more run (never two at once), and opening and
closing screens leaves the background sync alone. The run is held by the Salesforce emulator's
"hang" fault until the keys have been pressed (`release`), so it is still going while they are."""

from __future__ import annotations

from typing import Any

from sync import events
from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.activity import ActivityScreen
from tui.screens.conflict import ConflictScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.settings import SettingsScreen
from tui.widgets.status_bar import StatusBar


def record_runs(engine: Any, outcomes: list[str] | None = None) -> list[str]:
    """ "start"/"end" in the order the engine reported them (and each run's outcome)."""
    seen: list[str] = []

    def listener(event: Any) -> None:
        if isinstance(event, events.SyncStarted):
            seen.append("start")
        elif isinstance(event, events.SyncFinished):
            seen.append("end")
            if outcomes is not None:
                outcomes.append(str(event.summary.outcome))

    engine.subscribe(listener)
    return seen


def hold_next_read(demo: Any) -> None:
    """The next Salesforce query waits until `release(demo)` (at most 30 s)."""
    demo.sf.set_fault(kinds=["hang"], hang_seconds=30.0, count=1, path_contains="/query")


def release(demo: Any) -> None:
    demo.sf.release_hangs()


async def test_s_during_a_run_queues_exactly_one_more_run(demo: Any) -> None:
    runs = record_runs(demo.engine)
    hold_next_read(demo)
    app = ReminderSyncApp(demo.engine, run_engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.sync_running, what="the first run to start")
        await pilot.press("s", "s", "s")
        assert app.sync_queued
        assert "+1 queued" in str(app.screen.query_one(StatusBar).render())
        assert runs == ["start"], "the first run is still going"
        release(demo)
        await wait_until(pilot, lambda: runs.count("end") == 2, what="the queued run")
        # Three presses during one run gave one more run, and the runs never overlapped.
        assert runs == ["start", "end", "start", "end"]
        assert not demo.engine.scheduler.pending
        assert not app.sync_queued
        assert "idle" in str(app.screen.query_one(StatusBar).render())


async def test_screens_opened_and_closed_during_a_run_leave_the_sync_running(demo: Any) -> None:
    outcomes: list[str] = []
    runs = record_runs(demo.engine, outcomes)
    hold_next_read(demo)
    app = ReminderSyncApp(demo.engine, run_engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.sync_running, what="the first run to start")
        await pilot.press("comma")
        assert isinstance(app.screen, SettingsScreen)
        await pilot.press("escape")
        assert app.sync_running, "the run is still going after settings came and went"
        await pilot.press("n", "enter")
        assert isinstance(app.screen, ConflictScreen)
        await pilot.press("escape", "l")
        assert isinstance(app.screen, ActivityScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        assert app.sync_running and runs == ["start"], "the run is still going"
        release(demo)
        await wait_until(pilot, lambda: runs == ["start", "end"], what="the run to finish")
        # It finished its work (the two demo conflicts still wait), it was not cancelled.
        assert outcomes == ["conflicts"]
        assert app._engine_worker is not None and app._engine_worker.is_running
        # The background loop is alive: a new request is served.
        await pilot.press("s")
        await wait_until(pilot, lambda: runs.count("end") == 2, what="the next run")
        assert app._engine_worker.is_running
