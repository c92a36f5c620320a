"""Target 5, the dashboard: first paint with N links; while an N-task sync runs, the largest gap
of a heartbeat timer (event-loop stall) and how fast a key press is answered.

Textual's own test harness (`App.run_test`) runs the real app over the real engine on the
emulators, which run in a child process (`bench.emulator_process`) as real services would: the
loop measured is the app's, not shared with the servers' CPU. A key press is timed from the
moment the key event reaches the app until the app shows the effect (the help screen is open
and drawn, then closed and the dashboard redrawn); first paint is timed until the dashboard's
rows have been drawn once. Waiting is done by polling every millisecond on the app's own loop,
so a stalled loop shows up in the time.

`Pilot.press`/`Pilot.pause` are not used for timing: they wait until the whole process's CPU
goes quiet (up to 1 s, twice per key), and the engine shares this process, so during a sync
they time the process, not the UI.

    .venv/bin/python -m bench.tui                  # 10,000 links / tasks
    .venv/bin/python -m bench.tui --size 200
    .venv/bin/python -m bench.tui --stalls         # also: which code held the loop, and how long
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import header, load_average, parser, print_table, verdict
from bench.emulator_process import RemoteRig, remote_rig

SIZE = (120, 40)
PAINT_TARGET = 1.0
STALL_TARGET = 0.050
KEY_TARGET = 0.100
HEARTBEAT = 0.010


@dataclass
class Heartbeat:
    """A Textual interval timer; its largest gap beyond the interval is the worst loop stall."""

    ticks: list[float] = field(default_factory=list)

    def beat(self) -> None:
        self.ticks.append(time.perf_counter())

    def gaps(self, start: float = 0.0, end: float = float("inf")) -> list[float]:
        ticks = [t for t in self.ticks if start <= t <= end]
        return [b - a for a, b in itertools.pairwise(ticks)]


async def _wait(pilot: Any, condition: Any, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await pilot.pause(0.01)


async def _drawn(app: Any, condition: Any, started: float, what: str, timeout: float = 60) -> float:
    """Seconds from `started` until `condition()` holds and the screen has been drawn after."""
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.001)
    await app.screen.wait_for_refresh()
    return time.perf_counter() - started


async def _press(app: Any, key: str, character: str | None, condition: Any, what: str) -> float:
    """Deliver one key to the app as the terminal driver does; seconds until it is answered."""
    from textual import events

    started = time.perf_counter()
    app.post_message(events.Key(key, character))
    return await _drawn(app, condition, started, what)


async def _key_latency(pilot: Any, app: Any) -> float:
    """Press ? until the help screen is drawn; Escape until it is gone. The slower of the two."""
    from tui.screens.help import HelpScreen

    opened = await _press(
        app, "question_mark", "?", lambda: isinstance(app.screen, HelpScreen), "the help screen"
    )
    closed = await _press(
        app, "escape", "\x1b", lambda: not isinstance(app.screen, HelpScreen), "the help to close"
    )
    return max(opened, closed)


async def _cursor_latency(app: Any) -> float | None:
    """Press Down (Up on the last row) until the table has moved its cursor and that is drawn:
    the key a user presses most. None when the table has fewer than two rows.

    Not "until the cursor is on the next task's row": during a sync a refresh may reorder the
    rows while the key travels (an import links tasks, which re-keys and re-sorts their rows),
    and the row below the cursor is then another task's."""
    table = app.screen.table
    if table.row_count < 2:
        return None
    key = "down" if table.cursor_row < table.row_count - 1 else "up"
    action = f"action_cursor_{key}"
    move = getattr(table, action)
    moved = False

    def spy() -> None:
        nonlocal moved
        move()
        moved = True

    setattr(table, action, spy)  # Textual looks the action up on the widget at each key
    try:
        return await _press(app, key, None, lambda: moved, "the cursor")
    finally:
        delattr(table, action)


async def _import(the_rig: RemoteRig, size: int) -> None:
    """`size` links, made as a user does: sync on, new Sales Connect tasks, one run."""
    engine = the_rig.build_engine()
    try:
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)  # the tasks are made strictly after enabling (rule 3)
        the_rig.seed_sc_tasks(size)
        summary = await engine.run_once()
        if summary.outcome != "done" or len(engine.store.links()) != size:
            raise RuntimeError(f"the import did not finish: {summary.outcome} {summary.message}")
    finally:
        await the_rig.close_engine(engine)


async def first_paint(size: int) -> dict[str, Any]:
    from tui.app import ReminderSyncApp
    from tui.screens.dashboard import DashboardScreen

    async with remote_rig() as the_rig:
        await _import(the_rig, size)
        the_rig.advance(hours=1)
        engine = the_rig.build_engine()
        await engine.update_settings(poll_interval=3600)
        app = ReminderSyncApp(engine, run_engine=False, clock=the_rig.now)
        started = time.perf_counter()
        async with app.run_test(size=SIZE) as pilot:
            first = await _drawn(
                app,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.rows_shown,
                started,
                "the dashboard's rows",
            )
            shown_default = app.screen.table.row_count
            # The All view holds every link: the whole table at once.
            all_view = await _press(app, "v", "v", lambda: app.screen.view == "All", "All")
            await pilot.pause()
            shown_all = app.screen.table.row_count
            key = await _key_latency(pilot, app)
            moved = await _cursor_latency(app)
        return {
            "first_paint": first,
            "rows_default": shown_default,
            "all_view": all_view,
            "rows_all": shown_all,
            "key_idle": key,
            "cursor_idle": moved if moved is not None else float("nan"),
            "links": len(engine.store.links()),
        }


async def during_sync(size: int, stalls: bool = False) -> dict[str, Any]:
    from bench.stalls import StallSampler
    from tui.app import ReminderSyncApp

    async with remote_rig() as the_rig:
        engine = the_rig.build_engine()
        await engine.update_settings(poll_interval=3600)
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)
        the_rig.seed_sc_tasks(size)
        app = ReminderSyncApp(engine, run_engine=True, clock=the_rig.now)
        heart = Heartbeat()
        keys: list[float] = []
        cursor: list[float] = []
        sampler = StallSampler(threshold=STALL_TARGET) if stalls else None
        async with app.run_test(size=SIZE) as pilot:
            app.set_interval(HEARTBEAT, heart.beat)
            if sampler is not None:
                app.set_interval(HEARTBEAT, sampler.beat)
                sampler.start()
            await _wait(pilot, lambda: app.sync_running, 60, "the first sync to start")
            started = time.perf_counter()
            while app.sync_running:
                keys.append(await _key_latency(pilot, app))
                moved = await _cursor_latency(app)
                if moved is not None:
                    cursor.append(moved)
                await pilot.pause(0.2)
            ended = time.perf_counter()
            await pilot.pause(0.1)
        if sampler is not None:
            sampler.stop()
            print(sampler.report(), flush=True)
        gaps = heart.gaps(started, ended)
        return {
            "sync_seconds": ended - started,
            "links": len(engine.store.links()),
            "max_gap": max(gaps) if gaps else float("nan"),
            "p99_gap": statistics.quantiles(gaps, n=100)[98] if len(gaps) > 100 else max(gaps),
            "stalls_over_50ms": sum(1 for g in gaps if g > STALL_TARGET),
            "beats": len(gaps),
            "keys": keys,
            "cursor": cursor,
        }


async def main(size: int, stalls: bool = False) -> dict[str, Any]:
    header(f"Dashboard with {size:,} links")
    paint = await first_paint(size)
    sync = await during_sync(size, stalls)
    print_table(
        f"Dashboard ({SIZE[0]}x{SIZE[1]}, load average {load_average()})",
        ("measure", "value", "target", "result"),
        [
            (
                f"first paint, {paint['links']:,} links (Command Center: {paint['rows_default']:,}"
                " rows)",
                f"{paint['first_paint']:.3f} s",
                f"< {PAINT_TARGET:.0f} s",
                verdict(paint["first_paint"] < PAINT_TARGET),
            ),
            (
                f"switch to All view ({paint['rows_all']:,} rows)",
                f"{paint['all_view']:.3f} s",
                "-",
                "-",
            ),
            ("key press answered, idle", f"{paint['key_idle'] * 1000:.0f} ms", "-", "-"),
            ("  cursor key (Down), idle", f"{paint['cursor_idle'] * 1000:.0f} ms", "-", "-"),
            (
                f"largest heartbeat gap during a {size:,}-task sync "
                f"({sync['sync_seconds']:.1f} s, {sync['beats']} beats)",
                f"{sync['max_gap'] * 1000:.0f} ms",
                f"<= {STALL_TARGET * 1000:.0f} ms",
                verdict(sync["max_gap"] <= STALL_TARGET),
            ),
            (
                "  99th percentile gap / gaps over 50 ms",
                f"{sync['p99_gap'] * 1000:.0f} ms / {sync['stalls_over_50ms']}",
                "-",
                "-",
            ),
            (
                f"key press answered during the sync (worst of {len(sync['keys'])})",
                f"{max(sync['keys'], default=float('nan')) * 1000:.0f} ms",
                f"<= {KEY_TARGET * 1000:.0f} ms",
                verdict(bool(sync["keys"]) and max(sync["keys"]) <= KEY_TARGET),
            ),
            (
                f"  cursor key (Down) answered during the sync (worst of {len(sync['cursor'])})",
                f"{max(sync['cursor'], default=float('nan')) * 1000:.0f} ms",
                "-",
                "-",
            ),
            ("links after the sync", f"{sync['links']:,}", f"{size:,}", sync["links"] == size),
        ],
    )
    return {"paint": paint, "sync": sync}


if __name__ == "__main__":
    options = parser(__doc__.splitlines()[0], 10_000)
    options.add_argument("--stalls", action="store_true", help="sample the stalled loop's stack")
    args = options.parse_args()
    asyncio.run(main(args.size, args.stalls))
