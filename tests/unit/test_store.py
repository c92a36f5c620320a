"""The state store: typed tables, atomic saves, the .bak, the lock, damage and migrations."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync import store as store_module
from sync.model import (
    Choice,
    Conflict,
    ConflictKind,
    Link,
    Policy,
    Resolution,
    Side,
    SideTask,
    Task,
)
from sync.storage import StateFileError, StateLockedError, StateWriteError
from sync.store import Cursor, ParkedError, Settings, StateStore

WHEN = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def make_link(i: int, **changes) -> Link:
    base = Task(name=f"Call customer {i}", due_date=date(2025, 3, 5), details="about renewal")
    values = {"sc_id": f"sc{i}", "sf_id": f"00T{i:012d}", "base": base, "sc_version": "1"}
    values.update(changes)
    return Link(**values)


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "state.json"


@pytest.fixture
def store(state_path: Path):
    opened = StateStore.open(state_path)
    yield opened
    opened.close()


def reopen(store: StateStore) -> StateStore:
    store.close()
    return StateStore.open(store.path)


# ------------------------------------------------------------------ typed tables


def test_every_table_round_trips_through_the_file(store: StateStore) -> None:
    link = make_link(1, notes={"status": "unmapped"}, sf_version="2025-03-04T09:00:00.000+0000")
    conflict = Conflict(
        id="c1",
        kind=ConflictKind.FIELDS,
        sc_id="sc1",
        sf_id=link.sf_id,
        fields=("name", "due_date"),
        base=link.base,
        sc=link.base.replace(name="SC name"),
        sf=link.base.replace(name="SF name", due_date=date(2025, 4, 1)),
        message="both changed",
    )
    unreadable = Conflict(
        id="c2",
        kind=ConflictKind.INVALID,
        sc_id="sc2",
        sf_id="sf2",
        fields=("due_date",),
        base=link.base,
        sc=link.base,
        sf=None,
        deleted_side=Side.SALESFORCE,
        invalid_sides=(Side.SALESCONNECT,),
        message="unreadable due date",
    )
    resolution = Resolution(
        conflict_id="c1",
        choices={"name": Choice.TAKE_SALESFORCE, "due_date": Choice.CUSTOM},
        values={"due_date": date(2025, 5, 1)},
    )
    cursor = Cursor(Side.SALESFORCE, "2025-03-04T09:00:00.000+0000", WHEN, {"deleted_end": "x"})
    side_task = SideTask(
        side=Side.SALESFORCE,
        id=link.sf_id,
        fields=Task(name="Call", status=None, priority="high"),
        version="v7",
        created_at=WHEN,
        updated_at=WHEN,
        raw={"Status": "In Progress"},
        problems={"due_date": "bad date"},
    )
    parked = ParkedError(Side.SALESCONNECT, "sc9", "validation", "name too long", WHEN)
    settings = Settings(
        enabled=True,
        enabled_at=WHEN,
        policies={"name": Policy.SALESFORCE_WINS},
        poll_interval=60,
        timezone="Europe/Paris",
    )

    store.put_link(link)
    store.put_conflict(conflict)
    store.put_conflict(unreadable)
    store.put_resolution(resolution)
    store.put_cursor(cursor)
    store.put_cached_tasks([side_task])
    store.park_error(parked)
    store.put_settings(settings)
    store.put_connection(Side.SALESCONNECT, {"base_url": "http://127.0.0.1:1/api", "user": "u1"})
    store.audit("update", "name changed", run_id="r1", side=Side.SALESFORCE, sc_id="sc1",
                before=link.base, after={"due_date": date(2025, 3, 6)}, at=WHEN)  # fmt: skip
    store.save()

    again = reopen(store)
    try:
        assert again.links() == {link.key: link}
        assert again.conflicts() == [conflict, unreadable]
        assert again.resolution("c1") == resolution
        assert again.cursor(Side.SALESFORCE) == cursor
        assert again.cursor(Side.SALESCONNECT) == Cursor(Side.SALESCONNECT)
        assert again.cached_tasks(Side.SALESFORCE) == {link.sf_id: side_task}
        assert again.cached_tasks(Side.SALESCONNECT) == {}
        assert again.errors() == [parked]
        assert again.settings == settings
        assert again.settings.policy("name") is Policy.SALESFORCE_WINS
        assert again.settings.policy("status") is Policy.MANUAL
        assert again.connection(Side.SALESCONNECT) == {
            "base_url": "http://127.0.0.1:1/api",
            "user": "u1",
        }
        [entry] = again.activity()
        assert entry["before"]["due_date"] == "2025-03-05"
        assert entry["after"] == {"due_date": "2025-03-06"}
        assert entry["at"] == WHEN.isoformat()
        assert again.counts() == {"links": 1, "conflicts": 2, "errors": 1}
    finally:
        again.close()


def test_a_cached_task_keeps_every_value_and_the_file_only_what_is_not_a_default(
    store: StateStore,
) -> None:
    plain = SideTask(Side.SALESFORCE, "00T1", Task("Call"), created_at=WHEN, updated_at=WHEN)
    unusual = SideTask(
        side=Side.SALESFORCE,
        id="00T2",
        fields=Task("Log", status=None),
        version="",
        created_at=None,
        updated_at=WHEN,
        deleted=True,
        in_scope=False,
        scope_reason="owned by someone else",
        raw={"status": "In Progress"},
        problems={"due_date": "bad date"},
    )
    store.put_cached_tasks([plain, unusual])
    store.save()

    again = reopen(store)
    try:
        assert again.cached_tasks(Side.SALESFORCE) == {"00T1": plain, "00T2": unusual}
    finally:
        again.close()
    saved = json.loads(store_module.cache_path(store.path).read_text())
    by_id = {doc["id"]: doc for doc in saved[store_module.CACHE_TABLE].values()}
    assert set(by_id["00T1"]) == {"side", "id", "fields", "created_at", "updated_at"}
    assert by_id["00T2"]["deleted"] is True and by_id["00T2"]["in_scope"] is False


def test_links_are_found_by_either_id_and_a_task_is_in_one_pair_only(store: StateStore) -> None:
    store.put_link(make_link(1))
    assert store.link_by_sc("sc1") == make_link(1)
    assert store.link_by_sf(make_link(1).sf_id) == make_link(1)
    assert store.link_by_sc("nope") is None

    with pytest.raises(ValueError, match="already linked"):
        store.put_link(make_link(2, sc_id="sc1"))  # the SC task is paired already

    updated = make_link(1, sc_version="9")  # same pair: replaced in place
    store.put_link(updated)
    assert store.link_by_sc("sc1").sc_version == "9"
    assert len(store.links()) == 1

    assert store.delete_link(updated.key) == updated
    assert store.link_by_sc("sc1") is None and store.link_by_sf(updated.sf_id) is None
    store.put_link(make_link(2, sc_id="sc1"))  # now free
    assert reopen(store).link_by_sc("sc1").sf_id == make_link(2).sf_id


def test_a_resolution_needs_a_waiting_conflict_and_goes_with_it(store: StateStore) -> None:
    resolution = Resolution("c1", {"record": Choice.RESTORE})
    with pytest.raises(ValueError, match="no conflict"):
        store.put_resolution(resolution)
    store.put_conflict(
        Conflict("c1", ConflictKind.EDIT_VS_DELETE, "sc1", "sf1", (), None, None, None)
    )
    store.put_resolution(resolution)
    store.delete_conflict("c1")
    assert store.resolution("c1") is None


def test_a_task_parked_again_counts_its_attempts(store: StateStore) -> None:
    error = ParkedError(Side.SALESFORCE, "00T1", "transient", "503", WHEN)
    store.park_error(error)
    assert store.park_error(error).attempts == 2
    assert store.error_for(Side.SALESFORCE, "00T1").attempts == 2
    store.clear_error(Side.SALESFORCE, "00T1")
    assert store.errors() == []


def test_settings_have_safe_defaults_and_refuse_bad_values(store: StateStore) -> None:
    assert store.settings.enabled is False
    assert store.settings.poll_interval == 300
    assert store.settings.timezone == "local"
    assert store.settings.zone() is not None
    with pytest.raises(ValueError, match="time zone"):
        store.update_settings(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="poll interval"):
        store.update_settings(poll_interval=0)
    with pytest.raises(ValueError, match="share"):
        store.update_settings(mass_delete_share=1.5)
    assert store.settings == Settings()  # nothing half-applied
    store.update_settings(enabled=True, enabled_at=WHEN)
    assert reopen(store).settings.enabled_at == WHEN


def test_connection_details_refuse_anything_that_looks_like_a_secret(store: StateStore) -> None:
    for key in ("client_secret", "refresh_token", "accessToken", "token", "Password", "auth_code"):
        with pytest.raises(ValueError, match="keyring"):
            store.put_connection(Side.SALESFORCE, {"instance_url": "https://x", key: "v"})
    assert store.connection(Side.SALESFORCE) is None
    details = {"token_url": "https://login.example.com/services/oauth2/token", "client_id": "c"}
    store.put_connection(Side.SALESCONNECT, details)  # a token *endpoint* is no secret
    assert store.connection(Side.SALESCONNECT) == details


def test_the_audit_log_keeps_the_newest_entries_only(store: StateStore) -> None:
    for i in range(store_module.AUDIT_LIMIT + 25):
        store.audit("update", f"entry {i}", run_id="r")
    store.save()
    again = reopen(store)
    try:
        entries = again.activity(limit=10_000)
        assert len(entries) == store_module.AUDIT_LIMIT
        assert entries[0]["message"] == f"entry {store_module.AUDIT_LIMIT + 24}"
        assert entries[-1]["message"] == "entry 25"
        assert [e["message"] for e in again.activity(limit=2)] == [
            f"entry {store_module.AUDIT_LIMIT + 24}",
            f"entry {store_module.AUDIT_LIMIT + 23}",
        ]
        again.audit("run", "after reopen")
        assert again.activity(limit=1)[0]["message"] == "after reopen"
    finally:
        again.close()


def test_the_file_is_a_tinydb_database(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.save()
    store.close()
    from tinydb import TinyDB

    from sync.storage import AtomicJSONStorage

    tables = json.loads(store.path.read_text())
    db = TinyDB(storage=lambda: AtomicJSONStorage(store.path, tables, read_only=True))
    [doc] = db.table("links").all()
    assert doc["sc_id"] == "sc1" and doc["base"]["due_date"] == "2025-03-05"


def test_settings_feed_the_planner(store: StateStore) -> None:
    assert store.settings.plan_settings().enabled_at is None  # off by default: nothing imported
    store.update_settings(enabled=True, enabled_at=WHEN, mass_delete_share=0.2)
    store.update_settings(policies={"details": Policy.SALESCONNECT_WINS})
    plan_settings = store.settings.plan_settings(allow_mass_delete=True)
    assert plan_settings.enabled_at == WHEN
    assert plan_settings.guard_max_share == 0.2
    assert plan_settings.policy("details") is Policy.SALESCONNECT_WINS
    assert plan_settings.allow_mass_delete
    store.update_settings(enabled=False)
    assert store.settings.plan_settings().enabled_at is None


# ------------------------------------------------------------------ where the files live


def test_reminder_sync_home_moves_the_state(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REMINDER_SYNC_HOME", str(tmp_path / "elsewhere"))
    with StateStore.open() as store:
        assert store.path == tmp_path / "elsewhere" / "state.json"
        assert store.journal_path == tmp_path / "elsewhere" / "journal.json"
    assert stat.S_IMODE((tmp_path / "elsewhere").stat().st_mode) == 0o700
    assert (tmp_path / "elsewhere" / "state.json").is_file()


def test_without_reminder_sync_home_the_user_data_dir_is_used(tmp_path: Path) -> None:
    from sync import paths

    home = paths.home_dir({"XDG_DATA_HOME": "/ignored"})  # platformdirs reads os.environ
    assert home.name == "reminder-sync"
    assert paths.home_dir({"REMINDER_SYNC_HOME": "~/rs"}) == Path.home() / "rs"
    assert paths.home_dir({"REMINDER_SYNC_HOME": "  "}) == home


# ------------------------------------------------------------------ batching and files


def test_many_changes_are_written_once_per_save(store: StateStore) -> None:
    writes_at_open = store.write_count  # the new file was created at open
    inode = store.path.stat().st_ino
    for i in range(50):
        store.put_link(make_link(i))
        store.audit("create", f"linked {i}")
    assert store.path.stat().st_ino == inode  # nothing reached the disk yet
    assert store.save() is True
    assert store.write_count == writes_at_open + 1
    assert len(json.loads(store.path.read_text())["links"]) == 50

    inode = store.path.stat().st_ino
    assert store.save() is False  # nothing new: no write at all
    assert store.path.stat().st_ino == inode


def test_close_saves_pending_changes(state_path: Path) -> None:
    store = StateStore.open(state_path)
    store.put_link(make_link(1))
    store.close()
    assert StateStore.open(state_path, read_only=True).links() == {make_link(1).key: make_link(1)}


def test_the_backup_holds_the_previous_good_version(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.save()
    store.put_link(make_link(2))
    store.save()
    bak = store.path.with_name("state.json.bak")
    assert len(json.loads(bak.read_text())["links"]) == 1
    assert len(json.loads(store.path.read_text())["links"]) == 2


def test_files_are_private(store: StateStore, tmp_path: Path) -> None:
    store.put_link(make_link(1))
    store.save()
    store.put_link(make_link(2))
    store.save()
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(store.path.parent) == 0o700
    assert mode(store.path) == 0o600
    assert mode(store.path.with_name("state.json.bak")) == 0o600
    assert mode(store.path.with_name("state.json.lock")) == 0o600


def test_an_existing_open_directory_is_tightened(tmp_path: Path) -> None:
    home = tmp_path / "open"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    StateStore.open(home / "state.json").close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_stale_temp_files_are_removed_at_open(state_path: Path) -> None:
    StateStore.open(state_path).close()
    leftover = state_path.with_name(".state.json.deadbeef.tmp")
    leftover.write_text('{"half": ')
    unrelated = state_path.with_name("notes.txt")
    unrelated.write_text("keep me")
    StateStore.open(state_path).close()
    assert not leftover.exists()
    assert unrelated.exists()


def test_a_value_that_cannot_be_saved_leaves_the_file_alone(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.save()
    before = store.path.read_bytes()
    with pytest.raises(StateWriteError, match="Cannot save a object"):
        store.audit("update", after={"details": object()})  # refused at once
    with pytest.raises(StateWriteError, match="nothing was written"):  # refused at once too
        store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("x"), raw={"x": object()})])
    assert store.cached_task(Side.SALESCONNECT, "sc1") is None
    store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc2", Task("good"))])
    cache_before = store.cache_path.read_bytes()
    store.audit("run", "a good entry")  # its file is staged, but not committed either
    log_before = store.activity_path.read_bytes()
    store.put_link(make_link(2, notes={"x": object()}))
    with pytest.raises(StateWriteError, match="nothing was written"):
        store.save()  # every file is staged whole before any file changes
    assert store.path.read_bytes() == before
    assert store.cache_path.read_bytes() == cache_before
    assert store.activity_path.read_bytes() == log_before
    assert list(store.path.parent.glob(".*.tmp")) == []
    store.delete_link(make_link(2).key)
    assert store.save() is True
    assert StateStore.open(store.path, read_only=True).cached_task(Side.SALESCONNECT, "sc2")


DISK_FULL = """
    import resource, signal, sys
    from sync.model import Link, Task
    from sync.store import StateStore, StateWriteError
    store = StateStore.open(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    for i in range(100):
        store.put_link(Link(f"disk-sc{i}", f"disk-sf{i}", Task(name="n" * 100)))
    try:
        store.save()
        print("saved")
    except StateWriteError as exc:
        print("error:", exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print("dirty" if store.dirty else "clean")
    store.save()
    print(len(StateStore.open(sys.argv[1], read_only=True).links()))
"""


def test_a_failed_write_keeps_the_previous_version(state_path: Path) -> None:
    with StateStore.open(state_path) as store:
        store.put_link(make_link(1))
    before = state_path.read_bytes()
    result = run_python(DISK_FULL, str(state_path))
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"error: Could not save {state_path}: File too large.")
    assert "The previous version is intact" in lines[0]
    assert lines[1] == "dirty"  # the changes were kept and saved once the disk allowed it
    assert lines[2] == "101"
    assert state_path.with_name("state.json.bak").read_bytes() == before
    assert list(state_path.parent.glob(".state.json.*.tmp")) == []


# ------------------------------------------------------------------ damaged files


def write_good_file_with_backup(state_path: Path) -> bytes:
    store = StateStore.open(state_path)
    for i in range(20):
        store.put_link(make_link(i))
    store.save()
    store.put_link(make_link(99))
    store.close()
    return state_path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda good: b"", "is empty"),
        (lambda good: b"  \n", "is empty"),
        (lambda good: good[: len(good) // 2], "cut short"),
        (lambda good: b"\x00\xff\xfe garbage", "not UTF-8"),
        (lambda good: b"[1, 2, 3]", "not a reminder-sync state file"),
        (lambda good: b'{"_default": {}}', "no schema version"),
        (lambda good: good.replace(b'"sc_id":"sc3"', b'"sc_idx":"sc3"'), "unreadable record"),
    ],
)
def test_a_damaged_file_is_a_clear_error_not_an_empty_database(
    state_path: Path, damage, words: str
) -> None:
    good = write_good_file_with_backup(state_path)
    damaged = damage(good)
    state_path.write_bytes(damaged)

    with pytest.raises(StateFileError) as caught:
        StateStore.open(state_path)

    message = str(caught.value)
    assert words in message
    assert str(state_path) in message
    assert f"cp '{state_path}.bak' '{state_path}'" in message  # says how to recover
    assert state_path.read_bytes() == damaged  # left as found, not replaced by an empty db
    # ...and the lock was released, so the user can follow the advice and start again
    os.replace(state_path.with_name("state.json.bak"), state_path)
    with StateStore.open(state_path) as recovered:
        assert len(recovered.links()) == 20


def test_without_a_backup_the_message_says_so(state_path: Path) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.write_bytes(b"")
    with pytest.raises(StateFileError, match="There is no backup copy"):
        StateStore.open(state_path)


def test_a_missing_file_next_to_a_backup_is_an_error(state_path: Path) -> None:
    write_good_file_with_backup(state_path)
    state_path.unlink()
    with pytest.raises(StateFileError, match="is missing"):
        StateStore.open(state_path)
    assert not state_path.exists()


def test_a_file_from_a_newer_version_is_refused(state_path: Path) -> None:
    write_good_file_with_backup(state_path)
    data = json.loads(state_path.read_text())
    data["meta"]["1"]["schema_version"] = store_module.SCHEMA_VERSION + 1
    state_path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match=r"newer reminder-sync.*Upgrade"):
        StateStore.open(state_path)
    assert json.loads(state_path.read_text()) == data


def test_a_symlinked_state_file_is_refused(tmp_path: Path, state_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    write_good_file_with_backup(elsewhere)
    state_path.parent.mkdir(mode=0o700)
    state_path.symlink_to(elsewhere)
    with pytest.raises(StateFileError, match="symbolic link"):
        StateStore.open(state_path)


# ------------------------------------------------------------------ schema versions


V1_FILE = {
    "meta": {"1": {"schema_version": 1, "app": "reminder-sync"}},
    "links": {
        "7": {
            "sc_id": "sc1",
            "sf_id": "00T1",
            "base": {
                "name": "Call Jane",
                "status": "open",
                "priority": "high",
                "due_date": "2025-03-07",
                "details": "",
            },
            "sc_version": "3",
            "sf_version": "2025-03-04T09:00:00.000+0000",
            "notes": {},
        }
    },
    "settings": {"1": {"enabled": True, "enabled_at": "2025-03-01T08:00:00+00:00"}},
}


def test_a_version_1_file_still_loads(state_path: Path) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.write_text(json.dumps(V1_FILE))
    with StateStore.open(state_path) as store:
        link = store.link_by_sf("00T1")
        assert link.base == Task("Call Jane", "open", "high", date(2025, 3, 7), "")
        assert store.settings.enabled_at == datetime(2025, 3, 1, 8, tzinfo=UTC)
        store.put_link(make_link(2))  # new documents get fresh ids after the old ones
        store.save()
    assert set(json.loads(state_path.read_text())["links"]) == {"7", "8"}


def test_an_old_file_is_upgraded_and_the_old_version_kept(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.write_text(json.dumps(V1_FILE))

    def v2_to_v3(tables):
        for doc in tables["links"].values():
            doc["notes"] = {"name": "migrated"}
        return tables

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store_module, "MIGRATIONS", {**store_module.MIGRATIONS, 2: v2_to_v3})
    with StateStore.open(state_path) as store:
        assert store.schema_version == 3
        assert store.link_by_sc("sc1").notes == {"name": "migrated"}
    assert json.loads(state_path.read_text())["meta"]["1"]["schema_version"] == 3
    bak = json.loads(state_path.with_name("state.json.bak").read_text())
    assert bak == V1_FILE


CACHED_DOC = {
    "side": "salesforce",
    "id": "00T1",
    "fields": {"name": "Call Jane", "status": "open", "priority": "high",
               "due_date": "2025-03-07", "details": ""},
    "version": "2025-03-04T09:00:00.000+0000",
    "created_at": "2025-03-04T09:00:00+00:00",
    "updated_at": "2025-03-04T09:00:00+00:00",
    "deleted": False, "in_scope": True, "scope_reason": "", "raw": {}, "problems": {},
}  # fmt: skip
AUDIT_DOCS = {
    str(i): {"at": f"2025-03-04T09:0{i}:00+00:00", "run_id": "r1", "kind": "update",
             "side": "salesforce", "sc_id": "sc1", "sf_id": "00T1", "before": None,
             "after": None, "message": f"old entry {i}", "category": ""}
    for i in (1, 2, 3)
}  # fmt: skip
V1_FILE_WITH_CACHE_AND_LOG = {**V1_FILE, "task_cache": {"4": CACHED_DOC}, "audit": AUDIT_DOCS}


def test_a_version_1_file_moves_its_cache_and_log_into_their_own_files(
    state_path: Path,
) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.write_text(json.dumps(V1_FILE_WITH_CACHE_AND_LOG))
    cache_file = state_path.with_name("state.cache.json")
    log_file = state_path.with_name("state.activity.json")

    with StateStore.open(state_path, read_only=True) as reader:  # a reader upgrades in memory
        assert reader.cached_task(Side.SALESFORCE, "00T1").fields.name == "Call Jane"
    assert json.loads(state_path.read_text()) == V1_FILE_WITH_CACHE_AND_LOG
    assert not cache_file.exists() and not log_file.exists()

    with StateStore.open(state_path) as store:
        assert store.schema_version == 2
        assert store.cache_path == cache_file and store.activity_path == log_file
        assert store.link_by_sc("sc1").sf_id == "00T1"
        assert store.cached_task(Side.SALESFORCE, "00T1").fields.due_date == date(2025, 3, 7)
        assert [e["message"] for e in store.activity()] == [f"old entry {i}" for i in (3, 2, 1)]
    main = json.loads(state_path.read_text())
    assert main["meta"]["1"]["schema_version"] == 2
    assert "task_cache" not in main and "audit" not in main
    assert main["links"] == V1_FILE["links"]
    assert json.loads(cache_file.read_text())["task_cache"] == {"4": CACHED_DOC}
    assert json.loads(log_file.read_text())["audit"] == AUDIT_DOCS
    assert json.loads(state_path.with_name("state.json.bak").read_text()) == (
        V1_FILE_WITH_CACHE_AND_LOG
    )  # the old version, whole

    with StateStore.open(state_path) as again:  # and the new layout reads back as it was
        assert again.cached_task(Side.SALESFORCE, "00T1").version == CACHED_DOC["version"]
        again.audit("run", "after the upgrade")
        assert len(again.activity()) == 4


def test_an_upgrade_cut_short_before_the_state_file_is_redone_from_the_old_file(
    state_path: Path,
) -> None:
    """Side files are written first; if the process dies before the state file is replaced,
    the version 1 file is still there and its tables win over the side files left behind."""
    state_path.parent.mkdir(mode=0o700)
    state_path.write_text(json.dumps(V1_FILE_WITH_CACHE_AND_LOG))
    leftover = {"meta": {"1": {"schema_version": 2, "holds": "task_cache"}}, "task_cache": {}}
    state_path.with_name("state.cache.json").write_text(json.dumps(leftover))
    with StateStore.open(state_path) as store:
        assert store.cached_task(Side.SALESFORCE, "00T1") is not None
        assert len(store.activity()) == 3


# ------------------------------------------------------------------ the files beside the state


def file_stamps(store: StateStore) -> dict[str, int]:
    paths = (store.path, store.cache_path, store.activity_path)
    return {p.name: p.stat().st_ino for p in paths}


def test_a_save_rewrites_only_the_files_that_changed(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("Call"))])
    store.audit("create", "linked 1")
    store.save()
    before = file_stamps(store)

    store.put_cursor(Cursor(Side.SALESFORCE, "2025-03-04T09:00:00.000+0000"))
    assert store.save() is True
    after = file_stamps(store)
    assert after["state.json"] != before["state.json"]
    assert after["state.cache.json"] == before["state.cache.json"]  # not rewritten
    assert after["state.activity.json"] == before["state.activity.json"]

    before = after
    store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc2", Task("Email"))])
    # False: the state file (and so its .bak) is as it was; the journal counts on that
    assert store.save() is False
    after = file_stamps(store)
    assert after["state.cache.json"] != before["state.cache.json"]
    assert after["state.json"] == before["state.json"]
    assert after["state.activity.json"] == before["state.activity.json"]

    before = after
    store.audit("run", "nothing to do")
    assert store.save() is False and not store.dirty
    after = file_stamps(store)
    assert after["state.activity.json"] != before["state.activity.json"]
    assert after["state.json"] == before["state.json"]
    assert after["state.cache.json"] == before["state.cache.json"]
    assert store.save() is False and file_stamps(store) == after


def test_a_damaged_cache_is_discarded_with_a_warning_and_rebuilt(
    state_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with StateStore.open(state_path) as store:
        store.put_link(make_link(1))
        store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("Call"))])
    state_before = state_path.read_bytes()
    cache_file = state_path.with_name("state.cache.json")
    cache_file.write_bytes(cache_file.read_bytes()[:40])  # cut short

    with caplog.at_level("WARNING", logger="sync.store"):
        store = StateStore.open(state_path)
    try:
        assert "task cache" in caplog.text and "discarded" in caplog.text
        assert store.cache_was_reset
        assert store.cached_tasks(Side.SALESCONNECT) == {}
        assert store.links() == {make_link(1).key: make_link(1)}  # the state is untouched
        assert "task cache" in store.activity(limit=1)[0]["message"]
        store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("Call again"))])
    finally:
        store.close()
    assert json.loads(state_path.read_text())["links"] == json.loads(state_before)["links"]
    with StateStore.open(state_path) as again:
        assert not again.cache_was_reset
        assert again.cached_task(Side.SALESCONNECT, "sc1").fields.name == "Call again"


def test_a_cache_with_an_unreadable_record_is_discarded_too(state_path: Path) -> None:
    with StateStore.open(state_path) as store:
        store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("Call"))])
    cache_file = state_path.with_name("state.cache.json")
    cache_file.write_text(cache_file.read_text().replace('"side":', '"sidx":'))
    with StateStore.open(state_path) as store:
        assert store.cache_was_reset and store.cached_tasks(Side.SALESCONNECT) == {}
    assert '"sidx"' not in cache_file.read_text()  # a good file replaced it


def test_a_damaged_activity_log_is_kept_aside_and_goes_on_from_its_backup(
    state_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with StateStore.open(state_path) as store:
        store.audit("run", "first")
        store.save()
        store.audit("run", "second")
    log_file = state_path.with_name("state.activity.json")
    damaged = b'{"meta": {"1": {'
    log_file.write_bytes(damaged)

    with StateStore.open(state_path, read_only=True) as reader:  # a reader changes nothing
        assert [e["message"] for e in reader.activity()] == ["first"]
    assert log_file.read_bytes() == damaged

    with caplog.at_level("WARNING", logger="sync.store"):
        store = StateStore.open(state_path)
    try:
        messages = [e["message"] for e in store.activity()]
        assert messages[1:] == ["first"]  # from the .bak: only the last save's entry is lost
        assert "activity log" in messages[0] and "kept as" in messages[0]
        assert "activity log" in caplog.text
    finally:
        store.close()
    [aside] = state_path.parent.glob("state.activity.json.damaged-*")
    assert aside.read_bytes() == damaged  # nothing deleted
    assert json.loads(log_file.read_text())["audit"]  # a good log again
    bak = json.loads(state_path.with_name("state.activity.json.bak").read_text())
    assert [d["message"] for d in bak["audit"].values()] == ["first"]  # the good copy stayed


def test_side_files_are_private_and_their_stale_temp_files_removed(state_path: Path) -> None:
    with StateStore.open(state_path) as store:
        store.put_cached_tasks([SideTask(Side.SALESCONNECT, "sc1", Task("Call"))])
        store.audit("run", "one")
        store.save()
        store.audit("run", "two")
    leftovers = [
        state_path.with_name(".state.cache.json.deadbeef.tmp"),
        state_path.with_name(".state.activity.json.deadbeef.tmp"),
    ]
    for leftover in leftovers:
        leftover.write_text('{"half": ')
    StateStore.open(state_path).close()
    assert not any(p.exists() for p in leftovers)
    for name in ("state.cache.json", "state.activity.json", "state.activity.json.bak"):
        assert stat.S_IMODE(state_path.with_name(name).stat().st_mode) == 0o600, name
    assert not state_path.with_name("state.cache.json.bak").exists()  # a cache needs none


def test_a_missing_upgrade_step_is_a_clear_error(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.write_text(json.dumps(V1_FILE))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store_module, "MIGRATIONS", {1: lambda tables: tables})
    with pytest.raises(StateFileError, match="no upgrade from it"):
        StateStore.open(state_path)
    assert json.loads(state_path.read_text()) == V1_FILE


# ------------------------------------------------------------------ one writer


def run_python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=30,
        **kwargs,
    )


OPEN_AND_REPORT = """
    import sys
    from sync.store import StateStore, StateLockedError
    try:
        StateStore.open(sys.argv[1]).close()
        print("opened")
    except StateLockedError as exc:
        print("refused:", exc)
"""


def test_a_second_process_is_refused_while_the_first_runs(store: StateStore) -> None:
    result = run_python(OPEN_AND_REPORT, str(store.path))
    assert result.stdout.startswith(
        f"refused: another reminder-sync is running (pid {os.getpid()})"
    )
    with pytest.raises(StateLockedError, match="another reminder-sync is running"):
        StateStore.open(store.path)  # a second open in the same process is refused too


def test_a_reader_can_look_while_the_writer_runs(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.save()
    reader = StateStore.open(store.path, read_only=True)
    assert len(reader.links()) == 1
    reader.put_link(make_link(2))
    with pytest.raises(Exception, match="read-only"):
        reader.save()
    reader.close()


def test_a_lock_left_by_a_dead_process_does_not_block(state_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom sync.store import StateStore\n"
            "s = StateStore.open(sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(60)\n",
            str(state_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert run_python(OPEN_AND_REPORT, str(state_path)).stdout.startswith(
            f"refused: another reminder-sync is running (pid {holder.pid})"
        )
    finally:
        holder.kill()
        holder.wait()
    lock = state_path.with_name("state.json.lock")
    assert lock.exists()  # the dead process's lock file is still there...
    assert run_python(OPEN_AND_REPORT, str(state_path)).stdout.strip() == "opened"  # ...harmless


def test_a_lock_file_with_a_foreign_pid_does_not_block(state_path: Path) -> None:
    state_path.parent.mkdir(mode=0o700)
    state_path.with_name("state.json.lock").write_text("999999\n")
    with StateStore.open(state_path) as store:
        assert store.links() == {}


# ------------------------------------------------------------------ crash safety

WRITER = """
    import sys
    from datetime import date
    from sync.model import Link, Task
    from sync.store import Cursor, StateStore
    from sync.model import Side
    store = StateStore.open(sys.argv[1])
    generation = int(store.cursor(Side.SALESFORCE).watermark or 0)
    print("ready", flush=True)
    while True:
        generation += 1
        store.put_link(Link(f"sc-new-{generation}", f"sf-new-{generation}", Task(name="x" * 200)))
        store.put_cursor(Cursor(Side.SALESFORCE, str(generation)))
        store.save()
"""

SEED = 1500


def check_consistent(path: Path) -> int:
    """The file loads and is one whole version: links = seed + generation."""
    with StateStore.open(path) as store:
        generation = int(store.cursor(Side.SALESFORCE).watermark or 0)
        assert len(store.links()) == SEED + generation
        return generation


def test_killing_the_writer_mid_save_never_breaks_the_file(state_path: Path) -> None:
    with StateStore.open(state_path) as store:
        for i in range(SEED):
            store.put_link(make_link(i, base=Task(name=f"seed {i}", details="d" * 300)))
    rng = random.Random(20250304)
    generations, temp_files_seen = [], 0
    for _ in range(30):
        writer = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(state_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.08))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        temp_files_seen += len(list(state_path.parent.glob(".state.json.*.tmp")))
        generations.append(check_consistent(state_path))
        bak = json.loads(state_path.with_name("state.json.bak").read_text())
        assert isinstance(bak["links"], dict)  # the backup is always whole as well
    assert generations == sorted(generations)  # never went back to an older version
    assert generations[-1] > 0  # the writer really did save between kills
    assert temp_files_seen > 0, "no kill landed inside a write; the test proved nothing"


def test_a_streamed_save_is_exactly_the_compact_json_text(tmp_path: Path) -> None:
    """Large tables are written in slices; the file must be the same JSON, byte for byte."""
    from sync import storage

    tables = {
        "meta": {"1": {"schema_version": 2}},
        "empty": {},
        "links": {
            str(i): {"name": f"Café ☕ {i}", "n": i, "x": [1.5, None, True], "q": 'a"\\b\n'}
            for i in range(storage.DOCS_PER_PIECE * 2 + 7)
        },
        "encoded": {  # documents kept as their JSON text are written as they are
            **{
                str(i): storage.encode_document({"id": f"t{i}", "name": f"Zoë {i}"})
                for i in range(storage.DOCS_PER_PIECE + 3)
            },
            # ids that are not plain numbers are quoted by the encoder, not as they are
            'sales"force': storage.encode_document({"id": "q"}),
            "²": storage.encode_document({"id": "superscript two"}),
        },
    }
    out = tmp_path / "streamed.json"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        storage.stream_tables(fd, tables)
    finally:
        os.close(fd)
    as_dicts = {**tables, "encoded": {k: json.loads(v) for k, v in tables["encoded"].items()}}
    assert out.read_bytes() == storage.serialise(as_dicts)
    assert json.loads(out.read_text()) == as_dicts
