"""Fixtures for the terminal app's tests: the real demo backend (both emulators over loopback,
seeded, the real engine on a temporary state directory) and small waiting helpers.

The shared fixtures of tests/conftest.py (`sf`, `sc`, `engine`, ...) serve the tests that build
their own scenario; `demo` serves the tests that need the seeded week.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tui.app import ReminderSyncApp
from tui.demo import Demo, demo_backend
from tui.screens.dashboard import DashboardScreen

SIZE = (120, 40)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    async with demo_backend(tmp_path / "home") as backend:
        # Keep the scheduler out of the way: tests decide when runs happen.
        await backend.engine.update_settings(poll_interval=3600)
        yield backend


async def wait_until(
    pilot: Pilot, condition: Callable[[], Any], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Let the app work until `condition()` holds; fail (saying what) if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for: {what or condition}")
        await pilot.pause(0.05)


# The dashboard as the key tests see it (the demo engine, no background worker).


def make_app(demo: Any) -> ReminderSyncApp:
    return ReminderSyncApp(demo.engine, run_engine=False)


def dashboard(app: ReminderSyncApp) -> DashboardScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    return screen


def rows_by_state(app: ReminderSyncApp, state: str) -> list[Any]:
    dash = dashboard(app)
    return [
        dash._rows_by_key[key]
        for key in dash.table.keys
        if str(dash._rows_by_key[key].state) == state
    ]
