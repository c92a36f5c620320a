"""The journal's create records: compact on disk, read back whole, and the creates a saved
state file holds are not read back at recovery (sync.journal_adapter)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.journal import IntentKind, IntentSpec, Journal
from sync.journal_adapter import CreateIntent, IntentJournal
from sync.model import Side, Task
from sync.storage import StateWriteError, serialise

AT = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
TASK = Task("Call Ada about the renewal", "open", "high", date(2026, 12, 1), "Budget first.")


def create(key: str, source: str, **changes: object) -> CreateIntent:
    values = {
        "key": key,
        "target": Side.SALESFORCE,
        "source_id": source,
        "fields": TASK,
        "base": TASK,
        "created_at": AT,
        "run_id": "run1",
        **changes,
    }
    return CreateIntent(**values)  # type: ignore[arg-type]


def records(path: Path) -> list[dict]:
    """The intents of the journal file's record lines (and of its snapshot line)."""
    out = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        out.extend(doc.get("intents", doc.get("record", [])))
    return out


@pytest.fixture
def journal(tmp_path: Path) -> IntentJournal:
    journal = IntentJournal.open(tmp_path / "journal.json")
    yield journal
    journal.close()


def test_a_create_is_one_small_record_and_is_read_back_whole(
    journal: IntentJournal, tmp_path: Path
) -> None:
    intent = create("k1", "sc1")
    journal.begin([intent])
    [doc] = records(tmp_path / "journal.json")
    payload = doc["payload"]
    # the fields once, as values; the base, time, run and kind are not repeated
    assert payload["fields"] == [
        "Call Ada about the renewal",
        "open",
        "high",
        "2026-12-01",
        "Budget first.",
    ]
    assert not {"base", "notes", "created_at", "run_id", "kind", "key"} & set(payload)
    assert len(json.dumps(doc)) < 300
    [back] = journal.pending()
    assert back == intent


def test_a_base_that_differs_from_what_was_sent_is_kept(
    journal: IntentJournal, tmp_path: Path
) -> None:
    long_base = TASK.replace(name="x" * 300)
    intent = create(
        "k2",
        "sc2",
        fields=TASK.replace(name="x" * 254 + "…", due_date=None),
        base=long_base,
        notes={"name": "truncated"},
        replaces_link="scold|sfold",
    )
    journal.begin([intent])
    [doc] = records(tmp_path / "journal.json")
    assert doc["payload"]["base"][0] == "x" * 300
    [back] = journal.pending()
    assert back == intent
    assert back.base == long_base and back.fields.due_date is None


def test_creates_of_different_times_keep_each_time(journal: IntentJournal) -> None:
    later = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    journal.begin([create("k1", "sc1"), create("k2", "sc2", created_at=later)])
    assert {i.key: i.created_at for i in journal.pending()} == {"k1": AT, "k2": later}


def test_a_journal_of_full_task_documents_is_still_read(tmp_path: Path) -> None:
    old_payload = {
        "kind": "create",
        "target": "salesforce",
        "source_id": "sc9",
        "fields": {"name": "Old", "status": "open", "priority": "normal", "due_date": None,
                   "details": ""},
        "base": {"name": "Old base", "status": "open", "priority": "normal",
                 "due_date": "2026-12-02", "details": ""},
        "notes": {},
        "created_at": "2026-11-29T10:00:00+00:00",
        "run_id": "old",
        "replaces_link": None,
    }  # fmt: skip
    with Journal.open(tmp_path / "journal.json") as raw:
        raw.record_intents([IntentSpec(IntentKind.CREATE, Side.SALESFORCE, old_payload, key="k9")])
    journal = IntentJournal.open(tmp_path / "journal.json")
    try:
        [back] = journal.pending()
    finally:
        journal.close()
    assert back.fields == Task("Old") and back.base == Task("Old base", due_date=date(2026, 12, 2))
    assert back.created_at == datetime(2026, 11, 29, 10, tzinfo=UTC) and back.run_id == "old"


def test_creates_a_saved_state_holds_are_left_out_of_recovery(journal: IntentJournal) -> None:
    journal.begin([create("k1", "sc1"), create("k2", "sc2"), create("k3", "sc3")])
    journal.confirm([("k1", "00T1"), ("k2", "00T2")])
    journal.mark_saved(["k1", "k2"], 5)
    assert journal.has_pending_creates()
    assert journal.held_creates(5) == ["k1", "k2"] == journal.held_creates(6)
    assert [i.key for i in journal.pending(held_by=5)] == ["k3"]
    # an older state file (a restored .bak) does not hold them: they are recovered
    assert journal.held_creates(4) == []
    assert [i.key for i in journal.pending(held_by=4)] == ["k1", "k2", "k3"]
    journal.finish(["k1", "k2", "k3"])
    assert not journal.has_pending_creates()


def test_a_circular_value_is_refused_like_any_unsavable_value() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(StateWriteError):
        serialise({"a": loop})
    assert serialise({"é": [1.5, None, True, "\n"]}) == '{"é":[1.5,null,true,"\\n"]}'.encode()


def test_keys_made_in_bulk_are_random_uuid4_text() -> None:
    import uuid

    from sync.journal import new_correlation_keys

    keys = new_correlation_keys(500)
    assert len(set(keys)) == 500 and new_correlation_keys(0) == []
    for key in keys:
        parsed = uuid.UUID(key)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == key
