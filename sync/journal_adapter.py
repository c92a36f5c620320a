"""The engine's view of the write-ahead journal: create intents with correlation keys.

An intent is on disk (fsynced) before its create is sent, and leaves the journal only after the
link it produced is saved in the state file. After a crash, the next run finds the intents still
pending and settles each one before planning (see `SyncEngine._recover`), so a create that
reached the service is linked, never sent again under a new key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.model import Side, Task
from sync.storage import StateFileError, atomic_write, read_json_file, serialise
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


class IntentJournal:
    """Pending create intents in one small JSON file, rewritten atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: dict[str, CreateIntent] = {}
        data = read_json_file(path)
        if data is not None:
            try:
                for doc in data.get("intents", []):
                    intent = CreateIntent.from_json(doc)
                    self._pending[intent.key] = intent
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise StateFileError(
                    f"The journal {path} is damaged ({exc}). Nothing was changed. It lists "
                    "creates that may have been sent; move it away only if you accept that the "
                    "next run may create those tasks a second time."
                ) from None

    def pending(self) -> list[CreateIntent]:
        return list(self._pending.values())

    def begin(self, intents: Sequence[CreateIntent]) -> None:
        """Record intents durably (returns after fsync)."""
        for intent in intents:
            self._pending[intent.key] = intent
        self._write()

    def finish(self, keys: Iterable[str]) -> None:
        changed = False
        for key in keys:
            changed |= self._pending.pop(key, None) is not None
        if changed:
            self._write()

    def _write(self) -> None:
        payload = serialise(
            {"version": 1, "intents": [i.to_json() for i in self._pending.values()]}
        )
        atomic_write(self.path, payload, keep_backup=False)
