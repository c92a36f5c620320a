"""Write-ahead intents for remote creates and deletes, so a crash never duplicates a task (rule 13).

A create is the one write that is not naturally idempotent: if the process dies after the service
created the task but before the link was saved, the next run would see an unlinked task and create
it again. So, as mbsync does, every create is written down with a random correlation key *before*
it is sent, in its own small file (`journal.json`, with its own lock, mode 0600), and dropped
only after its outcome is saved in the state store.

On disk the journal is an append-only log, so a write costs what it changes, not the size of the
journal (a rewrite per call made a large import quadratic):

- line 1 is a snapshot, `{"version": 2, "intents": [...]}`, written atomically (temp file, fsync,
  rename; the file it replaces becomes `journal.json.bak`);
- every later line is one batch call: `{"record": [intent, ...]}`, `{"confirm": [[key, remote id,
  confirmed at], ...]}`, `{"saved": [[key, generation], ...]}` or `{"discard": [key, ...]}`,
  appended with one write and one fsync, so the batch is on disk when the call returns. Opening
  replays the lines in order.
- A crash can cut short only the last line (every line is appended and fsynced before the call
  returns): an unterminated last line is a call that never returned, so it is ignored and dropped
  at open. Any other damage is a JournalError naming the file; nothing is silently lost.
- Compaction rewrites the file as a snapshot of what is still pending, atomically as above: when
  the journal becomes empty (a tiny write), when dropped entries outweigh live ones (and pass
  COMPACT_MIN_BYTES), at `trim()`, and at open after a cut-short line. A version 1 journal (one
  JSON document, the snapshot format without the log) is read and rewritten as version 2.

How the engine uses it, for one batch of creates on side T:

1. `journal.record_documents([(key, CREATE, T, payload, run_id), ...])` (what
   `IntentJournal.begin` calls; `record_intents` takes `IntentSpec`s and returns `Intent`s) --
   one fsync'd write for the batch, before any remote call. The payload holds what recovery
   needs (the source task id and side, the canonical task that was sent); never a secret.
2. Send, carrying each intent's `key`: Sales Connect gets it as the `Idempotency-Key` header (a
   replay returns the task created the first time); Salesforce gets it in the external-id field
   `ReminderSync_Key__c` when the org has one (a plain create with the field filled in, found
   again with `find_by_external_id`), otherwise the key stays in the journal only.
3. For each confirmed result: `journal.confirm_many([(key, new_id), ...])`, then
   `store.put_link(...)`, `store.audit(...)` and `store.save()`.
   A definitive refusal (validation error): `journal.discard(key)` and `store.park_error(...)`.
   An ambiguous failure (timeout, connection reset, 5xx after sending): leave the intent alone.
4. After `store.save()`: `journal.mark_saved(keys, store.generation)` notes which version of the
   state file holds their outcome; after the next save (when the `.bak` holds it too)
   `journal.discard_many(keys)`. The mark is on disk, so the two saves may be made by two
   processes (one run each). A state file of a lower generation than a mark is an older copy
   (a restored `.bak`): recovery then settles that intent again.

Updates of linked tasks are journaled too (`IntentKind.UPDATE`, see `sync.journal_adapter`): not
to avoid doubles (an update is idempotent) but so that, after a crash between the write and the
state save, the next run knows the new value is the engine's own and moves the base on.

The journal can also hold `IntentKind.DELETE` intents, but the engine does not journal deletes: a
delete is idempotent (deleting a task that is already gone counts as done), and a crashed run did
not advance its cursors, so the next run reads the same deletion evidence and plans it again.

Recovery, at the start of every run before reading changes (`journal.pending()`):

- an intent with `remote_id` (confirmed, link maybe not saved): put the link from the payload;
- a create with unknown outcome: SC -- resend with the same Idempotency-Key (returns the existing
  task, or creates it now, once); SF -- look the key up (`find_by_external_id`), or without the
  field, look among unlinked tasks created since `intent.created_at` for the earliest one with
  the sent subject, due date and start of the comments; found -> `confirm`, not found ->
  `discard` (the planner will create it again);
- then `store.save()` and `journal.trim()`.

A damaged journal is an error like a damaged state file: intents are never silently dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sync import jsoncodec, paths
from sync.model import Side, frozen_map
from sync.storage import (
    ProcessLock,
    StateFileError,
    StateWriteError,
    atomic_write,
    damaged_file_message,
    lock_path,
    remove_stale_temp_files,
    serialise,
)

JOURNAL_VERSION = 2  # 1 = one JSON document rewritten on every call; still read
JOURNAL_LABEL = "journal"
JOURNAL_CONSEQUENCE = "creates that were in flight when it was written may then be duplicated"
MESSAGE = {"label": JOURNAL_LABEL, "consequence": JOURNAL_CONSEQUENCE}
# Compact once the bytes of dropped entries pass this and outweigh the live ones: a compaction
# costs the live size, paid for by at least as many bytes appended since the last one.
COMPACT_MIN_BYTES = 256 * 1024


class JournalError(StateFileError):
    """The journal file cannot be used as it is."""


class IntentKind(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    UPDATE = "update"  # field values written to a linked task (see sync.journal_adapter)


def new_correlation_key() -> str:
    """A random correlation key (uuid4, 36 characters: fits an SF external-id text field)."""
    return str(uuid.uuid4())


def new_correlation_keys(count: int) -> list[str]:
    """`count` keys as `new_correlation_key` makes them, from one read of the system's random
    source (a 10,000-task import needs 10,000)."""
    random = os.urandom(16 * count)
    keys = []
    for start in range(0, 16 * count, 16):
        raw = bytearray(random[start : start + 16])
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = raw.hex()
        keys.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return keys


@dataclass(frozen=True)
class IntentSpec:
    """What to record; the key is generated when not given."""

    kind: IntentKind
    side: Side  # where the remote call goes
    payload: Mapping[str, Any] = field(default_factory=frozen_map)
    key: str | None = None
    run_id: str = ""


@dataclass(frozen=True)
class Intent:
    """A remote create/delete that was (about to be) sent. `remote_id` None = outcome unknown."""

    key: str
    kind: IntentKind
    side: Side
    payload: Mapping[str, Any]
    created_at: datetime
    run_id: str = ""
    remote_id: str | None = None
    confirmed_at: datetime | None = None
    saved: int = 0  # the state file generation that first held the outcome (0: none yet)

    @property
    def confirmed(self) -> bool:
        return self.remote_id is not None


def _from_json(doc: Mapping[str, Any]) -> Intent:
    confirmed_at = doc.get("confirmed_at")
    return Intent(
        key=doc["key"],
        kind=IntentKind(doc["kind"]),
        side=Side(doc["side"]),
        payload=frozen_map(doc["payload"]),
        created_at=datetime.fromisoformat(doc["created_at"]),
        run_id=doc.get("run_id", ""),
        remote_id=doc.get("remote_id"),
        confirmed_at=datetime.fromisoformat(confirmed_at) if confirmed_at else None,
        saved=int(doc.get("saved") or 0),
    )


def _damaged(path: Path, problem: str) -> JournalError:
    return JournalError(damaged_file_message(path, problem, **MESSAGE))


def _read_bytes(path: Path) -> bytes | None:
    """The journal's bytes; None if there is none. Refuses symlinks and non-regular files."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link; reminder-sync only uses a plain file it wrote itself"
        raise _damaged(path, problem)
    if not stat.S_ISREG(info.st_mode):
        raise _damaged(path, "is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            os.fchmod(handle.fileno(), 0o600)  # tighten a copy restored by hand
        return handle.read()


def _parse_line(path: Path, line: bytes, number: int) -> Any:
    try:
        return jsoncodec.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(path, f"is damaged (line {number} is not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        problem = (
            f"is damaged or cut short (invalid JSON on line {number} at column {exc.colno})"
            if number > 1
            else f"is damaged or cut short (invalid JSON at line {exc.lineno} column {exc.colno})"
        )
        raise _damaged(path, problem) from None


# In memory, each intent is kept as its snapshot document, as a compaction writes it: "key",
# "kind", "side", "payload", "created_at" (ISO 8601), and once set "run_id", "remote_id",
# "confirmed_at", "saved" (what is unset is left out; `_from_json` defaults it). A batch call
# changes a key or two of each document it names, and an `Intent` is made only when asked
# for (`pending`, `get`): making and re-making thousands per import was most of the journal's
# cost.
Docs = dict[str, dict[str, Any]]


@dataclass
class _Loaded:
    intents: Docs
    size: int  # bytes of the file that hold complete lines
    needs_compaction: bool  # an old-format file, or a cut-short last line to drop


def _checked(doc: Any) -> dict[str, Any]:
    """A snapshot document that reads as an intent (ValueError, KeyError... if it does not)."""
    _from_json(doc)
    return doc


def _load_snapshot(path: Path, data: Any) -> Docs:
    if not isinstance(data, dict) or not isinstance(data.get("intents"), list):
        raise _damaged(path, "is not a reminder-sync journal")
    version = data.get("version")
    if not isinstance(version, int) or version > JOURNAL_VERSION:
        raise JournalError(
            f"The journal {path} was written by a newer reminder-sync (version {version!r}). "
            "Nothing was changed. Upgrade reminder-sync to use it."
        )
    intents = {}
    for doc in data["intents"]:
        try:
            intents[doc["key"]] = _checked(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _damaged(path, f"holds an unreadable intent ({exc})") from None
    return intents


def _replay(path: Path, intents: Docs, event: Any, number: int) -> None:
    """Apply one logged batch call to `intents`; JournalError if it does not fit."""
    try:
        if not isinstance(event, dict) or len(event) != 1:
            raise ValueError("not a journal entry")
        [(op, items)] = event.items()
        if op == "record":
            for doc in items:
                if _checked(doc)["key"] in intents:
                    raise ValueError(f"intent {doc['key']} recorded twice")
                intents[doc["key"]] = doc
        elif op == "confirm":
            for key, remote_id, at in items:
                if key not in intents:
                    raise ValueError(f"confirms intent {key}, which is not in the journal")
                datetime.fromisoformat(at)  # a time, or the line is damaged
                intents[key].update(remote_id=str(remote_id), confirmed_at=at)
        elif op == "saved":
            for key, generation in items:
                if key in intents:
                    intents[key]["saved"] = int(generation)
        elif op == "discard":
            for key in items:
                intents.pop(key, None)
        else:
            raise ValueError(f"unknown entry {op!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(path, f"is damaged (line {number} is unreadable: {exc})") from None


def _load(path: Path) -> _Loaded:
    raw = _read_bytes(path)
    if raw is None:
        return _Loaded({}, 0, False)
    if not raw.strip():
        raise _damaged(path, "is empty")
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as every complete write does
    if not lines:  # one unterminated document: a version 1 journal (always written atomically)
        return _Loaded(_load_snapshot(path, _parse_line(path, tail, 1)), len(raw), True)
    intents = _load_snapshot(path, _parse_line(path, lines[0], 1))
    for number, line in enumerate(lines[1:], start=2):
        _replay(path, intents, _parse_line(path, line, number), number)
    # An unterminated last line is a write cut short by a crash: its call never returned.
    return _Loaded(intents, len(raw) - len(tail), bool(tail))


class Journal:
    """The intents file. Every mutating call is on disk (fsync'd) when it returns."""

    def __init__(self, path: Path, lock: ProcessLock, intents: Docs) -> None:
        self.path = path
        self._lock = lock
        self._intents = intents  # key -> snapshot document; insertion order = recording order
        self._live_bytes = {key: len(serialise(doc)) for key, doc in intents.items()}
        self._live_total = sum(self._live_bytes.values())
        self._size = 0  # bytes in the file
        self._fd: int | None = None  # open for appending while the file exists
        self.write_count = 0  # batch calls written (appended or compacted)
        self.compaction_count = 0
        self.bytes_written = 0

    @classmethod
    def open(cls, path: Path | str | None = None) -> Journal:
        """Open (or start) the journal; raises JournalError if it is damaged or too new."""
        path = Path(path) if path is not None else paths.journal_file()
        paths.ensure_private_dir(path.parent)
        lock = ProcessLock(lock_path(path))
        lock.acquire()
        try:
            remove_stale_temp_files(path)
            loaded = _load(path)
            journal = cls(path, lock, loaded.intents)
            journal._size = loaded.size
            if loaded.needs_compaction:
                journal._compact()
            elif loaded.size:
                journal._open_for_append()
                journal._maybe_compact()
            return journal
        except StateFileError as exc:
            lock.release()
            if isinstance(exc, JournalError):
                raise
            raise JournalError(str(exc)) from None
        except BaseException:
            lock.release()
            raise

    # ------------------------------------------------------------ writing

    def _open_for_append(self) -> None:
        self._close_fd()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _compact(self, intents: Docs | None = None) -> None:
        """Rewrite the file as one snapshot of `intents` (default: the current ones)."""
        intents = self._intents if intents is None else intents
        parts = {key: serialise(doc) for key, doc in intents.items()}
        head = b'{"version":%d,"intents":[' % JOURNAL_VERSION
        payload = head + b",".join(parts.values()) + b"]}\n"
        atomic_write(self.path, payload)  # the previous file becomes the .bak
        self._size = len(payload)
        self._live_bytes = {key: len(part) for key, part in parts.items()}
        self._live_total = sum(self._live_bytes.values())
        self.bytes_written += len(payload)
        self.compaction_count += 1
        self._open_for_append()

    def _append(self, payload: bytes) -> None:
        """Append one complete line (ending in a newline) and fsync it; on failure the file is
        as it was."""
        assert self._fd is not None
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(self._fd, view) :]
            getattr(os, "fdatasync", os.fsync)(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never leave half a line for the next append
                os.ftruncate(self._fd, self._size)
            reason = exc.strerror or str(exc)
            hint = " Free some disk space and try again." if exc.errno == errno.ENOSPC else ""
            raise StateWriteError(
                f"Could not save {self.path}: {reason}. The previous version is intact.{hint}"
            ) from None
        self._size += len(payload)
        self.bytes_written += len(payload)

    def _write_event(self, op: str, items: bytes, after: Callable[[], Docs]) -> None:
        """Write one batch call: `items` is the encoded list of the call's items (`after()` =
        the intents it leaves, if there is no file yet)."""
        if self._fd is None:
            self._compact(after())
        else:
            self._append(b'{"%s":%s}\n' % (op.encode("ascii"), items))
        self.write_count += 1

    def _maybe_compact(self) -> None:
        """Compact when empty (cheap) or when dropped entries outweigh the live ones."""
        if self._fd is None:
            return
        garbage = self._size - self._live_total
        if (not self._intents and self._size > 64) or (
            garbage >= COMPACT_MIN_BYTES and garbage >= self._live_total
        ):
            # Optional: the call's own write is already on disk, and a failed compaction
            # leaves the file as it was (the next call tries again).
            with contextlib.suppress(StateWriteError):
                self._compact()

    # ------------------------------------------------------------ recording

    def record_intents(
        self, specs: Iterable[IntentSpec], *, now: datetime | None = None
    ) -> list[Intent]:
        """Record several intents with one write; they are on disk when this returns."""
        entries = []
        for spec in specs:
            kind, side = spec.kind, spec.side
            entries.append(
                (
                    spec.key or new_correlation_key(),
                    kind if type(kind) is IntentKind else IntentKind(kind),
                    side if type(side) is Side else Side(side),
                    dict(spec.payload),  # our own copy
                    spec.run_id,
                )
            )
        docs = self.record_documents(entries, now=now)
        return [_from_json(doc) for doc in docs]

    def record_documents(
        self,
        entries: Iterable[tuple[str, IntentKind, Side, dict[str, Any], str]],
        *,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """`record_intents` for callers that build many: (key, kind, side, payload, run id)
        per intent, the payload a dict the journal may keep (the caller lets go of it).
        Returns the snapshot documents recorded (read-only)."""
        at = (now or datetime.now(UTC)).isoformat()
        docs: list[dict[str, Any]] = []
        known = self._intents
        seen: set[str] = set()
        for key, kind, side, payload, run_id in entries:
            if key in known or key in seen:
                raise ValueError(f"correlation key {key} is already in the journal")
            seen.add(key)
            doc = {
                "key": key,
                "kind": kind._value_,  # not `.value`: an enum property is a slow read
                "side": side._value_,
                "payload": payload,
                "created_at": at,
            }
            if run_id:
                doc["run_id"] = run_id
            docs.append(doc)
        if not docs:
            return docs
        # one encoding for the batch; refuses a secret or an unsavable value before any write
        items = serialise(docs)
        self._write_event("record", items, lambda: {**known, **{d["key"]: d for d in docs}})
        each = len(items) // len(docs)  # what each adds to the file, near enough
        appended = self._fd is not None
        live = self._live_bytes
        for doc in docs:
            known[doc["key"]] = doc
            if appended and doc["key"] not in live:
                live[doc["key"]] = each
                self._live_total += each
        return docs

    def record_intent(
        self,
        kind: IntentKind,
        side: Side,
        correlation_key: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        run_id: str = "",
    ) -> Intent:
        """Record one intent (a fresh uuid4 key when `correlation_key` is None)."""
        spec = IntentSpec(kind, side, frozen_map(payload), correlation_key, run_id)
        return self.record_intents([spec])[0]

    def confirm_many(
        self, results: Iterable[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        """Record the remote ids of sent intents: (correlation key, remote id) pairs."""
        at_text = (now or datetime.now(UTC)).isoformat()
        known = self._intents
        items: list[list[str]] = []
        for key, remote_id in results:
            if key not in known:
                raise KeyError(f"no intent {key} in the journal")
            items.append([key, remote_id, at_text])
        if not items:
            return
        body = serialise(items)  # one encoding for the batch

        def after() -> Docs:
            docs = {key: dict(doc) for key, doc in known.items()}
            for key, remote_id, at in items:
                docs[key].update(remote_id=remote_id, confirmed_at=at)
            return docs

        self._write_event("confirm", body, after)
        each = len(body) // len(items) + 1  # what each adds to the file, near enough
        live = self._live_bytes
        for key, remote_id, at in items:  # on disk: now in memory too
            known[key].update(remote_id=remote_id, confirmed_at=at)
            live[key] = live.get(key, 0) + each
        self._live_total += each * len(items)
        self._maybe_compact()

    def confirm(self, key: str, remote_id: str) -> Intent:
        self.confirm_many([(key, remote_id)])
        return _from_json(self._intents[key])

    def mark_saved(self, keys: Iterable[str], generation: int) -> None:
        """Note that version `generation` of the state file holds these intents' outcome (one
        write; an intent keeps its first mark)."""
        known = self._intents
        marked = [k for k in dict.fromkeys(keys) if k in known and not known[k].get("saved")]
        if not marked:
            return
        body = serialise([[key, generation] for key in marked])

        def after() -> Docs:
            docs = {key: dict(doc) for key, doc in known.items()}
            for key in marked:
                docs[key]["saved"] = generation
            return docs

        self._write_event("saved", body, after)
        each = len(body) // len(marked) + 1
        live = self._live_bytes
        for key in marked:
            known[key]["saved"] = generation
            live[key] = live.get(key, 0) + each
        self._live_total += each * len(marked)
        self._maybe_compact()

    def discard_many(self, keys: Iterable[str]) -> None:
        """Drop intents that definitely did not happen (or whose recovery is settled)."""
        gone = list(dict.fromkeys(key for key in keys if key in self._intents))
        if not gone:
            return
        self._write_event("discard", serialise(gone), dict)
        known, live = self._intents, self._live_bytes
        for key in gone:
            del known[key]
            self._live_total -= live.pop(key, 0)
        self._maybe_compact()

    def discard(self, key: str) -> None:
        self.discard_many([key])

    def trim(self) -> int:
        """Drop confirmed intents; call once their outcome is saved in the store. Returns count.

        Compacts the file: what is left is the few intents whose outcome is still unknown."""
        remaining = {k: d for k, d in self._intents.items() if d.get("remote_id") is None}
        dropped = len(self._intents) - len(remaining)
        if dropped:
            self._compact(remaining)
            self._intents = remaining
            self.write_count += 1
        return dropped

    # ------------------------------------------------------------ reading

    def pending(self) -> list[Intent]:
        """Every intent still in the journal, oldest first (confirmed ones not yet trimmed too)."""
        return [_from_json(doc) for doc in self._intents.values()]

    def pending_documents(self) -> list[dict[str, Any]]:
        """`pending` as the snapshot documents themselves (read-only; no `Intent` made): for
        a caller that looks through thousands (after an import, until the next save)."""
        return list(self._intents.values())

    def get(self, key: str) -> Intent | None:
        doc = self._intents.get(key)
        return None if doc is None else _from_json(doc)

    def __len__(self) -> int:
        return len(self._intents)

    def close(self) -> None:
        self._close_fd()
        self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
