"""Where the event loop stalls: sample the loop thread's stack while its heartbeat is late.

A profiler says where CPU goes; this says which code keeps the loop from answering. A helper
thread looks every few milliseconds: when the loop's heartbeat is older than the threshold, it
records the loop thread's current stack (our own frames only). The report lists the stacks that
held the loop longest, in sampled seconds.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
OURS = ("/sync/", "/tui/", "/emulators/")


class StallSampler:
    def __init__(self, threshold: float = 0.05, every: float = 0.005) -> None:
        self.threshold = threshold
        self.every = every
        self.last = time.perf_counter()
        self.samples: Counter[tuple[str, ...]] = Counter()
        self._thread_id = threading.get_ident()  # made on the loop's thread
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._run, name="stall-sampler", daemon=True)

    def beat(self) -> None:
        """Call from a timer on the loop."""
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if time.perf_counter() - self.last < self.threshold:
                continue
            frame = sys._current_frames().get(self._thread_id)
            if frame is None:
                continue
            frames = traceback.extract_stack(frame)
            stack = [
                f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} {f.name}"
                for f in frames
                if f.filename.startswith(ROOT) and any(part in f.filename for part in OURS)
            ]
            if not stack:  # in a library (Textual, asyncio...): name where
                stack = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-3:]]
            self.samples[tuple(stack[-6:])] += 1

    def report(self, top: int = 12) -> str:
        lines = [f"stalled samples (every {self.every * 1000:.0f} ms while the loop was late):"]
        for stack, count in self.samples.most_common(top):
            lines.append(f"  {count * self.every:.2f} s")
            lines.extend(f"      {frame}" for frame in stack)
        return "\n".join(lines)
