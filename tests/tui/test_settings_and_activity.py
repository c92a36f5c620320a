"""Settings (the sync switch, schedule, time zone, conflict policy) and the activity log
(runs, actions with before/after, failed tasks grouped by category, retry)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, DataTable, Input, Select

from sync.model import Policy
from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.activity import ActivityScreen
from tui.screens.settings import SettingsScreen


async def test_the_checkbox_turns_sync_on_and_starts_the_first_sync(
    engine: Any, sf: Any, sc: Any
) -> None:
    sf.create_task(Subject="Call Priya tomorrow", ActivityDate="2030-06-02")
    assert not engine.settings.enabled
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        assert isinstance(app.screen, SettingsScreen)
        assert app.focused is app.screen.query_one("#enabled", Checkbox)
        await pilot.press("space")
        await wait_until(
            pilot,
            lambda: engine.settings.enabled and engine.settings.enabled_at is not None,
            what="sync switched on with enabled_at recorded",
        )
        await wait_until(
            pilot,
            lambda: "Call Priya tomorrow" in sc.by_name(),
            what="the first sync to import the recent Salesforce task",
        )
        await engine.scheduler.wait_idle()
        assert "On since" in str(app.screen.query_one("#enabled-note").render())


async def test_saving_schedule_time_zone_and_policy(engine: Any) -> None:
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        screen = app.screen
        screen.query_one("#poll_interval", Input).value = "45"
        screen.query_one("#timezone", Input).value = "Europe/Paris"
        screen.query_one("#policy-due_date", Select).value = Policy.SALESFORCE_WINS
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: engine.settings.poll_interval == 45, what="saved")
        assert engine.settings.timezone == "Europe/Paris"
        assert engine.settings.policy("due_date") is Policy.SALESFORCE_WINS
        assert engine.settings.policy("name") is Policy.MANUAL


async def test_a_bad_time_zone_is_refused_with_a_clear_message(engine: Any) -> None:
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        screen = app.screen
        screen.query_one("#timezone", Input).value = "Mars/Olympus_Mons"
        screen.query_one("#poll_interval", Input).value = "45"
        await pilot.press("ctrl+s")
        await pilot.pause()
        message = str(screen.query_one("#settings-error").render())
        assert "Mars/Olympus_Mons" in message and "time zone" in message
        assert engine.settings.timezone == "local" and engine.settings.poll_interval != 45


async def test_activity_shows_runs_and_changes_and_retries_failed_tasks(demo: Any) -> None:
    engine = demo.engine
    row = next(r for r in engine.rows() if str(r.state) == "in_sync")
    demo.sc.update(row.sc.id, None, {"name": "Renamed in Sales Connect"})
    demo.sf.set_fault(kinds=["lock"], methods=["PATCH", "POST"])
    await engine.run_once()
    assert len(engine.store.errors()) == 1

    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, ActivityScreen)
        log = screen.query_one("#log", DataTable)
        kinds = {str(log.get_row_at(i)[1]) for i in range(log.row_count)}
        assert {"run", "create", "conflict"} <= kinds
        changes = [str(log.get_row_at(i)[3]) for i in range(log.row_count)]
        assert any(c.startswith("new: ") for c in changes)
        summary = str(screen.query_one("#error-summary").render())
        assert "transient: 1" in summary
        errors = screen.query_one("#errors", DataTable)
        assert errors.row_count == 1 and "UNABLE_TO_LOCK_ROW" in str(errors.get_row_at(0)[3])

        demo.sf.clear_faults()
        await pilot.press("r")
        await wait_until(pilot, lambda: not engine.store.errors(), what="the retry to succeed")
        await engine.scheduler.wait_idle()
        await wait_until(
            pilot,
            lambda: demo.sf.task(row.sf.id)["Subject"] == "Renamed in Sales Connect",
            what="the retried write in Salesforce",
        )
        app.refresh_screens()
        await pilot.pause()
        assert "No failed tasks" in str(screen.query_one("#error-summary").render())


async def test_log_out_from_settings_forgets_the_connection(engine: Any, secrets: Any) -> None:
    from tui.screens.login import Accounts

    assert await secrets.get("salesconnect.client_secret") is not None
    app = ReminderSyncApp(engine, run_engine=False, accounts=Accounts(engine, secrets))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.click("#logout-salesconnect")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: not engine.status().connections.get("salesconnect"),
            what="Sales Connect logged out",
        )
        assert await secrets.get("salesconnect.client_secret") is None
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        await pilot.pause()
        assert "not connected" in str(screen.query_one("#conn-salesconnect").render())
        assert screen.query_one("#login-salesconnect").display
