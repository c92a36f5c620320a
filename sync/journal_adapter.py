"""The engine's view of the write-ahead journal: create and update intents.

An intent is on disk (fsynced) before its write is sent, and leaves the journal only after the
outcome is saved in the state file twice (the file and its .bak; the first save is marked in the
journal, so the second may come in a later process). After a crash, the next run
finds the intents still pending and settles each one before planning: a create that reached the
service is linked, never sent again under a new key (`SyncEngine._recover`); an update whose
values the service holds moves the link's base on, so the engine's own write is not taken for a
user's edit (`SyncEngine._settle_updates`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sync.journal import IntentKind, Journal
from sync.model import Side, Task, quick_init
from sync.store import task_from_json, task_to_json


def task_row(task: Task) -> list[Any]:
    """A task as the journal keeps it: its five values in `FIELDS` order (no field names: a
    10,000-task import journals 10,000 of them, each fsynced before its batch is sent)."""
    due = task.due_date
    return [task.name, task.status, task.priority, due.isoformat() if due else None, task.details]


def task_from_row(row: Sequence[Any] | dict[str, Any]) -> Task:
    """`task_row` read back; a dict is the older journal's form (`task_to_json`)."""
    if isinstance(row, dict):
        return task_from_json(row)  # type: ignore[return-value]
    name, status, priority, due, details = row
    return Task(name, status, priority, date.fromisoformat(due) if due else None, details)


@quick_init
@dataclass(frozen=True)
class CreateIntent:
    key: str  # correlation key: SC Idempotency-Key, SF external id
    target: Side  # where the task is being created
    source_id: str  # the task it copies, on the other side
    fields: Task  # exactly what is sent
    base: Task  # the link's base once confirmed
    notes: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    run_id: str = ""
    replaces_link: str | None = None  # a restore replaces the link to the deleted task
    remote_id: str | None = None  # known once the service confirmed the create
    saved: int = 0  # the state file generation that first held the outcome (see StateSaver)

    def to_json(self, *, with_time: bool = True) -> dict[str, Any]:
        """The journal's record of this create: only what recovery needs, and the base only
        when it differs from the fields sent (it rarely does: a cut for Salesforce keeps the
        full text in the base). `with_time=False`: without `created_at` (the journal's own
        record holds it)."""
        doc = {"kind": "create", "key": self.key, **self.payload(with_time=with_time)}
        if self.run_id:
            doc["run_id"] = self.run_id
        return doc

    def payload(self, *, with_time: bool = True) -> dict[str, Any]:
        """`to_json` without what the journal's own record of an intent holds (key, kind,
        run)."""
        doc: dict[str, Any] = {
            "target": self.target._value_,  # not `.value`: an enum property is a slow read
            "source_id": self.source_id,
            "fields": task_row(self.fields),
        }
        if self.base is not self.fields and self.base != self.fields:
            doc["base"] = task_row(self.base)
        if self.notes:
            doc["notes"] = dict(self.notes)
        if self.created_at and with_time:
            doc["created_at"] = self.created_at.isoformat()
        if self.replaces_link:
            doc["replaces_link"] = self.replaces_link
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CreateIntent:
        created = doc.get("created_at")
        fields = task_from_row(doc["fields"])
        base = doc.get("base")
        return cls(
            key=doc["key"],
            target=Side(doc["target"]),
            source_id=doc["source_id"],
            fields=fields,
            base=fields if base is None else task_from_row(base),
            notes=dict(doc.get("notes") or {}),
            created_at=(
                created
                if isinstance(created, datetime) or created is None
                else datetime.fromisoformat(created)
            ),
            run_id=doc.get("run_id", ""),
            replaces_link=doc.get("replaces_link"),
        )


@dataclass(frozen=True)
class UpdateIntent:
    """Field values being written to one side of a link (canonical values)."""

    key: str
    link_key: str  # "sc_id|sf_id"
    target: Side  # the side being written
    fields: tuple[str, ...]  # the fields written
    before: Task  # the link's base when the write was sent
    written: Task  # `before` with the written values: the base once the write is confirmed
    run_id: str = ""
    saved: int = 0  # the state file generation that first held the outcome (see StateSaver)

    @property
    def target_id(self) -> str:
        sc_id, _, sf_id = self.link_key.partition("|")
        return sc_id if self.target is Side.SALESCONNECT else sf_id

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "update",
            "key": self.key,
            "link_key": self.link_key,
            "target": self.target.value,
            "fields": list(self.fields),
            "before": task_to_json(self.before),
            "written": task_to_json(self.written),
            "run_id": self.run_id,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UpdateIntent:
        return cls(
            key=doc["key"],
            link_key=doc["link_key"],
            target=Side(doc["target"]),
            fields=tuple(doc["fields"]),
            before=task_from_json(doc["before"]),  # type: ignore[arg-type]
            written=task_from_json(doc["written"]),  # type: ignore[arg-type]
            run_id=doc.get("run_id", ""),
        )


class IntentJournal:
    """Create and update intents kept in `sync.journal.Journal` (its own file, lock and fsync).

    Flow per batch: `begin` (on disk before sending), `confirm` (remote ids, on disk before the
    state save), then `finish` once the links are saved. An intent found confirmed at start-up
    only needs its link; an unconfirmed one needs a lookup (see `SyncEngine._recover`).
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    @classmethod
    def open(cls, path: Path) -> IntentJournal:
        return cls(Journal.open(path))

    def close(self) -> None:
        self._journal.close()

    def has_pending_creates(self) -> bool:
        """Any create in the journal (cheap: nothing is read back)."""
        return any(doc["kind"] == "create" for doc in self._journal.pending_documents())

    def held_creates(self, generation: int) -> list[str]:
        """The keys of the creates whose outcome a state file of `generation` holds (a save
        marked them with that generation or an older one): only their trim is due."""
        return [
            doc["key"]
            for doc in self._journal.pending_documents()
            if doc["kind"] == "create" and 0 < doc.get("saved", 0) <= generation
        ]

    def pending(self, *, held_by: int = 0) -> list[CreateIntent]:
        """The creates in the journal, oldest first; `held_by`: without those a state file of
        that generation holds (`held_creates`), which need no recovery (after a big import,
        thousands of them wait for the next run's save)."""
        out = []
        for entry in self._journal.pending_documents():
            saved = entry.get("saved", 0)
            if entry["kind"] != "create" or 0 < saved <= held_by:
                continue
            doc = dict(entry["payload"])
            doc["key"] = entry["key"]
            doc.setdefault("created_at", entry["created_at"])  # left out when the same
            doc.setdefault("run_id", entry.get("run_id", ""))
            intent = CreateIntent.from_json(doc)
            out.append(dataclasses.replace(intent, remote_id=entry.get("remote_id"), saved=saved))
        return out

    def pending_updates(self) -> list[UpdateIntent]:
        out = []
        for entry in self._journal.pending_documents():
            if entry["kind"] == "update":
                doc = {"run_id": entry.get("run_id", ""), **entry["payload"], "key": entry["key"]}
                intent = UpdateIntent.from_json(doc)
                out.append(dataclasses.replace(intent, saved=entry.get("saved", 0)))
        return out

    def begin(self, intents: Sequence[CreateIntent | UpdateIntent]) -> None:
        """Record intents durably, with one write (returns after fsync).

        What the journal's own record holds (key, kind, run, and the time when every create
        of the batch has the same) is not repeated in the payload."""
        times = {i.created_at for i in intents if isinstance(i, CreateIntent)}
        at = times.pop() if len(times) == 1 and None not in times else None
        entries = []
        for intent in intents:
            if isinstance(intent, CreateIntent):
                payload, kind = intent.payload(with_time=at is None), IntentKind.CREATE
            else:
                payload, kind = intent.to_json(), IntentKind.UPDATE
                del payload["key"], payload["kind"], payload["run_id"]
            entries.append((intent.key, kind, intent.target, payload, intent.run_id))
        self._journal.record_documents(entries, now=at)

    def confirm(self, results: Iterable[tuple[str, str]]) -> None:
        pairs = list(results)
        if pairs:
            self._journal.confirm_many(pairs)

    def mark_saved(self, keys: Iterable[str], generation: int) -> None:
        """Note that version `generation` of the state file holds these intents' outcome (the
        `.bak` may not yet)."""
        self._journal.mark_saved(keys, generation)

    def finish(self, keys: Iterable[str]) -> None:
        """Drop intents whose outcome is saved in the state file (or that never happened)."""
        self._journal.discard_many(list(keys))
