"""Long engine work hands the event loop back now and then: the dashboard shares the loop, so a
big read must not freeze it until the whole page is converted and recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import sync.sides
from sync.events import Outcome

TASKS = 1200  # one page, several times sync.sides.YIELD_EVERY


async def test_a_big_first_import_lets_other_tasks_run_while_records_are_converted(
    sf, sc, clock, engine: Any, monkeypatch: Any
) -> None:
    emulator = sf.app.state.emulator
    for n in range(TASKS):
        emulator.add_task(Subject=f"Imported task {n}", OwnerId=emulator.config.user_id)
    converted = [0]
    real = sync.sides.sf_to_side_task

    def counting(*args: Any, **kwargs: Any) -> Any:
        converted[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(sync.sides, "sf_to_side_task", counting)
    seen: list[int] = []  # how many records were converted each time the heartbeat ran
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            seen.append(converted[0])
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    await engine.set_enabled(True, start=False)
    summary = await engine.run_once()
    stop.set()
    await beat

    assert summary.outcome is Outcome.DONE, summary.message
    assert len(sc.tasks()) == TASKS
    # The page of 1,200 records arrived at once; the heartbeat still ran part-way through
    # converting it, several times.
    midway = {count for count in seen if 0 < count < TASKS}
    assert len(midway) >= 3, sorted(midway)
