"""What the engine tells its listeners: the TUI bridge, the CLI printer, a test.

The engine never knows who listens. Listeners are plain callables invoked on the engine's event
loop; a listener that raises is logged and dropped from that one delivery, never allowed to break
a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sync.model import Conflict, GuardTrip, Side

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """How a run ended; the CLI maps it to an exit code."""

    DONE = "done"  # everything in the plan was written (or there was nothing to do)
    CONFLICTS = "conflicts"  # done, but conflicts wait for the user
    GUARD = "guard"  # the mass-delete guard stopped the run before any delete
    LIMIT = "limit"  # a daily API limit ended the run; `retry_at` says when to go on
    FAILED = "failed"  # the run could not finish (auth, network, corrupt data...)
    DISABLED = "disabled"  # sync is switched off: nothing was read or written


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One line of a plan, readable by a person (`sync --dry-run`) and by a script (--json)."""

    action: str  # create | update | delete | link | unlink | set_base
    target: str  # "salesconnect" | "salesforce" | "" for local-only steps
    sc_id: str | None
    sf_id: str | None
    fields: tuple[str, ...] = ()
    reason: str = ""

    def describe(self) -> str:
        where = Side(self.target).label if self.target else "local state"
        ids = " / ".join(i for i in (self.sc_id, self.sf_id) if i) or "new task"
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.action} on {where} [{ids}]{detail}{why}"


@dataclass(frozen=True)
class RunSummary:
    """The result of one run. Counts are per side: {"salesconnect": n, "salesforce": m}."""

    run_id: str
    reason: str
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    dry_run: bool = False
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    conflicts: int = 0  # conflicts waiting after this run (new and old)
    new_conflicts: int = 0
    errors: int = 0  # tasks parked with an error by this run
    skipped: int = 0
    guard: GuardTrip | None = None
    retry_at: datetime | None = None
    message: str = ""
    planned: tuple[PlannedChange, ...] = ()

    @property
    def writes(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values()) + sum(self.deleted.values())

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "reason": self.reason,
            "outcome": str(self.outcome),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "dry_run": self.dry_run,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "deleted": dict(self.deleted),
            "linked": self.linked,
            "conflicts": self.conflicts,
            "new_conflicts": self.new_conflicts,
            "errors": self.errors,
            "skipped": self.skipped,
            "guard": None
            if self.guard is None
            else {
                "side": str(self.guard.side),
                "deletes": self.guard.deletes,
                "linked": self.guard.linked,
                "message": self.guard.message,
            },
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
            "message": self.message,
            "planned": [
                {
                    "action": p.action,
                    "target": p.target,
                    "sc_id": p.sc_id,
                    "sf_id": p.sf_id,
                    "fields": list(p.fields),
                    "reason": p.reason,
                }
                for p in self.planned
            ],
        }


@dataclass(frozen=True)
class SyncStarted:
    run_id: str
    reason: str


@dataclass(frozen=True)
class SyncProgress:
    """`phase` is one of read | plan | write | record; `total` may be 0 when unknown."""

    run_id: str
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class TasksChanged:
    """These dashboard row keys (see `Row.key`) may look different now."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class ConflictFound:
    conflict: Conflict


@dataclass(frozen=True)
class SyncFinished:
    run_id: str
    summary: RunSummary


@dataclass(frozen=True)
class SyncFailed:
    run_id: str
    category: str  # auth | validation | transient | limit | internal | ...
    message: str  # one line: what happened and what to do; never holds a secret
    retry_at: datetime | None = None


@dataclass(frozen=True)
class StatusChanged:
    """Settings, connections or the schedule changed: re-read `engine.status()`."""


Event = (
    SyncStarted
    | SyncProgress
    | TasksChanged
    | ConflictFound
    | SyncFinished
    | SyncFailed
    | StatusChanged
)
Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers, in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it again (safe to call twice)."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                # A broken listener (say, a closed UI) must never stop a sync.
                log.exception("event listener failed on %s", type(event).__name__)
