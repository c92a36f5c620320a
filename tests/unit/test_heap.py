"""The UI's heap policy: frozen objects are out of the collector's way; a quiet app tidies
them now and then, and gives them all back at exit."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

import tui.heap
from tui.heap import Heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_a_cycle_alive_at_a_freeze_waits_for_a_quiet_tidy() -> None:
    now = [1000.0]
    # The heap's own clock: patching `time.monotonic` would stop every event loop running on
    # other threads meanwhile (the emulators' servers of other tests slept for a day).
    heap = Heap(clock=lambda: now[0])
    node = Node()
    gone = weakref.ref(node)
    heap.freeze()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert gone() is not None  # frozen: the collector did not walk it

    now[0] += tui.heap.TIDY_EVERY + 1
    assert not heap.tidy(busy=True)  # never during a run
    heap.freeze()
    assert not heap.tidy(busy=False)  # nor right after a refresh
    now[0] += tui.heap.QUIET_FOR + 1
    assert heap.tidy(busy=False)
    assert gone() is None
    assert not heap.tidy(busy=False)  # and not again before TIDY_EVERY


def test_release_gives_everything_back() -> None:
    heap = Heap()
    node = Node()
    gone = weakref.ref(node)
    heap.freeze()
    del node
    heap.release()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None
