"""When runs happen: a poll interval, backoff after failures, and "sync now" requests.

Rules: never two runs at once; a request during a run queues exactly one more run (many requests
collapse into one); a request never cancels a run, and stopping the loop lets a run that is
writing finish, because its state save is what keeps the next run from repeating its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sync.events import Outcome, RunSummary

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30 * 60.0


def backoff_delay(interval: float, failures: int, *, jitter: float = 0.1) -> float:
    """Seconds to wait after `failures` failed runs in a row: doubling, capped, jittered."""
    if failures <= 0:
        return interval
    delay = min(interval * (2 ** min(failures, 16)), MAX_BACKOFF_SECONDS)
    delay = max(delay, interval)
    return delay * random.uniform(1 - jitter, 1 + jitter)


class RunScheduler:
    """Drives `run(reason)` forever, or on request.

    `run` must not raise for expected failures (it reports them in the summary); anything it does
    raise is logged and treated as a failed run, so the loop keeps going.
    """

    def __init__(
        self,
        run: Callable[[str], Awaitable[RunSummary]],
        *,
        interval: Callable[[], float],
        enabled: Callable[[], bool],
        on_schedule: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self._interval = interval
        self._enabled = enabled
        self._on_schedule = on_schedule or (lambda: None)
        self._wake = asyncio.Event()
        self._requested = False
        self._forever_active = False
        self._drain_task: asyncio.Task[None] | None = None
        self.failures = 0
        self.next_run_at: datetime | None = None
        self.retry_at: datetime | None = None

    # -- requests ------------------------------------------------------------------------------

    def request(self) -> None:
        """Ask for a run as soon as possible; at most one more run is ever queued."""
        self._requested = True
        self._wake.set()
        if self._forever_active:
            return
        # No background loop (e.g. a one-shot caller): serve the request on our own task.
        if self._drain_task is None or self._drain_task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # nobody can run it now; the next run_forever/run_once picks it up
            self._drain_task = loop.create_task(self._drain())

    @property
    def pending(self) -> bool:
        return self._requested

    async def _drain(self) -> None:
        while self._requested and not self._forever_active:
            self._requested = False
            self._wake.clear()
            await self._guarded("requested")

    # -- the loop --------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Run on the poll interval (and on request) until cancelled."""
        self._forever_active = True
        try:
            first = True
            while True:
                if first and self._enabled():
                    self._requested = True  # start at once, then keep the rhythm
                first = False
                if not self._requested:
                    delay = self._delay()
                    self.next_run_at = datetime.now(UTC) + timedelta(seconds=delay)
                    self._on_schedule()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                self._wake.clear()
                reason = "requested" if self._requested else "scheduled"
                self._requested = False
                if not self._enabled():
                    self.next_run_at = None
                    continue
                if reason == "scheduled" and self.retry_at and datetime.now(UTC) < self.retry_at:
                    continue  # a limit is still in force: do not spin against it
                self.next_run_at = None
                await self._guarded(reason)
        finally:
            self._forever_active = False
            self.next_run_at = None

    async def _guarded(self, reason: str) -> None:
        task = asyncio.ensure_future(self._run(reason))
        try:
            summary = await asyncio.shield(task)
        except asyncio.CancelledError:
            # Stopping: let the run finish its writes and state save, then stop.
            with contextlib.suppress(Exception):
                await task
            raise
        except Exception:
            log.exception("sync run crashed")
            self.failures += 1
            return
        self._account(summary)

    def _account(self, summary: RunSummary) -> None:
        if summary.outcome is Outcome.FAILED:
            self.failures += 1
        else:
            self.failures = 0
        self.retry_at = summary.retry_at if summary.outcome is Outcome.LIMIT else None

    def _delay(self) -> float:
        interval = max(float(self._interval()), 1.0)
        delay = backoff_delay(interval, self.failures)
        if self.retry_at is not None:
            until = (self.retry_at - datetime.now(UTC)).total_seconds()
            delay = max(delay, until)
        return max(delay, 0.0)

    async def wait_idle(self) -> None:
        """Wait until a requested run (served without the background loop) has finished."""
        while self._drain_task is not None and not self._drain_task.done():
            await asyncio.shield(self._drain_task)
