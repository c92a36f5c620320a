"""The org's daily API request allowance: a rolling 24-hour count, as Salesforce keeps it."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)


class ApiCounter:
    def __init__(self, limit: int):
        self.limit = limit
        self._calls: deque[datetime] = deque()

    def _expire(self, now: datetime) -> None:
        while self._calls and self._calls[0] <= now - WINDOW:
            self._calls.popleft()

    def used(self, now: datetime) -> int:
        self._expire(now)
        return len(self._calls)

    def remaining(self, now: datetime) -> int:
        return max(0, self.limit - self.used(now))

    def exhausted(self, now: datetime) -> bool:
        return self.used(now) >= self.limit

    def record(self, now: datetime) -> None:
        self._calls.append(now)

    def exhaust(self, now: datetime) -> None:
        """Use up what is left of today's allowance (a fault, or another app's traffic)."""
        for _ in range(self.remaining(now)):
            self._calls.append(now)

    def set_used(self, used: int, now: datetime) -> None:
        self._calls.clear()
        self._calls.extend([now] * max(0, min(used, self.limit)))

    def next_free(self, now: datetime) -> datetime | None:
        """When the oldest counted call leaves the window (None when not exhausted)."""
        if not self.exhausted(now):
            return None
        return self._calls[0] + WINDOW

    def reset(self) -> None:
        self._calls.clear()
