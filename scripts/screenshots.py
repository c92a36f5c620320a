"""Write an SVG of every screen of the real demo app into screenshots/.

    .venv/bin/python scripts/screenshots.py [--out screenshots]

Runs what `reminder-sync demo` runs (both emulators in-process, seeded, the real engine with
its background worker) headless, drives it with keys, and saves one picture per screen.
Chaos is off so the pictures show the seeded week as it is after the demo's first two runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tui.demo import DemoApp, demo_backend  # noqa: E402

WIDE = (120, 40)
NARROW = (80, 24)

# name, terminal size, keys pressed on a freshly opened dashboard
SHOTS: tuple[tuple[str, tuple[int, int], tuple[str, ...]], ...] = (
    ("dashboard", WIDE, ()),
    ("dashboard-all", WIDE, ("v",)),
    ("dashboard-narrow", NARROW, ()),
    ("dashboard-filter", WIDE, ("v", "slash", *"proposal", "enter")),
    ("conflict", WIDE, ("n", "enter")),
    ("conflict-choice", WIDE, ("n", "n", "enter", "greater_than_sign")),
    ("task", WIDE, ("down", "enter")),
    ("edit", WIDE, ("down", "right", "e")),
    ("confirm-delete", WIDE, ("down", "d")),
    ("settings", WIDE, ("comma",)),
    ("activity", WIDE, ("l",)),
    ("help", WIDE, ("question_mark",)),
    ("command-palette", WIDE, ("ctrl+p",)),
)


async def shoot(app: DemoApp, size: tuple[int, int], keys: Sequence[str], path: Path) -> None:
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.engine.scheduler.wait_idle()
        await pilot.press(*keys)
        await pilot.pause(0.3)
        for widget in app.screen.query("Input, TextArea"):
            widget.cursor_blink = False  # never catch a blink
        await pilot.pause()
        path.write_text(app.export_screenshot(title=f"reminder-sync · {path.stem}"))
        app.exit()


async def welcome(path: Path) -> None:
    from sync.engine import build_engine
    from sync.secrets import MemoryStore
    from tui.app import ReminderSyncApp

    with tempfile.TemporaryDirectory(prefix="reminder-sync-shots-") as tmp:
        engine = build_engine(Path(tmp) / "home", MemoryStore())
        try:
            app = ReminderSyncApp(engine, run_engine=False)
            async with app.run_test(size=WIDE) as pilot:
                await pilot.pause()
                path.write_text(app.export_screenshot(title="reminder-sync · welcome"))
        finally:
            await engine.aclose()


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, size, keys in SHOTS:
        with tempfile.TemporaryDirectory(prefix="reminder-sync-shots-") as tmp:
            async with demo_backend(Path(tmp) / "home") as demo:
                app = DemoApp(demo, chaos=False)
                await shoot(app, size, keys, out / f"{name}.svg")
        print(f"wrote {out / name}.svg")
    await welcome(out / "welcome.svg")
    print(f"wrote {out / 'welcome'}.svg")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    asyncio.run(main(parser.parse_args().out))
