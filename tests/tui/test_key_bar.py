"""The key line: the screen's keys as one line that follows focus and screens; a key is
clickable."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import SIZE, make_app, wait_until
from tui.screens.help import HelpScreen
from tui.widgets.key_bar import KeyBar


def key_line(app: Any) -> str:
    return app.screen.query_one(KeyBar).render_keys().plain


async def test_the_line_shows_the_screens_keys_and_follows_the_screen(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        line = key_line(app)
        for shown in ("sSync", "nNext", "eEdit", "?Help", "qQuit", "^ppalette"):
            assert shown in line, line
        assert "Side" not in line  # ←/→ are bindings with show=False
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause()
        assert "Close" in key_line(app) and "Sync" not in key_line(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="back")
        assert "sSync" in key_line(app)


async def test_the_filter_box_hides_the_keys_it_takes(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash")
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        # While the filter box has focus, printable keys are typed: the dashboard's are off.
        assert "sSync" not in str(bar.render()), str(bar.render())
        await pilot.press("escape")
        await pilot.pause()
        assert "sSync" in str(bar.render())


async def test_clicking_a_key_presses_it(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        column = key_line(app).index("?Help")
        assert await pilot.click(KeyBar, offset=(column + 1, 0))
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
