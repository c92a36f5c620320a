"""The Sales Connect emulator's task listing: pages found by bisection in a listing sorted once
per change give what a scan of every task per page gives, across changes between pages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from emulators.sc_state import SalesConnectEmulator, decode_cursor


def scanned(emulator: SalesConnectEmulator, limit, cursor, updated_since, include_deleted):
    """The page as the emulator computed it before: a scan of every task."""
    after = decode_cursor(cursor)[0] if cursor else None
    rows = sorted(
        (
            t
            for t in emulator._state.tasks.values()
            if (include_deleted or t["deleted_at"] is None)
            and (updated_since is None or t["updated_at"] >= updated_since)
            and (after is None or (t["updated_at"], t["id"]) > after)
        ),
        key=lambda t: (t["updated_at"], t["id"]),
    )
    return [t["id"] for t in rows[:limit]], len(rows) > limit


def test_pages_match_a_full_scan_while_tasks_change_between_pages() -> None:
    rng = random.Random(7)
    emulator = SalesConnectEmulator()
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    emulator.freeze_clock(start)
    ids = []
    for n in range(120):  # many share a time: the id breaks the tie
        at = start - timedelta(minutes=rng.randrange(5))
        ids.append(emulator.add_task(name=f"t{n}", created_at=at)["id"])
    since_values = [None, start - timedelta(minutes=2)]
    for include_deleted in (False, True):
        for since in since_values:
            cursor, seen = None, 0
            while True:
                want = scanned(emulator, 7, cursor, since, include_deleted)
                page = emulator.list_page(
                    limit=7, cursor=cursor, updated_since=since, include_deleted=include_deleted
                )
                assert ([t["id"] for t in page["tasks"]], bool(page["next_cursor"])) == want
                seen += 1
                if not page["next_cursor"]:
                    break
                cursor = page["next_cursor"]
                # a change between pages: an edit, a delete or a new task
                emulator.freeze_clock(start + timedelta(seconds=seen))
                pick = rng.choice(ids)
                action = rng.randrange(3)
                if action == 0 and emulator._state.tasks[pick]["deleted_at"] is None:
                    emulator.update(pick, None, {"name": f"edited {seen}"})
                elif action == 1 and emulator._state.tasks[pick]["deleted_at"] is None:
                    emulator.delete(pick, None)
                else:
                    ids.append(emulator.add_task(name=f"new {seen}")["id"])
            assert seen > 3
