"""A write on a worker thread is never cut short by a cancel."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from sync.worker import finish_in_thread


def slow_write() -> tuple[Callable[[], None], threading.Event, threading.Event]:
    """A write of 0.3 s, and events set when it starts and when it is done."""
    started, finished = threading.Event(), threading.Event()

    def write() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    return write, started, finished


async def test_a_cancel_waits_for_the_thread_to_finish_its_write() -> None:
    write, started, finished = slow_write()
    task = asyncio.ensure_future(finish_in_thread(write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # plain `asyncio.to_thread` would have returned at the cancel, the write still going on
    assert finished.is_set()


async def test_the_result_and_the_error_of_the_work_come_back() -> None:
    assert await finish_in_thread(sum, [1, 2, 3]) == 6

    def broken() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await finish_in_thread(broken)


async def test_a_second_cancel_while_waiting_still_waits() -> None:
    write, started, finished = slow_write()
    task = asyncio.ensure_future(finish_in_thread(write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
