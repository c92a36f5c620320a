"""Blocking writes on a worker thread, which a cancel cannot cut short.

`asyncio.to_thread` returns at a cancel while its thread runs on. For a write to the state file
or the journal that would let whoever comes next (closing the file as the app quits, the next
run) meet the write half done. `finish_in_thread` waits for the thread to end, then raises the
cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def finish_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread, awaited to its end even if this task is cancelled
    meanwhile (the cancel is raised once the thread is done; what `fn` raised is then lost,
    and the next run meets it again)."""
    done = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    cancelled = False
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            cancelled = cancelled or not done.done()  # this task was cancelled: wait on
        except BaseException:
            break  # `fn` raised: `result()` below raises it again
    if cancelled:
        if not done.cancelled():
            done.exception()  # retrieved, so asyncio does not warn that nobody looked
        raise asyncio.CancelledError
    return done.result()
