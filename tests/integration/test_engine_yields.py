"""Long engine work hands the event loop back now and then: the dashboard shares the loop, so a
big read must not freeze it until the whole page is converted and recorded."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import sync.sides
from sync.events import Outcome
from sync.journal_adapter import IntentJournal

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


async def test_the_journal_fsync_before_a_batch_is_sent_does_not_hold_the_loop(
    sf, sc, clock, engine: Any, monkeypatch: Any
) -> None:
    # The intents are on disk before the batch is sent; a slow disk must not freeze the
    # dashboard meanwhile.
    await engine.set_enabled(True, start=False)
    for n in range(3):
        sc.create_task(name=f"New in Sales Connect {n}")
    syncing = threading.Event()

    def on_a_slow_disk(write: Any) -> Any:
        def slow(self: IntentJournal, *args: Any) -> Any:
            syncing.set()
            try:
                time.sleep(0.3)  # the fsync of a busy disk
                return write(self, *args)
            finally:
                syncing.clear()

        return slow

    # the batch's intents before it is sent, then its confirmed ids
    monkeypatch.setattr(IntentJournal, "begin", on_a_slow_disk(IntentJournal.begin))
    monkeypatch.setattr(IntentJournal, "confirm", on_a_slow_disk(IntentJournal.confirm))
    beats_while_syncing = [0]
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            if syncing.is_set():
                beats_while_syncing[0] += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    summary = await engine.run_once()
    stop.set()
    await beat

    assert summary.outcome is Outcome.DONE, summary.message
    assert sorted(t["Subject"] for t in sf.tasks()) == [
        f"New in Sales Connect {n}" for n in range(3)
    ]
    # two slow journal writes (the intents, then the confirmed ids): 0.6 s of loop time
    assert beats_while_syncing[0] >= 20, beats_while_syncing
