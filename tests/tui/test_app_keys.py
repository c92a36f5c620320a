"""App-wide keys: settings, activity log, help, the command palette and quit."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import SIZE, make_app, wait_until
from tui.screens.activity import ActivityScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.settings import SettingsScreen


async def test_comma_l_and_question_mark_open_their_screens(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        for key, screen_type in (
            ("comma", SettingsScreen),
            ("l", ActivityScreen),
            ("question_mark", HelpScreen),
        ):
            await pilot.press(key)
            assert isinstance(app.screen, screen_type), key
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen), key


async def test_the_command_palette_offers_the_screen_keys(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Settings")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")


async def test_q_quits(demo: Any) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
