"""The activity log keeps each new entry as its JSON text; entries read from a file (dicts) and
new ones are saved and listed alike."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.model import Side, Task
from sync.storage import StateWriteError
from sync.store import StateStore, activity_path

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_entries_old_and_new_are_listed_and_saved_alike(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateStore.open(path) as store:
        store.audit("create", "first", side=Side.SALESFORCE, sc_id="a", sf_id="b", at=AT,
                    after=Task("Call", due_date=date(2026, 12, 1)))  # fmt: skip
        store.save()
    with StateStore.open(path) as store:  # "first" is now a dict read from the file
        returned = store.audit("update", "second", before={"name": "x"}, at=AT)
        assert returned["message"] == "second" and returned["before"] == {"name": "x"}
        entries = store.activity()
        assert [e["message"] for e in entries] == ["second", "first"]
        assert entries[1]["after"]["due_date"] == "2026-12-01"
        assert entries[1]["side"] == "salesforce" and entries[0]["at"] == AT.isoformat()
        entries[0]["message"] = "changed by the caller"  # a copy: the log is not touched
        assert store.activity()[0]["message"] == "second"
        store.save()
    saved = json.loads(activity_path(path).read_text())["audit"]
    assert [doc["message"] for doc in saved.values()] == ["first", "second"]


def test_an_unsavable_entry_is_refused_at_once(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.json") as store:
        with pytest.raises(StateWriteError):
            store.audit("update", "bad", after={"name": object()})
        assert store.activity() == []
