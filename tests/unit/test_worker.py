"""A write on a worker thread is never cut short by a cancel."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sync.worker import finish_in_thread


async def test_a_cancel_waits_for_the_thread_to_finish_its_write() -> None:
    started, finished = threading.Event(), threading.Event()

    def slow_write() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    task = asyncio.ensure_future(finish_in_thread(slow_write))
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
    started, finished = threading.Event(), threading.Event()

    def slow_write() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    task = asyncio.ensure_future(finish_in_thread(slow_write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
