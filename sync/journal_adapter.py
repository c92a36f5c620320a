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
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.journal import IntentKind, IntentSpec, Journal
from sync.model import Side, Task
from sync.store import task_from_json, task_to_json


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

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "create",
            "key": self.key,
            "target": self.target.value,
            "source_id": self.source_id,
            "fields": task_to_json(self.fields),
            "base": task_to_json(self.base),
            "notes": dict(self.notes),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "run_id": self.run_id,
            "replaces_link": self.replaces_link,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CreateIntent:
        created = doc.get("created_at")
        return cls(
            key=doc["key"],
            target=Side(doc["target"]),
            source_id=doc["source_id"],
            fields=task_from_json(doc["fields"]),  # type: ignore[arg-type]
            base=task_from_json(doc["base"]),  # type: ignore[arg-type]
            notes=dict(doc.get("notes") or {}),
            created_at=datetime.fromisoformat(created) if created else None,
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

    def pending(self) -> list[CreateIntent]:
        out = []
        for entry in self._journal.pending():
            if entry.kind is not IntentKind.CREATE:
                continue
            doc = dict(entry.payload)
            doc["key"] = entry.key
            doc.setdefault("created_at", entry.created_at.isoformat())
            intent = CreateIntent.from_json(doc)
            out.append(dataclasses.replace(intent, remote_id=entry.remote_id, saved=entry.saved))
        return out

    def pending_updates(self) -> list[UpdateIntent]:
        out = []
        for entry in self._journal.pending():
            if entry.kind is IntentKind.UPDATE:
                intent = UpdateIntent.from_json({**entry.payload, "key": entry.key})
                out.append(dataclasses.replace(intent, saved=entry.saved))
        return out

    def begin(self, intents: Sequence[CreateIntent | UpdateIntent]) -> None:
        """Record intents durably, with one write (returns after fsync)."""
        specs = []
        for intent in intents:
            payload = intent.to_json()
            payload.pop("key")
            kind = IntentKind.UPDATE if isinstance(intent, UpdateIntent) else IntentKind.CREATE
            specs.append(
                IntentSpec(kind, intent.target, payload, key=intent.key, run_id=intent.run_id)
            )
        self._journal.record_intents(specs)

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
