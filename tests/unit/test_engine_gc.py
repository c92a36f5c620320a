"""A run collects cyclic garbage less often, and puts the collector's thresholds back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sync import engine
from sync.engine import RUN_GC_THRESHOLD, _collecting_less


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_thresholds_are_raised_for_a_run_and_put_back() -> None:
    gc.set_threshold(700, 10, 10)
    with _collecting_less():
        assert gc.get_threshold() == RUN_GC_THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_runs_restore_once_the_last_one_ends() -> None:
    gc.set_threshold(700, 10, 10)
    first = _collecting_less()
    first.__enter__()
    with _collecting_less():
        assert gc.get_threshold() == RUN_GC_THRESHOLD
    assert gc.get_threshold() == RUN_GC_THRESHOLD  # the first run still goes on
    first.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)
    assert engine._gc_runs == 0


def test_higher_thresholds_and_a_switched_off_collector_are_left_alone() -> None:
    gc.set_threshold(50_000, 5, 100)
    with _collecting_less():
        assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_threshold() == (50_000, 5, 100)
    gc.set_threshold(0, 10, 10)
    with _collecting_less():
        assert gc.get_threshold() == (0, 10, 10)
    assert gc.get_threshold() == (0, 10, 10)


def test_a_failing_run_puts_them_back_too() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), _collecting_less():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == (700, 10, 10)


def _resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(engine._MALLOC_TRIM is None, reason="glibc's malloc_trim: Linux only")
def test_the_end_of_a_run_gives_free_heap_memory_back() -> None:
    """What a run allocated and freed stops counting as resident once it ends (glibc keeps
    freed heap pages otherwise, and the next run's memory stacks on them)."""
    with _collecting_less():
        blocks = [bytes(1000) + bytes([n % 256]) for n in range(60_000)]  # ~60 MB of heap
        pin = bytes(1000) + b"!"  # allocated after them: the freed ones cannot shrink the heap
        del blocks
        kept = _resident_mb()
    given_back = kept - _resident_mb()
    assert pin and given_back > 30, f"only {given_back:.0f} MB given back"
