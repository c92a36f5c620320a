"""The create/delete journal: intents are on disk before the call and survive a crash."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.journal import (
    Intent,
    IntentKind,
    IntentSpec,
    Journal,
    JournalError,
    new_correlation_key,
)
from sync.model import Link, Side
from sync.secrets import Secret
from sync.storage import StateLockedError, StateWriteError
from sync.store import StateStore

WHEN = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
PAYLOAD = {"source_side": "salesconnect", "source_id": "sc1", "task": {"name": "Call Jane"}}


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "journal.json"


@pytest.fixture
def journal(journal_path: Path):
    opened = Journal.open(journal_path)
    yield opened
    opened.close()


def on_disk(path: Path) -> list[dict]:
    """The intents the file holds, read independently: line 1 is the snapshot, then one line
    per batch call (record / confirm / discard)."""
    first, *events = path.read_text().splitlines()
    intents = {doc["key"]: doc for doc in json.loads(first)["intents"]}
    for line in events:
        [(op, items)] = json.loads(line).items()
        for item in items:
            if op == "record":
                intents[item["key"]] = item
            elif op == "confirm":
                key, remote_id, at = item
                intents[key] = {**intents[key], "remote_id": remote_id, "confirmed_at": at}
            else:
                del intents[item]
    return list(intents.values())


def test_an_intent_is_on_disk_before_record_returns(journal: Journal) -> None:
    intent = journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD, run_id="r1")
    assert uuid.UUID(intent.key).version == 4
    [doc] = on_disk(journal.path)
    assert doc["key"] == intent.key
    assert doc["payload"] == PAYLOAD
    assert doc.get("remote_id") is None  # left out until confirmed
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


def test_a_batch_is_recorded_with_one_write(journal: Journal) -> None:
    specs = [
        IntentSpec(IntentKind.CREATE, Side.SALESCONNECT, {"source_id": f"00T{i}"})
        for i in range(200)
    ]
    intents = journal.record_intents(specs, now=WHEN)
    assert journal.write_count == 1
    assert len({i.key for i in intents}) == 200
    assert [d["payload"]["source_id"] for d in on_disk(journal.path)] == [
        f"00T{i}" for i in range(200)
    ]


def test_the_given_key_is_kept_and_never_reused(journal: Journal) -> None:
    key = new_correlation_key()
    assert (
        journal.record_intent(IntentKind.DELETE, Side.SALESCONNECT, key, {"task_id": "sc9"}).key
        == key
    )
    with pytest.raises(ValueError, match="already in the journal"):
        journal.record_intent(IntentKind.CREATE, Side.SALESCONNECT, key, {})
    assert len(on_disk(journal.path)) == 1


def test_confirm_then_trim_after_the_store_saved(journal: Journal) -> None:
    first = journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
    second = journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
    confirmed = journal.confirm(first.key, "00T000000000001")
    assert confirmed.confirmed and confirmed.remote_id == "00T000000000001"
    assert on_disk(journal.path)[0]["remote_id"] == "00T000000000001"
    assert journal.trim() == 1  # only the confirmed one goes
    assert [i.key for i in journal.pending()] == [second.key]
    assert [d["key"] for d in on_disk(journal.path)] == [second.key]
    writes = journal.write_count
    assert journal.trim() == 0 and journal.write_count == writes  # nothing to drop: no write
    journal.discard(second.key)
    assert journal.pending() == [] and on_disk(journal.path) == []
    with pytest.raises(KeyError):
        journal.confirm("no-such-key", "x")


def test_a_secret_in_a_payload_is_refused_and_nothing_is_written(journal: Journal) -> None:
    journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
    before = journal.path.read_bytes()
    with pytest.raises(StateWriteError, match="keyring"):
        journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, {"token": Secret("s3cr3t")})
    assert journal.path.read_bytes() == before
    assert len(journal.pending()) == 1


def test_only_one_process_uses_the_journal(journal: Journal) -> None:
    with pytest.raises(StateLockedError, match="another reminder-sync is running"):
        Journal.open(journal.path)


# ------------------------------------------------------------------ crash recovery

CRASHING_RUN = """
    import os, sys
    from sync.journal import IntentKind, Journal
    from sync.model import Link, Side, Task
    from sync.store import StateStore

    home, crash_point = sys.argv[1], sys.argv[2]
    store = StateStore.open(home + "/state.json")
    journal = Journal.open(home + "/journal.json")
    payload = {"source_side": "salesconnect", "source_id": "sc1",
               "task": {"name": "Call Jane", "due_date": "2025-03-07"}}
    intent = journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, payload)
    print(intent.key, flush=True)
    if crash_point == "before_confirm":   # the remote call was sent; its answer never arrived
        os._exit(9)
    journal.confirm(intent.key, "00T000000000042")
    if crash_point == "before_store_save":   # created remotely, link not saved yet
        os._exit(9)
    store.put_link(Link("sc1", "00T000000000042", Task("Call Jane")))
    store.save()
    if crash_point == "before_trim":
        os._exit(9)
    journal.trim()
    os._exit(0)
"""


def crash_at(home: Path, point: str) -> str:
    home.mkdir(mode=0o700, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_RUN), str(home), point],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == (0 if point == "none" else 9), result.stderr
    return result.stdout.strip()


def recover(home: Path) -> tuple[list[Intent], dict[str, Link]]:
    with (
        Journal.open(home / "journal.json") as journal,
        StateStore.open(home / "state.json") as store,
    ):
        return journal.pending(), dict(store.links())


def test_a_crash_before_the_answer_leaves_an_open_intent(tmp_path: Path) -> None:
    key = crash_at(tmp_path / "h", "before_confirm")
    pending, links = recover(tmp_path / "h")
    assert links == {}
    [intent] = pending
    assert (intent.key, intent.kind, intent.side, intent.remote_id) == (
        key,
        IntentKind.CREATE,
        Side.SALESFORCE,
        None,
    )
    # what recovery needs to look the task up (or resend with the same Idempotency-Key)
    assert intent.payload["source_id"] == "sc1"
    assert intent.payload["task"]["due_date"] == "2025-03-07"


def test_a_crash_before_the_link_was_saved_keeps_the_remote_id(tmp_path: Path) -> None:
    key = crash_at(tmp_path / "h", "before_store_save")
    pending, links = recover(tmp_path / "h")
    assert links == {}  # the store never heard of it...
    assert [(i.key, i.remote_id) for i in pending] == [
        (key, "00T000000000042")
    ]  # ...the journal did


def test_a_crash_after_the_save_leaves_only_a_confirmed_intent_to_trim(tmp_path: Path) -> None:
    home = tmp_path / "h"
    crash_at(home, "before_trim")
    pending, links = recover(home)
    assert set(links) == {"sc1|00T000000000042"}
    assert [i.confirmed for i in pending] == [True]
    with Journal.open(home / "journal.json") as journal:
        assert journal.trim() == 1
    assert recover(home)[0] == []


def test_a_clean_run_leaves_an_empty_journal(tmp_path: Path) -> None:
    crash_at(tmp_path / "h", "none")
    pending, links = recover(tmp_path / "h")
    assert pending == [] and len(links) == 1


# ------------------------------------------------------------------ damage


def test_a_damaged_journal_is_an_error_that_drops_nothing(journal_path: Path) -> None:
    with Journal.open(journal_path) as journal:
        journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
        journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
        journal.confirm(journal.pending()[0].key, "00T000000000001")
        assert journal.trim() == 1  # compacts: the file before it is the .bak
        journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
        journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
    snapshot, first, second = journal_path.read_bytes().splitlines(keepends=True)
    damaged = snapshot + first[: len(first) // 2] + b"\n" + second  # a middle line cut short
    journal_path.write_bytes(damaged)
    with pytest.raises(JournalError) as caught:
        Journal.open(journal_path)
    message = str(caught.value)
    assert f"The journal {journal_path} is damaged or cut short" in message
    assert "line 2" in message
    assert f"cp '{journal_path}.bak' '{journal_path}'" in message
    assert "duplicated" in message
    assert journal_path.read_bytes() == damaged
    journal_path.with_name("journal.json.bak").replace(journal_path)
    with Journal.open(journal_path) as journal:  # the lock was released; the backup loads
        assert len(journal.pending()) == 2
        assert [i.confirmed for i in journal.pending()] == [True, False]


def test_a_torn_last_line_is_ignored_and_the_intents_before_it_kept(journal_path: Path) -> None:
    with Journal.open(journal_path) as journal:
        kept = journal.record_intents(
            [IntentSpec(IntentKind.CREATE, Side.SALESFORCE, PAYLOAD) for _ in range(3)]
        )
        journal.confirm(kept[0].key, "00T000000000001")
        journal.record_intents(
            [IntentSpec(IntentKind.CREATE, Side.SALESFORCE, PAYLOAD) for _ in range(5)]
        )
    whole = journal_path.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[1]
    journal_path.write_bytes(whole[: len(whole) - len(last) // 2 - 1])  # the crash cut it short
    with Journal.open(journal_path) as journal:
        # the batch that was cut short never returned, so none of it was sent: all of it goes
        assert [(i.key, i.remote_id) for i in journal.pending()] == [
            (kept[0].key, "00T000000000001"),
            (kept[1].key, None),
            (kept[2].key, None),
        ]
        later = journal.record_intent(IntentKind.CREATE, Side.SALESFORCE, None, PAYLOAD)
    with Journal.open(journal_path) as journal:  # the torn bytes were dropped, appends fit
        assert [i.key for i in journal.pending()] == [*(i.key for i in kept), later.key]
    assert len(on_disk(journal_path)) == 4


def test_a_version_1_journal_is_read_and_rewritten(journal_path: Path) -> None:
    journal_path.parent.mkdir(mode=0o700)
    old = {
        "version": 1,
        "intents": [
            {
                "key": "k1",
                "kind": "create",
                "side": "salesforce",
                "payload": PAYLOAD,
                "created_at": WHEN.isoformat(),
                "run_id": "r1",
                "remote_id": "00T000000000009",
                "confirmed_at": WHEN.isoformat(),
            },
            {
                "key": "k2",
                "kind": "update",
                "side": "salesconnect",
                "payload": {"link_key": "sc1|00T1"},
                "created_at": WHEN.isoformat(),
            },
        ],
    }
    journal_path.write_text(json.dumps(old, separators=(",", ":")))  # one line, no newline
    journal_path.chmod(0o600)
    with Journal.open(journal_path) as journal:
        assert [(i.key, i.kind, i.remote_id) for i in journal.pending()] == [
            ("k1", IntentKind.CREATE, "00T000000000009"),
            ("k2", IntentKind.UPDATE, None),
        ]
        journal.discard("k2")
    assert json.loads(journal_path.with_name("journal.json.bak").read_text()) == old
    assert [d["key"] for d in on_disk(journal_path)] == ["k1"]
    assert json.loads(journal_path.read_text().splitlines()[0])["version"] == 2
    assert stat.S_IMODE(journal_path.stat().st_mode) == 0o600


def test_each_call_writes_what_it_changes_not_the_whole_journal(journal: Journal) -> None:
    sizes = []
    for i in range(1000):
        before = journal.bytes_written
        [intent] = journal.record_intents(
            [IntentSpec(IntentKind.CREATE, Side.SALESCONNECT, {**PAYLOAD, "source_id": f"s{i}"})]
        )
        journal.confirm_many([(intent.key, f"sc{i}")])
        sizes.append(journal.bytes_written - before)
    assert len(journal) == 1000 and journal.compaction_count == 1  # only the file's creation
    # The first call creates the file; every later one appends the same few hundred bytes,
    # whether 1 or 999 intents wait (a rewrite would pass 300 kB by the end).
    assert max(sizes[1:]) < 600
    assert max(sizes[1:]) - min(sizes[1:]) < 20
    assert journal.path.stat().st_size == sum(sizes)
    assert len(on_disk(journal.path)) == 1000


def test_compaction_keeps_exactly_the_pending_intents(journal_path: Path) -> None:
    expected = {}
    with Journal.open(journal_path) as journal:
        for batch in range(40):
            intents = journal.record_intents(
                [
                    IntentSpec(IntentKind.CREATE, Side.SALESFORCE, {"n": batch, "pad": "x" * 400})
                    for _ in range(50)
                ]
            )
            journal.confirm_many([(i.key, f"id{batch}") for i in intents[:30]])
            journal.discard_many([i.key for i in intents[:25]])  # settled
            for intent in intents[25:]:
                expected[intent.key] = f"id{batch}" if intent in intents[:30] else None
        assert journal.compaction_count > 1  # dropped entries outweighed the live ones
        assert journal_path.stat().st_size < 2 * 1024 * 1024
        assert {i.key: i.remote_id for i in journal.pending()} == expected
    assert {d["key"]: d.get("remote_id") for d in on_disk(journal_path)} == expected
    with Journal.open(journal_path) as journal:
        assert {i.key: i.remote_id for i in journal.pending()} == expected
        assert journal.trim() == len([v for v in expected.values() if v])
        kept = {k for k, v in expected.items() if v is None}
    lines = journal_path.read_text().splitlines()
    assert len(lines) == 1  # trim compacts to one snapshot of what is still open
    assert {d["key"] for d in json.loads(lines[0])["intents"]} == kept


def test_the_journal_is_one_json_document_again_once_empty(journal: Journal) -> None:
    [intent] = journal.record_intents([IntentSpec(IntentKind.CREATE, Side.SALESFORCE, PAYLOAD)])
    journal.confirm(intent.key, "00T1")
    journal.discard(intent.key)
    assert json.loads(journal.path.read_text()) == {"version": 2, "intents": []}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b'{"version": 1}', "not a reminder-sync journal"),
        (b'{"version": 1, "intents": [{"key": "k"}]}', "unreadable intent"),
        (b'{"version": 99, "intents": []}', "newer reminder-sync"),
    ],
)
def test_bad_journal_files_are_clear_errors(journal_path: Path, content: bytes, words: str) -> None:
    journal_path.parent.mkdir(mode=0o700)
    journal_path.write_bytes(content)
    with pytest.raises(JournalError, match=words):
        Journal.open(journal_path)
    assert journal_path.read_bytes() == content


def test_intents_round_trip_with_their_times(journal_path: Path) -> None:
    with Journal.open(journal_path) as journal:
        [intent] = journal.record_intents(
            [
                IntentSpec(
                    IntentKind.DELETE,
                    Side.SALESCONNECT,
                    {"sc_id": "sc1", "due": str(date(2025, 1, 2))},
                    run_id="r7",
                )
            ],
            now=WHEN,
        )
        journal.confirm_many([(intent.key, "sc1")], now=WHEN)
    with Journal.open(journal_path) as journal:
        [again] = journal.pending()
    assert again == Intent(
        intent.key,
        IntentKind.DELETE,
        Side.SALESCONNECT,
        {"sc_id": "sc1", "due": "2025-01-02"},
        WHEN,
        "r7",
        "sc1",
        WHEN,
    )


def test_a_saved_mark_is_one_append_and_survives_reopening_and_compaction(
    journal_path: Path,
) -> None:
    """The mark names the state file version that holds the outcome; a later process must
    still see it, and an intent keeps its first mark."""
    with Journal.open(journal_path) as journal:
        intents = journal.record_intents(
            [IntentSpec(IntentKind.CREATE, Side.SALESFORCE, PAYLOAD) for _ in range(3)]
        )
        journal.confirm_many([(i.key, f"00T{n}") for n, i in enumerate(intents)])
        writes = journal.write_count
        journal.mark_saved([intents[0].key, intents[1].key, intents[1].key, "not-here"], 7)
        assert journal.write_count == writes + 1
        journal.mark_saved([intents[0].key], 8)  # already marked: nothing to write
        assert journal.write_count == writes + 1
    with Journal.open(journal_path) as journal:
        assert [i.saved for i in journal.pending()] == [7, 7, 0]
        journal.discard(intents[2].key)
        journal._compact()  # a snapshot must carry the mark too
    with Journal.open(journal_path) as journal:
        assert [(i.key, i.saved) for i in journal.pending()] == [
            (intents[0].key, 7),
            (intents[1].key, 7),
        ]
