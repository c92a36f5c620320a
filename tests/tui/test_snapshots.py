"""Snapshot tests of every screen, on the seeded demo week at a fixed moment.

The backend (both emulators, seeded, the real engine after its two demo runs) is built once for
the module at a fixed clock: the emulators' clocks, the engine's clock, the audit log's
timestamps and the app's "today" all read 2026-03-12 16:00 UTC. The app runs without its
background worker, so nothing moves while the screenshot is taken.

Update after an intended change: `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tui.demo import Demo, DemoApp, demo_backend

FIXED = datetime(2026, 3, 12, 16, 0, tzinfo=UTC)
WIDE = (120, 40)
NARROW = (80, 24)


class _FrozenDatetime(datetime):
    """datetime whose now() is FIXED (the audit log stamps its entries with now())."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return FIXED if tz is None else FIXED.astimezone(tz)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    import sync.store

    home = Path(tmp_path_factory.mktemp("snapshots")) / "home"
    patch = pytest.MonkeyPatch()
    patch.setattr(sync.store, "datetime", _FrozenDatetime)
    runner = asyncio.Runner()
    context = demo_backend(home, now=FIXED, chaos_seed=1)
    try:
        demo = runner.run(context.__aenter__())
        runner.run(demo.engine.update_settings(timezone="UTC", poll_interval=3600))
        yield demo
    finally:
        runner.run(context.__aexit__(None, None, None))
        runner.close()
        patch.undo()


def app_for(backend: Demo) -> DemoApp:
    return DemoApp(backend, chaos=False, run_engine=False, clock=lambda: FIXED)


def keys_then_still(*keys: str) -> Any:
    """Press `keys`, then stop text cursors blinking, so the picture never catches a blink."""

    async def run_before(pilot: Any) -> None:
        await pilot.press(*keys)
        await pilot.pause()
        for widget in pilot.app.screen.query("Input, TextArea"):
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


def test_dashboard_command_center(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), terminal_size=WIDE)


def test_dashboard_all_tasks(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["v"], terminal_size=WIDE)


def test_dashboard_narrow_terminal(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), terminal_size=NARROW)


def test_dashboard_filtered(backend: Demo, snap_compare: Any) -> None:
    still = keys_then_still("v", "slash", *"call")
    assert snap_compare(app_for(backend), run_before=still, terminal_size=WIDE)


def test_conflict_screen(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["n", "enter"], terminal_size=WIDE)


def test_conflict_screen_with_a_choice(backend: Demo, snap_compare: Any) -> None:
    press = ["n", "n", "enter", "greater_than_sign"]
    assert snap_compare(app_for(backend), press=press, terminal_size=WIDE)


def test_task_screen(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["down", "enter"], terminal_size=WIDE)


def test_edit_dialog(backend: Demo, snap_compare: Any) -> None:
    still = keys_then_still("down", "right", "e")
    assert snap_compare(app_for(backend), run_before=still, terminal_size=WIDE)


def test_settings_screen(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["comma"], terminal_size=WIDE)


def test_activity_screen(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["l"], terminal_size=WIDE)


def test_help_screen(backend: Demo, snap_compare: Any) -> None:
    assert snap_compare(app_for(backend), press=["question_mark"], terminal_size=WIDE)


def test_welcome_screen(tmp_path: Path, snap_compare: Any) -> None:
    from sync.engine import build_engine
    from sync.secrets import MemoryStore
    from tui.app import ReminderSyncApp

    engine = build_engine(tmp_path / "home", MemoryStore())
    try:
        app = ReminderSyncApp(engine, run_engine=False, clock=lambda: FIXED)
        assert snap_compare(app, terminal_size=WIDE)
    finally:
        asyncio.run(engine.aclose())
