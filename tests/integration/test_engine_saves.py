"""One state save per run, and the journal's two-save rule kept across processes.

A journal entry may leave only once the state file and its `.bak` both hold its outcome. The
first save is marked in the journal, so the second can be the next run's, in a new engine (a
`reminder-sync sync` per run): each run saves once, and the journal still never drops an entry
whose outcome a restored `.bak` would lack.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sync import paths
from sync.engine import build_engine
from sync.events import Outcome
from sync.journal import Journal
from sync.storage import backup_path
from tests.conftest import enable_sync


async def run_with_saves_watched(
    home: Path, secrets: Any, clock: Any, *, max_waiting: int | None = None
) -> tuple[Any, list[int]]:
    """One run by a fresh engine (a new process); returns its summary and, for each state save
    that wrote, how many links the store held then. `max_waiting`: creates before a checkpoint."""
    engine = build_engine(home, secrets, clock=clock.now)
    if max_waiting is not None:
        engine._saver.max_waiting = max_waiting
    linked_at_save: list[int] = []
    original = engine.store.save

    def counted() -> bool:
        links = len(engine.store.links())
        wrote = original()
        if wrote:
            linked_at_save.append(links)
        return wrote

    engine.store.save = counted
    try:
        summary = await engine.run_once()
    finally:
        await engine.aclose()
    return summary, linked_at_save


async def run_in_a_new_engine(home: Path, secrets: Any, clock: Any) -> tuple[Any, int]:
    """One run by a fresh engine; returns its summary and how many state saves wrote."""
    summary, saves = await run_with_saves_watched(home, secrets, clock)
    assert summary.outcome is Outcome.DONE, summary.message
    return summary, len(saves)


def journal_entries(home: Path) -> dict[str, bool]:
    """Key -> marked saved, for every entry the journal file holds."""
    with Journal.open(paths.journal_file(home)) as journal:
        return {intent.key: intent.saved for intent in journal.pending()}


async def test_a_run_that_writes_saves_once_and_the_next_run_trims_its_journal(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    await enable_sync(connected_home, secrets, clock)
    for n in range(3):
        sf.create_task(Subject=f"Call {n}")
    sc.create_task(name="Send the quote")

    first, saves = await run_in_a_new_engine(connected_home, secrets, clock)
    assert first.writes == 4 and saves == 1
    after_first = journal_entries(connected_home)
    assert len(after_first) == 4 and all(after_first.values())  # saved once, not yet in .bak

    clock.shift(minutes=1)
    sf_id = next(t["Id"] for t in sf.tasks() if t["Subject"] == "Call 0")
    sf.update_task(sf_id, Subject="Call 0 back")
    second, saves = await run_in_a_new_engine(connected_home, secrets, clock)
    assert second.writes == 1 and saves == 1
    after_second = journal_entries(connected_home)
    assert set(after_second) & set(after_first) == set()  # the first run's entries are gone
    assert len(after_second) == 1 and all(after_second.values())  # the update, saved once


async def test_restoring_the_bak_after_a_run_loses_no_link_and_makes_no_duplicate(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    """The run's one save leaves the new links out of the `.bak`: the journal still holds
    them, so a user who restores the `.bak` gets them back instead of a second copy."""
    await enable_sync(connected_home, secrets, clock)
    for n in range(3):
        sf.create_task(Subject=f"Visit {n}")
    await run_in_a_new_engine(connected_home, secrets, clock)
    assert len(sc.tasks()) == 3

    state = paths.state_file(connected_home)
    shutil.copyfile(backup_path(state), state)  # the user restores the backup copy
    clock.shift(minutes=1)
    summary, _ = await run_in_a_new_engine(connected_home, secrets, clock)

    assert summary.writes == 0, summary.planned
    assert sorted(t["name"] for t in sc.tasks()) == ["Visit 0", "Visit 1", "Visit 2"]
    engine = build_engine(connected_home, secrets, clock=clock.now, read_only=True)
    try:
        assert len(engine.store.links()) == 3
    finally:
        await engine.aclose()


async def test_a_save_leaves_the_loop_free_and_a_dashboard_edit_waits_for_it(
    sc: Any, clock: Any, make_engine: Any
) -> None:
    """A run's save goes to a worker thread: the event loop (the dashboard's) keeps running,
    and an edit made meanwhile touches the store only once the save is done."""
    from sync.model import Side

    engine = make_engine()
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    sc_id = sc.create_task(name="Call Ann")
    order: list[str] = []
    saving = threading.Event()
    original = engine.store.save

    def slow_save() -> bool:
        if threading.current_thread() is threading.main_thread():
            order.append("save on the loop")
            return original()
        order.append("save starts")
        saving.set()
        time.sleep(0.3)
        wrote = original()
        order.append("save ends")
        return wrote

    engine.store.save = slow_save
    run = asyncio.create_task(engine.run_once())
    while not saving.is_set():
        await asyncio.sleep(0.005)
    edit = asyncio.create_task(engine.edit_task(Side.SALESCONNECT, sc_id, {"details": "later"}))
    ticks, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.2:
        ticks += 1
        await asyncio.sleep(0.01)
    await edit
    order.append("edit done")
    summary = await run

    assert summary.outcome is Outcome.DONE, summary.message
    assert ticks >= 10  # the loop ran all through the save
    assert order.index("save ends") < order.index("save on the loop") < order.index("edit done")
    assert sc.get_task(sc_id)["details"] == "later"


async def test_a_create_the_state_already_settled_is_not_linked_again_from_the_journal(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    """A journal entry that a crash left behind, for a create whose link a later run removed
    (both tasks were deleted): its mark names a state file version no newer than the one on
    disk, so the state is the authority and recovery must not bring the link back."""
    from sync.journal import IntentSpec

    await enable_sync(connected_home, secrets, clock)
    sf_id = sf.create_task(Subject="Visit 9")
    await run_in_a_new_engine(connected_home, secrets, clock)
    with Journal.open(paths.journal_file(connected_home)) as journal:
        [left] = journal.pending()  # the create, marked by the run's save
    assert left.remote_id and left.saved

    sf.delete_task(sf_id)
    sc.delete_task(left.remote_id)
    clock.shift(minutes=1)
    await run_in_a_new_engine(connected_home, secrets, clock)  # both gone: the link goes
    with Journal.open(paths.journal_file(connected_home)) as journal:
        assert journal.pending() == []
        # As a crash between the save and the trim would have left it:
        journal.record_intents([IntentSpec(left.kind, left.side, left.payload, key=left.key)])
        journal.confirm_many([(left.key, left.remote_id)])
        journal.mark_saved([left.key], left.saved)

    clock.shift(minutes=1)
    summary, _ = await run_in_a_new_engine(connected_home, secrets, clock)
    assert summary.writes == 0, summary.planned
    engine = build_engine(connected_home, secrets, clock=clock.now, read_only=True)
    try:
        assert engine.store.links() == {}
    finally:
        await engine.aclose()


async def test_a_long_import_checkpoints_between_batches_never_after_the_last(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any, monkeypatch: Any
) -> None:
    """The run's own save follows the last batch: a checkpoint there would write the same
    state twice. Each checkpoint before a batch still saves what the batches before it did."""
    import sync.writer

    monkeypatch.setattr(sync.writer, "BATCH_SIZE", 2)
    await enable_sync(connected_home, secrets, clock)
    for n in range(5):  # three batches of creates
        sc.create_task(name=f"Quote {n}")
    # max_waiting=1: a checkpoint is due after every batch
    summary, linked_at_save = await run_with_saves_watched(
        connected_home, secrets, clock, max_waiting=1
    )
    assert summary.outcome is Outcome.DONE and summary.writes == 5
    # before the second and the third batch, then the run's one save; none after the last
    assert linked_at_save == [2, 4, 5]
    assert len(sf.tasks()) == 5


async def test_batches_of_creates_are_sent_ahead_of_the_one_being_recorded(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any, monkeypatch: Any
) -> None:
    """Creates run CREATES_AHEAD batches ahead: on a slow link their round trips overlap, and
    the service works while the engine records. Every batch is still recorded, in order."""
    import httpx

    import sync.writer

    monkeypatch.setattr(sync.writer, "BATCH_SIZE", 2)
    ahead = sync.writer.CREATES_AHEAD
    batches = ahead + 3
    await enable_sync(connected_home, secrets, clock)
    for n in range(2 * batches):
        sc.create_task(name=f"Quote {n}")
    # Each answer takes 0.2 s (as over a WAN): no batch is back before the next one is sent.
    sf.faults(kinds=["hang"], hang_seconds=0.2, path_contains="/composite/sobjects")
    linked_when_sent: list[int] = []
    on_the_wire = [0, 0]  # now, most at once

    class Watching(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method != "POST" or not request.url.path.endswith("/composite/sobjects"):
                return await super().handle_async_request(request)
            linked_when_sent.append(len(engine.store.links()))
            on_the_wire[0] += 1
            on_the_wire[1] = max(on_the_wire)
            try:
                return await super().handle_async_request(request)
            finally:
                on_the_wire[0] -= 1

    engine = build_engine(
        connected_home, secrets, clock=clock.now, transports={"salesforce": Watching()}
    )
    try:
        summary = await engine.run_once()
    finally:
        await engine.aclose()
    assert summary.outcome is Outcome.DONE and summary.writes == 2 * batches
    # The first batch is recorded only once `ahead` more are on their way; then one for one.
    assert linked_when_sent == [0] * (ahead + 1) + [2, 4]
    assert on_the_wire[1] == ahead + 1
    assert sorted(t["Subject"] for t in sf.tasks()) == sorted(
        f"Quote {n}" for n in range(2 * batches)
    )


async def test_a_lost_answer_among_batches_in_flight_loses_and_doubles_nothing(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any, monkeypatch: Any
) -> None:
    """Four batches on their way at once; Salesforce creates the second one's tasks, then the
    connection drops before its answer. The batches after it are still recorded, and the next
    run settles the second from the journal: every task linked once, none created twice."""
    import sync.writer

    monkeypatch.setattr(sync.writer, "BATCH_SIZE", 2)
    monkeypatch.setattr(sync.writer, "CREATES_AHEAD", 3)  # all four sent before one is recorded
    await enable_sync(connected_home, secrets, clock)
    names = [f"Quote {n}" for n in range(8)]
    for name in names:
        sc.create_task(name=name)
    sf.faults(kinds=["reset_after"], skip=1, count=1, path_contains="/composite/sobjects")
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        first = await engine.run_once()
        linked_first = len(engine.store.links())
    finally:
        await engine.aclose()
    assert first.errors == 2  # the batch whose answer was lost, parked for the next run
    assert linked_first == 6
    assert sorted(t["Subject"] for t in sf.tasks()) == names  # it did reach Salesforce

    sf.faults()
    clock.shift(minutes=10)
    await run_in_a_new_engine(connected_home, secrets, clock)
    assert sorted(t["Subject"] for t in sf.tasks()) == names
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        links = engine.store.links().values()
        assert len({link.sf_id for link in links}) == len({link.sc_id for link in links}) == 8
    finally:
        await engine.aclose()
    assert journal_entries(connected_home) == {} or all(journal_entries(connected_home).values())


async def test_a_limit_hit_while_the_next_batch_is_on_its_way_loses_and_doubles_nothing(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any, monkeypatch: Any
) -> None:
    """The daily limit runs out at the first batch of creates, with the second already sent:
    the run stops (no third batch), and once the limit is back every task is created once."""
    import sync.writer

    monkeypatch.setattr(sync.writer, "BATCH_SIZE", 2)
    await enable_sync(connected_home, secrets, clock)
    for n in range(5):
        sc.create_task(name=f"Quote {n}")
    sf.faults(kinds=["limit"], path_contains="/composite/sobjects", count=1)
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        stopped = await engine.run_once()
    finally:
        await engine.aclose()
    assert stopped.outcome is Outcome.LIMIT
    assert sf.app.state.emulator.tasks() == []  # (the API itself refuses: limit)

    sf.faults()
    clock.shift(hours=25)  # the emulator's daily allowance is back
    summary, _ = await run_in_a_new_engine(connected_home, secrets, clock)
    assert summary.writes == 5
    assert sorted(t["Subject"] for t in sf.tasks()) == [f"Quote {n}" for n in range(5)]


async def test_a_run_collects_garbage_less_often_and_puts_the_thresholds_back(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    import gc

    from sync.engine import RUN_GC_THRESHOLD
    from sync.events import SyncProgress

    await enable_sync(connected_home, secrets, clock)
    sc.create_task(name="Send the quote")
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    engine = build_engine(connected_home, secrets, clock=clock.now)
    seen: list[tuple[int, ...]] = []
    engine.subscribe(
        lambda event: seen.append(gc.get_threshold()) if isinstance(event, SyncProgress) else None
    )
    try:
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE and summary.writes == 1
        assert seen and set(seen) == {RUN_GC_THRESHOLD}
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
        await engine.aclose()


async def test_reading_back_its_own_creates_rewrites_no_link(
    sf: Any, sc: Any, clock: Any, connected_home: Path, secrets: Any
) -> None:
    """Salesforce writes name no version, so an SF read leaves the links as they are; a Sales
    Connect read still moves a link's SC version on (the If-Match of the next write)."""
    await enable_sync(connected_home, secrets, clock)
    sc_id = sc.create_task(name="Send the quote")
    engine = build_engine(connected_home, secrets, clock=clock.now)
    try:
        await engine.run_once()
        link = engine.store.link_by_sc(sc_id)
        assert link is not None
        clock.shift(seconds=30)
        settle = await engine.run_once()  # reads the created SF task back
        assert settle.writes == 0
        assert engine.store.link_by_sc(sc_id) is link  # not rewritten
        sc.update_task(sc_id, details="call first")
        clock.shift(minutes=1)
        await engine.run_once()
        moved = engine.store.link_by_sc(sc_id)
        assert moved is not None and int(moved.sc_version) > int(link.sc_version)
    finally:
        await engine.aclose()
