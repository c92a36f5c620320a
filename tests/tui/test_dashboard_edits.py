"""Editing from the dashboard (e, x, a, d): each write reaches that side's emulator."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from sync.model import Side
from tests.tui.conftest import SIZE, dashboard, make_app, rows_by_state, wait_until
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import ConfirmDialog, EditTaskDialog


async def test_e_edits_the_salesforce_side_in_salesforce(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = rows_by_state(app, "in_sync")[0]
        dash = dashboard(app)
        dash.table.move_to_key(row.key)
        await pilot.press("right")  # the Salesforce side
        assert dash.side is Side.SALESFORCE
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, EditTaskDialog) and dialog.side is Side.SALESFORCE
        dialog.query_one("#name", Input).value = "Call back about the renewal (moved)"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: demo.sf.task(row.sf.id)["Subject"] == "Call back about the renewal (moved)",
            what="the new subject in the Salesforce emulator",
        )
        # Sales Connect was not written by the edit itself; the sync carries it across.
        await demo.engine.scheduler.wait_idle()
        await wait_until(
            pilot,
            lambda: demo.sc.get(row.sc.id)["name"] == "Call back about the renewal (moved)",
            what="the sync to carry the edit to Sales Connect",
        )


async def test_x_completes_the_task_on_the_focused_side(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = next(r for r in rows_by_state(app, "in_sync") if r.sc.fields.status == "open")
        dashboard(app).table.move_to_key(row.key)
        await pilot.press("left", "x")  # the Sales Connect side
        await wait_until(
            pilot,
            lambda: demo.sc.get(row.sc.id)["status"] == "complete",
            what="the task completed in Sales Connect",
        )
        await demo.engine.scheduler.wait_idle()


async def test_a_adds_a_task_on_the_focused_side(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("left", "a")
        dialog = app.screen
        assert isinstance(dialog, EditTaskDialog) and dialog.new
        await pilot.press(*"Call Kim")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: any(t["name"] == "Call Kim" for t in demo.sc.tasks()),
            what="the new task in Sales Connect",
        )
        created = next(t for t in demo.sc.tasks() if t["name"] == "Call Kim")
        assert created["due_date"] == app.today().isoformat()  # a new task is due today
        await demo.engine.scheduler.wait_idle()


async def test_d_asks_first_and_deletes_only_when_confirmed(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        only_sc = next(
            r
            for r in rows_by_state(app, "not_synced")
            if r.sf is None and r.reason == "created before sync was enabled"
        )
        dashboard(app).table.move_to_key(only_sc.key)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert isinstance(app.screen, DashboardScreen)
        assert demo.sc.get(only_sc.sc.id)["deleted_at"] is None
        await pilot.press("d")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: all(t["id"] != only_sc.sc.id for t in demo.sc.tasks()),
            what="the task deleted in Sales Connect",
        )
        await demo.engine.scheduler.wait_idle()
