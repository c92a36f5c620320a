"""Untrusted text from either service shows literally: no markup, no escape sequences."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.task import TaskScreen
from tui.widgets.text import plain, sanitize

HOSTILE = "[/x] [bold]loud[/bold] \x1b[2J\x1b]0;pwned\x07 done"


def test_sanitize_drops_escape_sequences_and_controls_but_keeps_brackets() -> None:
    assert sanitize(HOSTILE) == "[/x] [bold]loud[/bold]  done"
    assert sanitize("tab\tand\nnew\rline\x00\x7f\u202e") == "tab and new line"
    text = plain("[/x]")
    assert isinstance(text, Text) and text.plain == "[/x]" and not text.spans


async def test_a_hostile_subject_from_salesforce_shows_literally(
    engine: Any, sf: Any, sc: Any
) -> None:
    sf_id = sf.create_task(
        Subject=HOSTILE, ActivityDate="2030-05-01", Description="line one\x1b[31m\nline two"
    )
    await engine.set_enabled(True, start=False)
    await engine.run_once()
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        key = next(k for k, row in dashboard._rows_by_key.items() if row.sf and row.sf.id == sf_id)
        dashboard.table.move_to_key(key)
        await pilot.pause()
        cells = dashboard.table.cells_of(key)
        shown = " ".join(cell.plain for cell in cells)
        assert "[/x] [bold]loud[/bold]" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        assert all(not cell.spans for cell in cells[1:2])  # no style came from the text
        screenshot = app.export_screenshot().replace("&#160;", " ")
        assert "[/x] [bold]loud[/bold]" in screenshot
        assert "\x1b" not in screenshot
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen), what="task screen")
        detail = app.export_screenshot().replace("&#160;", " ")
        assert "line one" in detail and "line two" in detail and "\x1b" not in detail
