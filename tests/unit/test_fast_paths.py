"""The shortcuts taken for the common case give exactly what the full path gives."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from sync import mapping
from sync.mapping import normalize_text, project_to_sf, sanitize_text, sf_units
from sync.model import Task
from sync.store import _dt_out

SAMPLES = [
    "Call Ada",
    "  padded both ends  ",
    "trailing tab\t",
    "two\nlines  \n",
    "crlf\r\nline",
    "esc \x1b[31mred\x1b[0m",
    "bidi \u202eevil",
    "caf\u0065\u0301",  # decomposed accent
    "emoji 👍🏽 and ascii",
    "",
    " ",
    "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
]


def full_normalize(value: str) -> str:
    """normalize_text as it was written before the ASCII shortcut."""
    text = unicodedata.normalize("NFC", sanitize_text(value))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


@pytest.mark.parametrize("text", SAMPLES)
def test_normalising_gives_what_the_full_path_gives(text: str) -> None:
    assert normalize_text(text) == full_normalize(text)


def test_sf_units_counts_utf16_units() -> None:
    for text in SAMPLES:
        assert sf_units(text) == len(text.encode("utf-16-le", "surrogatepass")) // 2
    assert sf_units("👍") == 2 and sf_units("abc") == 3


def test_a_task_that_fits_salesforce_is_its_own_projection() -> None:
    task = Task("Call Ada", details="short")
    assert project_to_sf(task) is task
    long = Task("x" * 300, details="d")
    cut = project_to_sf(long)
    assert cut.name == "x" * 254 + mapping.ELLIPSIS and cut.details == "d"


def test_task_replace_changes_only_what_is_named() -> None:
    task = Task("a", "open", "high", date(2026, 1, 2), "d")
    assert task.replace() is task
    assert task.replace(details="e", status="complete") == Task(
        "a", "complete", "high", date(2026, 1, 2), "e"
    )
    with pytest.raises(TypeError):
        task.replace(nme="typo")


def test_a_time_written_twice_is_the_same_text() -> None:
    at = datetime(2026, 11, 30, 12, 0, 0, 5, tzinfo=UTC)
    other = at + timedelta(seconds=1)
    naive = datetime(2026, 11, 30, 12, 0)
    paris = datetime(2026, 11, 30, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert _dt_out(at) == _dt_out(at) == at.isoformat()
    assert _dt_out(other) == other.isoformat()
    assert _dt_out(at) == at.isoformat()  # the memo follows the value, not the last call
    assert _dt_out(naive) == "2026-11-30T12:00:00+00:00"
    assert _dt_out(paris) == paris.isoformat()
    paris_noon = at.astimezone(paris.tzinfo)  # equal to `at`, written in its own zone
    assert _dt_out(at) == at.isoformat() and _dt_out(paris_noon) == paris_noon.isoformat()
    assert _dt_out(None) is None


def test_days_are_read_alike_every_time_and_bad_ones_always_refused() -> None:
    from sync.mapping import parse_date

    assert parse_date("2026-12-01") == parse_date("2026-12-01") == date(2026, 12, 1)
    assert parse_date(None) is None and parse_date("") is None
    for bad in ("2026-02-30", "2026-2-3", "tomorrow", "2026-12-01T00:00"):
        for _ in range(2):  # a failure is not remembered as a value
            with pytest.raises(ValueError):
                parse_date(bad)
    with pytest.raises(ValueError):
        parse_date(20261201)


def test_quick_init_builds_what_the_generated_init_builds() -> None:
    """Defaults, factories, positional and keyword arguments, `__post_init__`: the same
    values as the dataclass's own `__init__`, and the instance stays frozen and hashable."""
    import dataclasses
    from types import MappingProxyType

    from sync.model import Link, Side, SideTask, quick_init
    from sync.sides import WriteResult

    task = Task("Call Ada", due_date=date(2026, 12, 1))
    assert dataclasses.astuple(task) == ("Call Ada", "open", "normal", date(2026, 12, 1), "")
    seen = SideTask(Side.SALESFORCE, "00T1", task, version="v2")
    assert (seen.raw, seen.problems, seen.in_scope, seen.created_at) == ({}, {}, True, None)
    link = Link("sc-1", "00T1", task, notes={"name": "truncated"})
    assert type(link.notes) is MappingProxyType  # __post_init__ ran
    assert WriteResult(True, "00T1").notes == {}  # a class without slots
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Task()  # type: ignore[call-arg]  # a required field is still required
    assert hash(task) == hash(Task("Call Ada", "open", "normal", date(2026, 12, 1)))

    @quick_init
    @dataclasses.dataclass(frozen=True)
    class Sample:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: str = "c"

    first, second = Sample(1), Sample(2, c="x")
    assert (first.a, first.b, first.c, second.c) == (1, [], "c", "x")
    assert first.b is not Sample(1).b  # a fresh default from the factory each time


def test_a_timestamp_parsed_again_is_the_same_time_and_others_are_not_confused() -> None:
    """The last parse is kept (a batch's records share their times): what comes back is
    always the parse of the text given, whatever came before."""
    from sync.mapping import parse_timestamp

    stamp = "2026-11-30T10:00:00.000+0000"
    first = parse_timestamp(stamp)
    assert first == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert parse_timestamp(stamp) == first
    assert parse_timestamp(None) is None  # after a kept parse, a missing value is still None
    assert parse_timestamp("not a time") is None
    assert parse_timestamp("2026-11-30T10:00:00") == first  # no offset: UTC
    assert parse_timestamp("2026-11-30T11:00:00+01:00") == first
    assert parse_timestamp("2026-11-30T11:00:00.000+0000") == first + timedelta(hours=1)


def test_remember_last_answers_again_only_for_the_same_argument() -> None:
    from sync.model import remember_last

    calls: list[object] = []

    @remember_last()
    def by_object(value: object) -> object:
        calls.append(value)
        return ("made from", value)

    key, twin = ["a"], ["a"]  # equal, but two objects
    assert by_object(key) is by_object(key)
    assert by_object(twin) == ("made from", twin) and calls == [key, twin]

    @remember_last(equal=True)
    def by_value(value: str) -> str:
        calls.append(value)
        return value.upper()

    calls.clear()
    texts = ["ab", "".join(["a", "b"]), "cd", "ab"]  # the first two: equal, not one object
    assert [by_value(t) for t in texts] == ["AB", "AB", "CD", "AB"]
    assert calls == ["ab", "cd", "ab"]  # only a change of value calls again
