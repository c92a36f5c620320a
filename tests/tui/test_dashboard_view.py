"""The dashboard's view keys (v, /, n, p, enter) on the seeded demo week, real engine."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from tests.tui.conftest import SIZE, dashboard, make_app, rows_by_state
from tui.screens.conflict import ConflictScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.task import TaskScreen


async def test_the_dashboard_shows_both_sides_with_markers_and_status(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dash = dashboard(app)
        # Command Center is the default view: only tasks due today or tomorrow.
        assert dash.view == "Command Center"
        today = app.today()
        shown = [dash._rows_by_key[key] for key in dash.table.keys]
        assert shown, "the seeded week has tasks due today and tomorrow"
        for row in shown:
            dues = [t.fields.due_date for t in (row.sc, row.sf) if t is not None]
            assert any(d is not None and 0 <= (d - today).days <= 1 for d in dues)
        # Linked partners share a row; one-sided rows exist too.
        assert any(row.sc and row.sf for row in shown)
        assert any(row.sf is None for row in shown)
        marks = {str(dash.table.cells_of(key)[0]) for key in dash.table.keys}
        assert {"✓ in sync", "! conflict", "– not synced"} <= marks
        status = str(dash.query_one("#status").render())
        assert "2 conflicts" in status and "0 errors" in status and "SF API" in status
        assert "Command Center" in status


async def test_v_switches_to_all_and_back(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dash = dashboard(app)
        command_center = len(dash.table.keys)
        await pilot.press("v")
        assert dash.view == "All"
        assert len(dash.table.keys) == len(demo.engine.rows()) > command_center
        await pilot.press("v")
        assert dash.view == "Command Center"
        assert len(dash.table.keys) == command_center


async def test_slash_filters_by_text_and_escape_clears(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")  # All, so the filter has plenty to search
        dash = dashboard(app)
        everything = len(dash.table.keys)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"proposal")
        await pilot.pause()
        names = [
            (row.sc or row.sf).fields.name
            for row in (dash._rows_by_key[k] for k in dash.table.keys)
        ]
        assert names and all("proposal" in name.lower() for name in names)
        assert len(names) < everything
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.focused is dash.table
        await pilot.press("escape")
        assert len(dash.table.keys) == everything


async def test_n_and_p_jump_between_the_two_conflicts(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dash = dashboard(app)
        conflicts = [row.key for row in rows_by_state(app, "conflict")]
        assert len(conflicts) == 2
        await pilot.press("n")
        first = dash.table.cursor_key
        assert first in conflicts
        await pilot.press("n")
        second = dash.table.cursor_key
        assert second in conflicts and second != first
        await pilot.press("p")
        assert dash.table.cursor_key == first


async def test_enter_opens_the_conflict_or_the_task(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "enter")
        assert isinstance(app.screen, ConflictScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        in_sync = rows_by_state(app, "in_sync")[0]
        dashboard(app).table.move_to_key(in_sync.key)
        await pilot.press("enter")
        assert isinstance(app.screen, TaskScreen)
        assert app.screen.row.key == in_sync.key
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
