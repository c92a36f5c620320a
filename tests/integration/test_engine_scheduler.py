"""The run scheduler: never two runs at once, requests collapse into one more run, backoff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sync.events import Outcome, RunSummary
from sync.scheduler import MAX_BACKOFF_SECONDS, RunScheduler, backoff_delay


def _summary(outcome: Outcome = Outcome.DONE, retry_at: datetime | None = None) -> RunSummary:
    now = datetime.now(UTC)
    return RunSummary("r", "test", outcome, now, now, retry_at=retry_at)


class Recorder:
    """A run that takes as long as the test lets it, and records overlap."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()
        self.outcome = Outcome.DONE

    async def __call__(self, reason: str) -> RunSummary:
        self.started.append(reason)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        return _summary(self.outcome)


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def test_requests_during_a_run_queue_exactly_one_more_run() -> None:
    run = Recorder()
    scheduler = RunScheduler(run, interval=lambda: 3600, enabled=lambda: True)
    scheduler.request()
    await _until(lambda: run.active == 1)
    for _ in range(5):  # the user presses "sync now" five times during the run
        scheduler.request()
    run.release.set()
    await scheduler.wait_idle()
    assert run.started == ["requested", "requested"]
    assert run.max_active == 1


async def test_run_forever_starts_at_once_then_serves_a_request_without_overlap() -> None:
    run = Recorder()
    scheduler = RunScheduler(run, interval=lambda: 3600, enabled=lambda: True)
    task = asyncio.create_task(scheduler.run_forever())
    try:
        await _until(lambda: run.active == 1)
        scheduler.request()
        scheduler.request()
        run.release.set()
        await _until(lambda: len(run.started) == 2 and run.active == 0)
        await asyncio.sleep(0.01)
        assert len(run.started) == 2  # two requests during the run gave one more run
        assert run.max_active == 1
        assert scheduler.next_run_at is not None  # waiting for the next poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_stopping_the_loop_lets_a_writing_run_finish() -> None:
    run = Recorder()
    scheduler = RunScheduler(run, interval=lambda: 3600, enabled=lambda: True)
    task = asyncio.create_task(scheduler.run_forever())
    await _until(lambda: run.active == 1)
    task.cancel()
    await asyncio.sleep(0.01)
    assert run.active == 1  # not cancelled in the middle
    run.release.set()
    await asyncio.gather(task, return_exceptions=True)
    assert run.active == 0


async def test_disabled_sync_does_not_run_on_schedule() -> None:
    run = Recorder()
    run.release.set()
    scheduler = RunScheduler(run, interval=lambda: 3600, enabled=lambda: False)
    task = asyncio.create_task(scheduler.run_forever())
    scheduler.request()
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert run.started == []


async def test_a_daily_limit_is_waited_out_instead_of_retried() -> None:
    run = Recorder()
    run.release.set()
    retry_at = datetime.now(UTC) + timedelta(hours=2)

    async def limited(reason: str) -> RunSummary:
        await run(reason)
        return _summary(Outcome.LIMIT, retry_at)

    scheduler = RunScheduler(limited, interval=lambda: 10, enabled=lambda: True)
    scheduler.request()
    await scheduler.wait_idle()
    assert scheduler.retry_at == retry_at
    # The next scheduled run waits for the limit to free up, not the 10 s interval.
    assert scheduler._delay() >= 7000


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff_delay(60, 0) == 60
    assert 60 * 2 * 0.9 <= backoff_delay(60, 1) <= 60 * 2 * 1.1
    assert 60 * 4 * 0.9 <= backoff_delay(60, 2) <= 60 * 4 * 1.1
    assert backoff_delay(60, 50) <= MAX_BACKOFF_SECONDS * 1.1
