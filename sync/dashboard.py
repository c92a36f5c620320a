"""The dashboard's model: one row per link, unlinked tasks on their own side, a state per row.

Pure: built from the links, the last known version of every task on each side (the mirror), the
waiting conflicts, the parked errors and the planner's skip reasons. The TUI and `status` read it;
nothing here talks to a service.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sync.mapping import project_to_sf
from sync.model import FIELDS, Conflict, Link, Note, Side, SideTask


class RowState(StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"  # a change waits for the next run
    CONFLICT = "conflict"  # the user must decide
    ERROR = "error"  # the last write of this task failed; retried by the next run
    NOT_SYNCED = "not_synced"  # out of scope, unmapped value, or not imported (reason says)


@dataclass(frozen=True)
class TaskError:
    """A task parked with an error by a run (the run itself went on)."""

    side: Side
    task_id: str
    category: str  # auth | validation | transient | not_found | conflict | limit | internal
    message: str
    at: datetime | None = None
    action: str = ""  # what failed: create | update | delete


@dataclass(frozen=True)
class Row:
    """One line of the dashboard. `key` is stable for as long as the pairing does not change."""

    key: str
    sc: SideTask | None
    sf: SideTask | None
    state: RowState
    reason: str = ""
    conflict_id: str | None = None
    link: Link | None = None
    unmapped: tuple[str, ...] = field(default=())  # fields marked "not synced" on this row


def unlinked_key(side: Side, task_id: str) -> str:
    prefix = "sc" if side is Side.SALESCONNECT else "sf"
    return f"{prefix}:{task_id}"


def _differs(task: SideTask | None, link: Link, side: Side) -> list[str]:
    """Fields of `task` that differ from the link's base (a change not yet carried across).

    Salesforce is compared with the base as Salesforce holds it (text cut to fit), and a
    status/priority it holds without an SC equivalent is "not synced", not pending.
    """
    if task is None or task.deleted:
        return []
    expected = link.base if side is Side.SALESCONNECT else project_to_sf(link.base)
    changed = []
    for name in FIELDS:
        value = task.fields.get(name)
        if value is None and name in ("status", "priority"):
            continue
        if value != expected.get(name):
            changed.append(name)
    return changed


def build_rows(
    links: Iterable[Link],
    sc_tasks: Mapping[str, SideTask],
    sf_tasks: Mapping[str, SideTask],
    conflicts: Iterable[Conflict],
    errors: Iterable[TaskError],
    skipped: Mapping[tuple[Side, str], str],
) -> list[Row]:
    """Rows for every link, then every unlinked task of either side that is not deleted."""
    by_pair: dict[tuple[str, str], Conflict] = {}
    by_task: dict[tuple[Side, str], Conflict] = {}
    for conflict in conflicts:
        by_pair[(conflict.sc_id, conflict.sf_id)] = conflict
        if conflict.sc_id:
            by_task[(Side.SALESCONNECT, conflict.sc_id)] = conflict
        if conflict.sf_id:
            by_task[(Side.SALESFORCE, conflict.sf_id)] = conflict
    error_by_task = {(e.side, e.task_id): e for e in errors}

    rows: list[Row] = []
    linked_sc: set[str] = set()
    linked_sf: set[str] = set()
    for link in links:
        linked_sc.add(link.sc_id)
        linked_sf.add(link.sf_id)
        sc = sc_tasks.get(link.sc_id)
        sf = sf_tasks.get(link.sf_id)
        unmapped = tuple(n for n, note in link.notes.items() if note == Note.UNMAPPED)
        conflict = by_pair.get((link.sc_id, link.sf_id)) or by_task.get(
            (Side.SALESCONNECT, link.sc_id)
        )
        error = error_by_task.get((Side.SALESCONNECT, link.sc_id)) or error_by_task.get(
            (Side.SALESFORCE, link.sf_id)
        )
        if conflict is not None:
            state, reason = RowState.CONFLICT, conflict.message or _conflict_reason(conflict)
        elif error is not None:
            state, reason = RowState.ERROR, f"{error.category}: {error.message}"
        else:
            pending = _differs(sc, link, Side.SALESCONNECT) + _differs(sf, link, Side.SALESFORCE)
            deleted = [t.side.label for t in (sc, sf) if t is not None and t.deleted]
            if deleted:
                state, reason = RowState.PENDING, f"deleted in {deleted[0]}; not yet carried"
            elif pending:
                state = RowState.PENDING
                reason = "changed: " + ", ".join(sorted(set(pending)))
            elif unmapped:
                state = RowState.NOT_SYNCED
                reason = "not synced: " + ", ".join(_unmapped_reason(sf, n) for n in unmapped)
            else:
                state, reason = RowState.IN_SYNC, ""
        rows.append(
            Row(
                key=link.key,
                sc=sc,
                sf=sf,
                state=state,
                reason=reason,
                conflict_id=conflict.id if conflict else None,
                link=link,
                unmapped=unmapped,
            )
        )

    for side, tasks, linked in (
        (Side.SALESCONNECT, sc_tasks, linked_sc),
        (Side.SALESFORCE, sf_tasks, linked_sf),
    ):
        for task_id, task in tasks.items():
            if task_id in linked or task.deleted:
                continue
            conflict = by_task.get((side, task_id))
            error = error_by_task.get((side, task_id))
            if conflict is not None:
                state, reason = RowState.CONFLICT, conflict.message or _conflict_reason(conflict)
            elif error is not None:
                state, reason = RowState.ERROR, f"{error.category}: {error.message}"
            elif not task.in_scope:
                state, reason = RowState.NOT_SYNCED, task.scope_reason or "out of scope"
            elif (side, task_id) in skipped:
                state, reason = RowState.NOT_SYNCED, skipped[(side, task_id)]
            else:
                state, reason = RowState.PENDING, f"new; will be copied to {side.other.label}"
            rows.append(
                Row(
                    key=unlinked_key(side, task_id),
                    sc=task if side is Side.SALESCONNECT else None,
                    sf=task if side is Side.SALESFORCE else None,
                    state=state,
                    reason=reason,
                    conflict_id=conflict.id if conflict else None,
                )
            )
    return rows


# Builds the rows of the given SC and SF task ids and of their current link partners (None:
# every row). Supplied by the engine, which knows the store.
RowBuilder = Callable[[set[str] | None, set[str] | None], list[Row]]


def ids_of_key(key: str) -> tuple[str | None, str | None]:
    """(SC id, SF id) named by a row key: `sc:<id>`, `sf:<id>` or a link's `<sc id>|<sf id>`."""
    if key.startswith("sc:"):
        return key[3:], None
    if key.startswith("sf:"):
        return None, key[3:]
    sc_id, bar, sf_id = key.rpartition("|")  # an SF id never holds "|"
    return (sc_id, sf_id) if bar else (None, None)


def _row_ids(row: Row) -> tuple[str | None, str | None]:
    if row.link is not None:
        return row.link.sc_id, row.link.sf_id
    return (row.sc.id if row.sc else None), (row.sf.id if row.sf else None)


class RowCache:
    """The dashboard rows, kept between calls and patched as tasks change.

    Building every row costs O(links) (each link compares both sides with its base), so the
    rows are built whole once; afterwards only the rows of the tasks named by `touch` are built
    again (with their link partners, old and new), and the count of rows per state is kept up to
    date, so `count` never walks the rows. `reset` asks for a whole rebuild (settings changed).
    """

    def __init__(self, build: RowBuilder) -> None:
        self._build = build
        self._rows: dict[str, Row] | None = None
        self._by_sc: dict[str, str] = {}
        self._by_sf: dict[str, str] = {}
        self._states: Counter[RowState] = Counter()
        self._dirty_sc: set[str] = set()
        self._dirty_sf: set[str] = set()

    @property
    def is_built(self) -> bool:
        return self._rows is not None

    def reset(self) -> None:
        self._rows = None
        self._dirty_sc.clear()
        self._dirty_sf.clear()

    def touch(self, keys: Iterable[str] = (), *, sc_ids: Iterable[str] = (), sf_ids=()) -> None:
        """These rows (keys) or tasks (ids) changed: build their rows again when next asked."""
        if self._rows is None:
            return
        for key in keys:
            sc_id, sf_id = ids_of_key(key)
            if sc_id:
                self._dirty_sc.add(sc_id)
            if sf_id:
                self._dirty_sf.add(sf_id)
        self._dirty_sc.update(i for i in sc_ids if i)
        self._dirty_sf.update(i for i in sf_ids if i)

    def rows(self) -> list[Row]:
        return list(self._fresh().values())

    def built(self) -> dict[str, Row]:
        """The rows as last built, by key: a task changed since shows as it was, until
        `patch_some` or `rows` builds it again."""
        return dict(self._rows if self._rows is not None else self._fresh())

    def patch_some(self, limit: int) -> bool:
        """Build again the rows of at most about `limit` changed tasks (and their partners).
        Returns whether none are left, so that `rows()` is cheap now. A screen calls this a
        slice per loop turn after a big burst (an import marks thousands of tasks), so no one
        call holds its loop for long; a task changed meanwhile is simply marked again."""
        if self._rows is None:
            self._fresh()
            return True
        sc_ids = _take(self._dirty_sc, limit)
        sf_ids = _take(self._dirty_sf, limit - len(sc_ids))
        if sc_ids or sf_ids:
            self._patch(sc_ids, sf_ids)
        return not (self._dirty_sc or self._dirty_sf)

    def count(self, state: RowState) -> int:
        self._fresh()
        return self._states[state]

    # -- keeping it fresh -------------------------------------------------------------------

    def _fresh(self) -> dict[str, Row]:
        if self._rows is None:
            self._rows, self._by_sc, self._by_sf = {}, {}, {}
            self._states.clear()
            self._dirty_sc.clear()
            self._dirty_sf.clear()
            for row in self._build(None, None):
                self._add(row)
        elif self._dirty_sc or self._dirty_sf:
            todo_sc, todo_sf = set(self._dirty_sc), set(self._dirty_sf)
            self._dirty_sc.clear()
            self._dirty_sf.clear()
            self._patch(todo_sc, todo_sf)
        return self._rows

    def _patch(self, todo_sc: set[str], todo_sf: set[str]) -> None:
        done_sc: set[str] = set()
        done_sf: set[str] = set()
        while todo_sc or todo_sf:
            # The old rows of these tasks go. A link row that goes frees its other task, whose
            # row is built again too (it may be unlinked now, or gone).
            freed = [self._remove(self._by_sc.get(i)) for i in todo_sc]
            freed += [self._remove(self._by_sf.get(i)) for i in todo_sf]
            for row in freed:
                if row is not None:
                    sc_id, sf_id = _row_ids(row)
                    if sc_id and sc_id not in done_sc:
                        todo_sc.add(sc_id)
                    if sf_id and sf_id not in done_sf:
                        todo_sf.add(sf_id)
            new_rows = self._build(set(todo_sc), set(todo_sf))
            done_sc |= todo_sc
            done_sf |= todo_sf
            todo_sc, todo_sf = set(), set()
            # A new row may pair a task whose old row is still here (a new link): that row goes,
            # and the task it held on the other side is looked at again.
            for row in new_rows:
                for index, task_id in zip((self._by_sc, self._by_sf), _row_ids(row), strict=True):
                    old = self._remove(index.get(task_id)) if task_id else None
                    if old is None or old.key == row.key:
                        continue
                    old_sc, old_sf = _row_ids(old)
                    if old_sc and old_sc not in done_sc:
                        todo_sc.add(old_sc)
                    if old_sf and old_sf not in done_sf:
                        todo_sf.add(old_sf)
                self._add(row)

    def _add(self, row: Row) -> None:
        assert self._rows is not None
        if row.key in self._rows:
            self._remove(row.key)
        self._rows[row.key] = row
        self._states[row.state] += 1
        sc_id, sf_id = _row_ids(row)
        if sc_id:
            self._by_sc[sc_id] = row.key
        if sf_id:
            self._by_sf[sf_id] = row.key

    def _remove(self, key: str | None) -> Row | None:
        assert self._rows is not None
        row = self._rows.pop(key, None) if key else None
        if row is None:
            return None
        self._states[row.state] -= 1
        sc_id, sf_id = _row_ids(row)
        if sc_id and self._by_sc.get(sc_id) == key:
            del self._by_sc[sc_id]
        if sf_id and self._by_sf.get(sf_id) == key:
            del self._by_sf[sf_id]
        return row


def _take(ids: set[str], limit: int) -> set[str]:
    """Remove and return at most `limit` of `ids`."""
    taken = set(itertools.islice(ids, max(limit, 0)))
    ids -= taken
    return taken


def _conflict_reason(conflict: Conflict) -> str:
    if conflict.fields:
        return "changed on both sides: " + ", ".join(conflict.fields)
    return f"conflict ({conflict.kind})"


def _unmapped_reason(sf: SideTask | None, name: str) -> str:
    raw = sf.raw.get(name) if sf is not None else None
    return f"{name} {raw!r}" if raw else name


@dataclass(frozen=True)
class EngineStatus:
    """What the status line and `reminder-sync status` show."""

    state: str  # disabled | idle | running | waiting | not_connected
    enabled: bool
    enabled_at: datetime | None
    connections: Mapping[str, bool]
    last_run: datetime | None
    last_success: datetime | None
    last_outcome: str | None
    last_message: str
    next_run: datetime | None
    retry_at: datetime | None
    api_used: int | None
    api_max: int | None
    links: int
    conflicts: int
    errors: int
    pending: int
    phase: str = ""
    progress_done: int = 0
    progress_total: int = 0

    def as_dict(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "state": self.state,
            "enabled": self.enabled,
            "enabled_at": iso(self.enabled_at),
            "connections": dict(self.connections),
            "last_run": iso(self.last_run),
            "last_success": iso(self.last_success),
            "last_outcome": self.last_outcome,
            "last_message": self.last_message,
            "next_run": iso(self.next_run),
            "retry_at": iso(self.retry_at),
            "api_used": self.api_used,
            "api_max": self.api_max,
            "links": self.links,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "pending": self.pending,
        }
