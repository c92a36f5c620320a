"""Keep Python's cyclic garbage collector from pausing the UI.

With 10,000 links the process holds a few hundred thousand long-lived objects (the engine's
state, the dashboard's rows). A full collection walks all of them: 100-200 ms with the loop
stopped, several times during a big run (docs/benchmarks.md, target 5). `gc.freeze()` after
each refresh moves everything alive to a generation the collector skips, so a collection only
walks what is new. Objects are still freed the usual way when their last reference goes; only
a reference cycle among objects that were alive at a freeze waits, until `tidy()` (when the
app has been quiet for a while, at most every TIDY_EVERY seconds) or `release()` (at exit).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

TIDY_EVERY = 600.0  # seconds between full collections, done only when the app is quiet
# The collector's thresholds while the engine runs in the app. The engine's own (10,000 new
# objects before a young collection) spare a headless run full collections of its whole heap;
# here the heap is frozen after each refresh, so a full collection walks only what is new,
# and short young collections matter more: at 10,000 each paused the loop 4-12 ms during an
# import, at 2,000 about a fifth of that, for the same total (docs/benchmarks.md, target 5).
RUN_GC_THRESHOLD = (2_000, 20, 20)
QUIET_FOR = 10.0  # seconds without a refresh that count as quiet


class Heap:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_freeze = clock()
        self._last_tidy = clock()

    def freeze(self) -> None:
        gc.freeze()
        self._last_freeze = self._clock()

    def tidy(self, *, busy: bool) -> bool:
        """A full collection of everything, if the app is quiet and it is time; True if done."""
        now = self._clock()
        if busy or now - self._last_freeze < QUIET_FOR or now - self._last_tidy < TIDY_EVERY:
            return False
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._last_tidy = now
        return True

    def release(self) -> None:
        """Give everything back to the collector (the app is closing)."""
        gc.unfreeze()
