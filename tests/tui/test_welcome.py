"""First run: with no connection set up the app opens on the welcome screen, not an empty
dashboard; it offers the demo and both log-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from sync.model import Side
from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.login import Accounts, LoginScreen
from tui.screens.welcome import WELCOME_LINES, WelcomeScreen


@pytest.fixture
async def fresh_engine(tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    from sync.engine import build_engine
    from sync.secrets import MemoryStore

    secrets = MemoryStore()
    engine = build_engine(tmp_path / "home", secrets)
    yield engine, secrets
    await engine.aclose()


async def test_no_connection_opens_the_welcome_screen(fresh_engine: tuple[Any, Any]) -> None:
    engine, secrets = fresh_engine
    app = ReminderSyncApp(engine, run_engine=False, accounts=Accounts(engine, secrets))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        shown = [str(widget.render()) for widget in app.screen.query(Static)]
        assert len(WELCOME_LINES) == 3
        for line in WELCOME_LINES:
            assert line in shown
        await pilot.press("f")
        assert isinstance(app.screen, LoginScreen) and app.screen.side is Side.SALESFORCE
        await pilot.press("escape", "c")
        assert isinstance(app.screen, LoginScreen) and app.screen.side is Side.SALESCONNECT
        await pilot.press("escape")
        assert isinstance(app.screen, WelcomeScreen)


async def test_d_on_the_welcome_screen_asks_for_the_demo(fresh_engine: tuple[Any, Any]) -> None:
    engine, _ = fresh_engine
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        await pilot.pause()
    assert app.return_value == "demo"  # run_dashboard then starts the demo


async def test_logging_in_to_sales_connect_from_the_app(
    fresh_engine: tuple[Any, Any], sc: Any
) -> None:
    engine, secrets = fresh_engine
    app = ReminderSyncApp(engine, run_engine=False, accounts=Accounts(engine, secrets))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, LoginScreen)
        screen.query_one("#base_url", Input).value = sc.base_url
        screen.query_one("#client_id", Input).value = sc.client_id
        screen.query_one("#secret", Input).value = sc.client_secret
        await pilot.click("#go")
        await wait_until(
            pilot,
            lambda: engine.status().connections.get("salesconnect"),
            what="the Sales Connect connection saved",
        )
        assert (await secrets.get("salesconnect.client_secret")) is not None
        assert sc.client_secret not in Path(engine.store.path).read_text()
