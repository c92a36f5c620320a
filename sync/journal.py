"""Write-ahead intents for remote creates and deletes, so a crash never duplicates a task (rule 13).

A create is the one write that is not naturally idempotent: if the process dies after the service
created the task but before the link was saved, the next run would see an unlinked task and create
it again. So, as mbsync does, every create is written down with a random correlation key *before*
it is sent, in its own small file (`journal.json`, atomic like the state file, with
its own lock), and dropped only after its outcome is saved in the state store.

How the engine uses it, for one batch of creates on side T:

1. `intents = journal.record_intents([IntentSpec(CREATE, T, payload=...), ...])` -- one fsync'd
   write for the batch, before any remote call. The payload holds what recovery needs (the
   source task id and side, the canonical task that was sent); never a secret.
2. Send, carrying each intent's `key`: Sales Connect gets it as the `Idempotency-Key` header (a
   replay returns the task created the first time); Salesforce gets it in the external-id field
   `ReminderSync_Key__c` when the org has one (a plain create with the field filled in, found
   again with `find_by_external_id`), otherwise the key stays in the journal only.
3. For each confirmed result: `journal.confirm_many([(key, new_id), ...])`, then
   `store.put_link(...)`, `store.audit(...)` and `store.save()`.
   A definitive refusal (validation error): `journal.discard(key)` and `store.park_error(...)`.
   An ambiguous failure (timeout, connection reset, 5xx after sending): leave the intent alone.
4. After `store.save()`: `journal.trim()` drops the confirmed intents.

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

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sync import paths
from sync.model import Side, frozen_map
from sync.storage import (
    ProcessLock,
    StateFileError,
    atomic_write,
    damaged_file_message,
    lock_path,
    read_json_file,
    remove_stale_temp_files,
    serialise,
)

JOURNAL_VERSION = 1
JOURNAL_LABEL = "journal"
JOURNAL_CONSEQUENCE = "creates that were in flight when it was written may then be duplicated"


class JournalError(StateFileError):
    """The journal file cannot be used as it is."""


class IntentKind(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    UPDATE = "update"  # field values written to a linked task (see sync.journal_adapter)


def new_correlation_key() -> str:
    """A random correlation key (uuid4, 36 characters: fits an SF external-id text field)."""
    return str(uuid.uuid4())


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

    @property
    def confirmed(self) -> bool:
        return self.remote_id is not None


def _to_json(intent: Intent) -> dict[str, Any]:
    return {
        "key": intent.key,
        "kind": intent.kind.value,
        "side": intent.side.value,
        "payload": dict(intent.payload),
        "created_at": intent.created_at.isoformat(),
        "run_id": intent.run_id,
        "remote_id": intent.remote_id,
        "confirmed_at": intent.confirmed_at.isoformat() if intent.confirmed_at else None,
    }


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
    )


class Journal:
    """The intents file. Every mutating call is on disk (fsync'd) when it returns."""

    def __init__(self, path: Path, lock: ProcessLock, intents: dict[str, Intent]) -> None:
        self.path = path
        self._lock = lock
        self._intents = intents  # insertion order = recording order
        self.write_count = 0

    @classmethod
    def open(cls, path: Path | str | None = None) -> Journal:
        """Open (or start) the journal; raises JournalError if it is damaged or too new."""
        path = Path(path) if path is not None else paths.journal_file()
        paths.ensure_private_dir(path.parent)
        lock = ProcessLock(lock_path(path))
        lock.acquire()
        try:
            remove_stale_temp_files(path)
            return cls(path, lock, cls._load(path))
        except StateFileError as exc:
            lock.release()
            if isinstance(exc, JournalError):
                raise
            raise JournalError(str(exc)) from None
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def _load(path: Path) -> dict[str, Intent]:
        message = {"label": JOURNAL_LABEL, "consequence": JOURNAL_CONSEQUENCE}
        data = read_json_file(path, **message)
        if data is None:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("intents"), list):
            raise JournalError(
                damaged_file_message(path, "is not a reminder-sync journal", **message)
            )
        version = data.get("version")
        if not isinstance(version, int) or version > JOURNAL_VERSION:
            raise JournalError(
                f"The journal {path} was written by a newer reminder-sync (version {version!r}). "
                "Nothing was changed. Upgrade reminder-sync to use it."
            )
        intents = {}
        for doc in data["intents"]:
            try:
                intent = _from_json(doc)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problem = f"holds an unreadable intent ({exc})"
                raise JournalError(damaged_file_message(path, problem, **message)) from None
            intents[intent.key] = intent
        return intents

    def _write(self) -> None:
        payload = serialise(
            {"version": JOURNAL_VERSION, "intents": [_to_json(i) for i in self._intents.values()]}
        )
        atomic_write(self.path, payload)
        self.write_count += 1

    def _commit(self, intents: dict[str, Intent]) -> None:
        """Swap in the new intents only once they are on disk."""
        previous, self._intents = self._intents, intents
        try:
            self._write()
        except BaseException:
            self._intents = previous
            raise

    # ------------------------------------------------------------ recording

    def record_intents(
        self, specs: Iterable[IntentSpec], *, now: datetime | None = None
    ) -> list[Intent]:
        """Record several intents with one write; they are on disk when this returns."""
        at = now or datetime.now(UTC)
        recorded = []
        intents = dict(self._intents)
        for spec in specs:
            key = spec.key or new_correlation_key()
            if key in intents:
                raise ValueError(f"correlation key {key} is already in the journal")
            intent = Intent(
                key,
                IntentKind(spec.kind),
                Side(spec.side),
                frozen_map(spec.payload),
                at,
                spec.run_id,
            )
            serialise(_to_json(intent))  # refuses a secret or an unsavable value up front
            intents[key] = intent
            recorded.append(intent)
        if recorded:
            self._commit(intents)
        return recorded

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
        at = now or datetime.now(UTC)
        intents = dict(self._intents)
        for key, remote_id in results:
            intent = intents.get(key)
            if intent is None:
                raise KeyError(f"no intent {key} in the journal")
            intents[key] = replace(intent, remote_id=remote_id, confirmed_at=at)
        self._commit(intents)

    def confirm(self, key: str, remote_id: str) -> Intent:
        self.confirm_many([(key, remote_id)])
        return self._intents[key]

    def discard_many(self, keys: Iterable[str]) -> None:
        """Drop intents that definitely did not happen (or whose recovery is settled)."""
        intents = dict(self._intents)
        removed = [intents.pop(key, None) for key in keys]
        if any(intent is not None for intent in removed):
            self._commit(intents)

    def discard(self, key: str) -> None:
        self.discard_many([key])

    def trim(self) -> int:
        """Drop confirmed intents; call once their outcome is saved in the store. Returns count."""
        intents = {key: i for key, i in self._intents.items() if not i.confirmed}
        dropped = len(self._intents) - len(intents)
        if dropped:
            self._commit(intents)
        return dropped

    # ------------------------------------------------------------ reading

    def pending(self) -> list[Intent]:
        """Every intent still in the journal, oldest first (confirmed ones not yet trimmed too)."""
        return list(self._intents.values())

    def get(self, key: str) -> Intent | None:
        return self._intents.get(key)

    def __len__(self) -> int:
        return len(self._intents)

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
