"""The local state: typed tables over TinyDB databases saved atomically (see `sync.storage`).

The state lives in three files side by side (`state.json` and two beside it):

- the **state file** (`path`), a TinyDB database (`{"table": {"doc_id": {...}}}`) with
  `meta` (the schema version, `SCHEMA_VERSION`; older files are upgraded by `MIGRATIONS`),
  `links` (task pairs with their base, `sync.model.Link`), `conflicts` and `resolutions`
  (decisions waiting for the user, and the user's answers), `cursors` (per side, the change
  watermark and the time of the last successful run), `settings` (one document, `Settings`),
  `connections` (non-secret connection details per side), `errors` (failures parked per task,
  `ParkedError`, retried by later runs) and the engine's own small tables (`skip_reasons`);
- the **activity log** (`activity_path(path)`, table `audit`), bounded to `AUDIT_LIMIT`
  entries; kept with a `.bak` like the state file; a damaged one is moved aside (not deleted)
  and the log goes on from its `.bak`, or from empty;
- the **task cache** (`cache_path(path)`, table `task_cache`): the last seen `SideTask` of each
  task per side, for the dashboard. It is derived data, rebuilt from the services by later
  reads, so it has no `.bak`, and a damaged cache file is discarded with a logged warning.

Why three files: at 10,000 links the cache was 70% and the log 17% of one 12 MB file that was
rewritten on every save. Now each file is written only when it changed, so a save that moves
a cursor no longer rewrites 10 MB of cached tasks. A save stages every changed file as a whole
temp file first (a value that cannot be saved fails before any file changes), then replaces
the log and the cache, and the state file last: a crash in between leaves a log or cache a
little ahead of the state, never the state ahead of the log of what was done.

Everything lives in memory while the store is open; `save()` writes the files. Only one process
may have the store open for writing. Hot tables (links, cache, ...) are kept as dicts keyed by
their natural key and mirrored into the TinyDB tables in place, because TinyDB's own `Table`
rewrites a whole table on each change (10,000 single-link updates through it would take
minutes). Do not read or write those tables through `db` (the links and the task cache keep
each document as its JSON text, not as a dict: see `_KeyedTable`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tinydb import TinyDB

from sync import jsoncodec, paths
from sync.model import (
    FIELDS,
    PRIORITY_NORMAL,
    STATUS_OPEN,
    Choice,
    Conflict,
    ConflictKind,
    Link,
    PlanSettings,
    Policy,
    Resolution,
    SfPicklists,
    Side,
    SideTask,
    Task,
    frozen_map,
    remember_last,
)
from sync.storage import (
    AtomicJSONStorage,
    ProcessLock,
    StateError,
    StateFileError,
    StateLockedError,
    StateWriteError,
    Tables,
    backup_path,
    damaged_file_message,
    discard_file,
    encode_document,
    lock_path,
    read_json_file,
    remove_stale_temp_files,
    serialise,
)

log = logging.getLogger(__name__)

__all__ = [
    "AUDIT_LIMIT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Cursor",
    "ParkedError",
    "Settings",
    "StateError",
    "StateFileError",
    "StateLockedError",
    "StateStore",
    "StateWriteError",
    "activity_path",
    "cache_path",
]

SCHEMA_VERSION = 2
AUDIT_LIMIT = 5000
CACHE_TABLE = "task_cache"
AUDIT_TABLE = "audit"


def _v1_to_v2(tables: Tables) -> Tables:
    """Version 2 keeps `task_cache` and `audit` in files of their own. The tables themselves
    are unchanged; `StateStore.open` moves any it finds in the state file into those files
    (it needs the other paths, which a migration step does not see)."""
    return tables


# MIGRATIONS[n] upgrades the raw tables of a version-n file to version n + 1 (returns them).
MIGRATIONS: dict[int, Callable[[Tables], Tables]] = {1: _v1_to_v2}


def cache_path(path: Path) -> Path:
    """The task cache beside the state file `path` (state.json -> state.cache.json)."""
    return path.with_name(f"{path.stem}.cache{path.suffix}")


def activity_path(path: Path) -> Path:
    """The activity log beside the state file `path` (state.json -> state.activity.json)."""
    return path.with_name(f"{path.stem}.activity{path.suffix}")


T = TypeVar("T")

# ---------------------------------------------------------------- typed records of our own


@dataclass(frozen=True)
class Cursor:
    """Where one side's change feed was last read up to.

    `watermark` is the server's own stamp (SF SystemModstamp, SC updated_at) of the newest change
    processed, as the server wrote it; `last_success` is when a run last completed. `extra` holds
    other small per-side markers the engine needs (e.g. the end of the last SF deleted window).
    """

    side: Side
    watermark: str | None = None
    last_success: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=frozen_map)


def _default_policies() -> Mapping[str, Policy]:
    return frozen_map({name: Policy.MANUAL for name in FIELDS})


@dataclass(frozen=True)
class Settings:
    """User settings. `timezone` is an IANA name, or "local" for the machine's zone.

    The mass-delete guard (rule 14) trips when a run would delete at least
    `mass_delete_minimum` linked tasks of one side and more than `mass_delete_share` of them.
    """

    enabled: bool = False
    enabled_at: datetime | None = None
    policies: Mapping[str, Policy] = field(default_factory=_default_policies)
    poll_interval: int = 300
    timezone: str = "local"
    mass_delete_share: float = 0.5
    mass_delete_minimum: int = 5

    def __post_init__(self) -> None:
        unknown = set(self.policies) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown field in conflict policies: {', '.join(sorted(unknown))}")
        policies = {name: Policy(self.policies.get(name, Policy.MANUAL)) for name in FIELDS}
        object.__setattr__(self, "policies", frozen_map(policies))
        if isinstance(self.poll_interval, bool) or not isinstance(self.poll_interval, int):
            raise ValueError("poll interval must be a whole number of seconds")
        if not 10 <= self.poll_interval <= 86_400:
            raise ValueError("poll interval must be between 10 seconds and 1 day")
        if not 0 < self.mass_delete_share <= 1:
            raise ValueError("mass-delete share must be above 0 and at most 1")
        if self.mass_delete_minimum < 1:
            raise ValueError("mass-delete minimum must be at least 1")
        self.zone()  # validates the time zone name

    def policy(self, field_name: str) -> Policy:
        return self.policies[field_name]

    def zone(self) -> tzinfo:
        """The time zone for "today" (the Command Center view)."""
        if self.timezone == "local":
            local = datetime.now().astimezone().tzinfo
            return local or UTC
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {self.timezone!r}; use an IANA name such as "
                "'Europe/Paris' or 'local'"
            ) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def plan_settings(
        self, picklists: SfPicklists | None = None, *, allow_mass_delete: bool = False
    ) -> PlanSettings:
        """What the planner needs from these settings (None `enabled_at` while disabled)."""
        return PlanSettings(
            enabled_at=self.enabled_at if self.enabled else None,
            policies=self.policies,
            picklists=picklists or SfPicklists(),
            guard_max_share=self.mass_delete_share,
            guard_min_deletes=self.mass_delete_minimum,
            allow_mass_delete=allow_mass_delete,
        )


@dataclass(frozen=True)
class ParkedError:
    """A task whose last write failed; parked so the rest of the run goes on."""

    side: Side
    task_id: str
    category: str  # ServiceError.category: auth, validation, transient, ...
    message: str
    at: datetime
    attempts: int = 1
    retryable: bool = True
    action: str = ""  # what was being done: create, update, delete

    @property
    def key(self) -> str:
        return _side_key(self.side, self.task_id)


# ---------------------------------------------------------------- JSON <-> model


def _side_key(side: Side | str, task_id: str) -> str:
    return f"{side._value_ if isinstance(side, Side) else Side(side).value}:{task_id}"


@remember_last()  # a batch of created tasks and a run's log entries share one time object
def _dt_out(value: datetime | None) -> str | None:
    # `isoformat` of an aware time costs as much as encoding a small document. By identity:
    # equal times in two zones are written differently.
    if value is None:
        return None
    stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # naive: UTC
    return stamp.isoformat()


def _dt_in(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _field_out(name: str, value: Any) -> Any:
    if name == "due_date" and isinstance(value, date):
        return value.isoformat()
    return value


def _field_in(name: str, value: Any) -> Any:
    if name == "due_date" and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def task_to_json(task: Task | None) -> dict[str, Any] | None:
    if task is None:
        return None
    due = task.due_date
    return {  # spelled out (FIELDS order): this runs for every task cached, linked or journaled
        "name": task.name,
        "status": task.status,
        "priority": task.priority,
        "due_date": due.isoformat() if isinstance(due, date) else due,
        "details": task.details,
    }


@remember_last()
def _shared_task_json(task: Task | None) -> dict[str, Any] | None:
    """`task_to_json`, made once for a run of calls with one Task: a created task's link, its
    cached copy and its log entry hold the same object. The dict is shared, so it only goes
    into documents that are encoded at once and never changed."""
    return task_to_json(task)


def task_from_json(doc: Mapping[str, Any] | None) -> Task | None:
    if doc is None:
        return None
    due = doc.get("due_date")
    return Task(  # spelled out: this runs for every link and cached task at open
        name=doc["name"],
        status=doc.get("status", STATUS_OPEN),
        priority=doc.get("priority", PRIORITY_NORMAL),
        due_date=date.fromisoformat(due) if due is not None else None,
        details=doc.get("details", ""),
    )


def _fields_out(values: Task | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    if isinstance(values, Task):
        return _shared_task_json(values)
    return {name: _field_out(name, value) for name, value in values.items()}


def link_to_json(link: Link) -> dict[str, Any]:
    return {
        "sc_id": link.sc_id,
        "sf_id": link.sf_id,
        "base": _shared_task_json(link.base),
        "sc_version": link.sc_version,
        "sf_version": link.sf_version,
        "notes": dict(link.notes),
    }


def link_from_json(doc: Mapping[str, Any]) -> Link:
    return Link(
        sc_id=doc["sc_id"],
        sf_id=doc["sf_id"],
        base=task_from_json(doc["base"]),  # type: ignore[arg-type]
        sc_version=doc.get("sc_version", ""),
        sf_version=doc.get("sf_version", ""),
        notes=frozen_map(doc.get("notes")),
    )


def conflict_to_json(conflict: Conflict) -> dict[str, Any]:
    return {
        "id": conflict.id,
        "kind": conflict.kind.value,
        "sc_id": conflict.sc_id,
        "sf_id": conflict.sf_id,
        "fields": list(conflict.fields),
        "base": task_to_json(conflict.base),
        "sc": task_to_json(conflict.sc),
        "sf": task_to_json(conflict.sf),
        "deleted_side": conflict.deleted_side.value if conflict.deleted_side else None,
        "invalid_sides": [side.value for side in conflict.invalid_sides],
        "message": conflict.message,
    }


def conflict_from_json(doc: Mapping[str, Any]) -> Conflict:
    deleted = doc.get("deleted_side")
    return Conflict(
        id=doc["id"],
        kind=ConflictKind(doc["kind"]),
        sc_id=doc["sc_id"],
        sf_id=doc["sf_id"],
        fields=tuple(doc["fields"]),
        base=task_from_json(doc.get("base")),
        sc=task_from_json(doc.get("sc")),
        sf=task_from_json(doc.get("sf")),
        deleted_side=Side(deleted) if deleted else None,
        invalid_sides=tuple(Side(side) for side in doc.get("invalid_sides", ())),
        message=doc.get("message", ""),
    )


def resolution_to_json(resolution: Resolution) -> dict[str, Any]:
    return {
        "conflict_id": resolution.conflict_id,
        "choices": {name: Choice(choice).value for name, choice in resolution.choices.items()},
        "values": {name: _field_out(name, value) for name, value in resolution.values.items()},
    }


def resolution_from_json(doc: Mapping[str, Any]) -> Resolution:
    return Resolution(
        conflict_id=doc["conflict_id"],
        choices=frozen_map({name: Choice(value) for name, value in doc["choices"].items()}),
        values=frozen_map({name: _field_in(name, v) for name, v in doc["values"].items()}),
    )


def side_task_to_json(task: SideTask) -> dict[str, Any]:
    """What is at its default (no version yet, not deleted, in scope, no raw values or
    problems: most cached tasks) is left out; `side_task_from_json` defaults it. The cache
    holds one document per task and side, and these keys were a fifth of each."""
    created, updated = task.created_at, task.updated_at
    doc = {
        "side": task.side._value_,  # not `.value`: an enum property is a slow read
        "id": task.id,
        "fields": _shared_task_json(task.fields),
        "created_at": _dt_out(created),
        "updated_at": _dt_out(created) if updated is created else _dt_out(updated),
    }
    if task.version:
        doc["version"] = task.version
    if task.deleted:
        doc["deleted"] = True
    if not task.in_scope:
        doc["in_scope"] = False
    if task.scope_reason:
        doc["scope_reason"] = task.scope_reason
    if task.raw:
        doc["raw"] = dict(task.raw)
    if task.problems:
        doc["problems"] = dict(task.problems)
    return doc


def side_task_from_json(doc: Mapping[str, Any]) -> SideTask:
    return SideTask(
        side=Side(doc["side"]),
        id=doc["id"],
        fields=task_from_json(doc["fields"]),  # type: ignore[arg-type]
        version=doc.get("version", ""),
        created_at=_dt_in(doc.get("created_at")),
        updated_at=_dt_in(doc.get("updated_at")),
        deleted=doc.get("deleted", False),
        in_scope=doc.get("in_scope", True),
        scope_reason=doc.get("scope_reason", ""),
        raw=frozen_map(doc.get("raw")),
        problems=frozen_map(doc.get("problems")),
    )


def cursor_to_json(cursor: Cursor) -> dict[str, Any]:
    return {
        "side": cursor.side.value,
        "watermark": cursor.watermark,
        "last_success": _dt_out(cursor.last_success),
        "extra": dict(cursor.extra),
    }


def cursor_from_json(doc: Mapping[str, Any]) -> Cursor:
    return Cursor(
        side=Side(doc["side"]),
        watermark=doc.get("watermark"),
        last_success=_dt_in(doc.get("last_success")),
        extra=frozen_map(doc.get("extra")),
    )


def settings_to_json(settings: Settings) -> dict[str, Any]:
    return {
        "enabled": settings.enabled,
        "enabled_at": _dt_out(settings.enabled_at),
        "policies": {name: policy.value for name, policy in settings.policies.items()},
        "poll_interval": settings.poll_interval,
        "timezone": settings.timezone,
        "mass_delete_share": settings.mass_delete_share,
        "mass_delete_minimum": settings.mass_delete_minimum,
    }


def settings_from_json(doc: Mapping[str, Any]) -> Settings:
    defaults = Settings()
    return Settings(
        enabled=doc.get("enabled", defaults.enabled),
        enabled_at=_dt_in(doc.get("enabled_at")),
        policies={name: Policy(v) for name, v in doc.get("policies", {}).items()},
        poll_interval=doc.get("poll_interval", defaults.poll_interval),
        timezone=doc.get("timezone", defaults.timezone),
        mass_delete_share=doc.get("mass_delete_share", defaults.mass_delete_share),
        mass_delete_minimum=doc.get("mass_delete_minimum", defaults.mass_delete_minimum),
    )


def parked_to_json(error: ParkedError) -> dict[str, Any]:
    return {
        "side": error.side.value,
        "task_id": error.task_id,
        "category": error.category,
        "message": error.message,
        "at": _dt_out(error.at),
        "attempts": error.attempts,
        "retryable": error.retryable,
        "action": error.action,
    }


def parked_from_json(doc: Mapping[str, Any]) -> ParkedError:
    return ParkedError(
        side=Side(doc["side"]),
        task_id=doc["task_id"],
        category=doc["category"],
        message=doc["message"],
        at=_dt_in(doc["at"]),  # type: ignore[arg-type]
        attempts=doc.get("attempts", 1),
        retryable=doc.get("retryable", True),
        action=doc.get("action", ""),
    )


# Words that mark a secret; a connection record holding one of them is refused.
_SECRET_WORDS = ("secret", "password", "passwd", "private_key", "code_verifier", "auth_code")


def _names_a_secret(key: str) -> bool:
    """True for "client_secret", "refresh_token", "token"...; False for "token_url"."""
    lowered = key.lower()
    return lowered.endswith("token") or any(word in lowered for word in _SECRET_WORDS)


# ---------------------------------------------------------------- keyed tables


class _KeyedTable(Generic[T]):
    """A TinyDB table mirrored as a dict keyed by each record's natural key.

    Writes update the typed dict and the raw TinyDB document in place (O(1)), and mark the
    storage dirty; the raw table is looked up on each call because TinyDB may replace it.
    """

    def __init__(
        self,
        storage: AtomicJSONStorage,
        name: str,
        key_of: Callable[[T], str],
        to_json: Callable[[T], dict[str, Any]],
        from_json: Callable[[Mapping[str, Any]], T],
        *,
        encoded: bool = False,
    ) -> None:
        """`encoded`: keep each document as its JSON text (`EncodedJSON`), not as a dict: a
        third of the memory for a big table nobody reads through TinyDB (the links; the task
        cache does the same, see `_TaskCache`), and a save encodes nothing again. A document
        holding a value that cannot be saved is kept as it is, and the next save refuses it, as
        in a table of dicts (`put_link` runs after a remote write succeeded: it must not fail)."""
        self._storage = storage
        self.name = name
        self._key_of = key_of
        self._to_json = to_json
        self._encoded = encoded
        self.items: dict[str, T] = {}
        self._doc_ids: dict[str, str] = {}
        self._next_id = 1
        raw = storage.tables.setdefault(name, {})
        for doc_id, doc in raw.items():
            try:
                item = from_json(doc)
                if encoded:
                    raw[doc_id] = self._encode(doc)
                self._next_id = max(self._next_id, int(doc_id) + 1)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problem = f"holds an unreadable record in table '{name}' (document {doc_id}: {exc})"
                raise StateFileError(damaged_file_message(storage.path, problem)) from None
            key = key_of(item)
            if key in self.items:
                problem = f"holds two records for '{key}' in table '{name}'"
                raise StateFileError(damaged_file_message(storage.path, problem))
            self.items[key] = item
            self._doc_ids[key] = doc_id

    def _raw(self) -> dict[str, Any]:
        tables = self._storage.tables  # `get` first: `setdefault` makes a dict at each call
        return tables.get(self.name) or tables.setdefault(self.name, {})

    def _encode(self, doc: dict[str, Any]) -> Any:
        """The document as its JSON text, or as it is if it cannot be saved (see `encoded`)."""
        try:
            return encode_document(doc)
        except StateWriteError:
            return doc

    def get(self, key: str) -> T | None:
        return self.items.get(key)

    def put(self, item: T, key: str | None = None) -> None:
        """Add or replace `item`; `key`: its key (`key_of(item)`), when the caller has the
        string the table already holds (one string per key, however many indexes use it)."""
        key = self._key_of(item) if key is None else key
        doc = self._to_json(item)
        if self._encoded:
            doc = self._encode(doc)
        doc_id = self._doc_ids.get(key)
        if doc_id is None:
            doc_id = str(self._next_id)
            self._next_id += 1
            self._doc_ids[key] = doc_id
        self._raw()[doc_id] = doc
        self.items[key] = item
        self._storage.mark_dirty()

    def delete(self, key: str) -> T | None:
        item = self.items.pop(key, None)
        if item is not None:
            self._raw().pop(self._doc_ids.pop(key), None)
            self._storage.mark_dirty()
        return item

    def __len__(self) -> int:
        return len(self.items)


class _TaskCache:
    """The task cache table: the last seen `SideTask` of each task, one dict per side keyed by
    the task's own id (no "side:id" key string per task), each document kept as its JSON text
    like an `encoded` `_KeyedTable` (a value that cannot be saved is refused by `put`)."""

    def __init__(self, storage: AtomicJSONStorage) -> None:
        self._storage = storage
        self.by_side: dict[Side, dict[str, SideTask]] = {side: {} for side in Side}
        self._doc_ids: dict[Side, dict[str, str]] = {side: {} for side in Side}
        self._next_id = 1
        raw = self._raw()
        for doc_id, doc in raw.items():
            try:
                task = side_task_from_json(doc)
                raw[doc_id] = encode_document(doc)
                self._next_id = max(self._next_id, int(doc_id) + 1)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problem = (
                    f"holds an unreadable record in table '{CACHE_TABLE}' "
                    f"(document {doc_id}: {exc})"
                )
                raise StateFileError(damaged_file_message(storage.path, problem)) from None
            tasks = self.by_side[task.side]
            if task.id in tasks:
                key = _side_key(task.side, task.id)
                problem = f"holds two records for '{key}' in table '{CACHE_TABLE}'"
                raise StateFileError(damaged_file_message(storage.path, problem))
            tasks[task.id] = task
            self._doc_ids[task.side][task.id] = doc_id

    def _raw(self) -> dict[str, Any]:
        tables = self._storage.tables  # `get` first: `setdefault` makes a dict at each call
        return tables.get(CACHE_TABLE) or tables.setdefault(CACHE_TABLE, {})

    def get(self, side: Side, task_id: str) -> SideTask | None:
        tasks = self.by_side.get(side)  # a Side, or its value: the same key (a StrEnum)
        return (self.by_side[Side(side)] if tasks is None else tasks).get(task_id)

    def put(self, task: SideTask) -> None:
        doc = encode_document(side_task_to_json(task))  # refused here, before any change
        doc_ids = self._doc_ids[task.side]
        doc_id = doc_ids.get(task.id)
        if doc_id is None:
            doc_id = str(self._next_id)
            self._next_id += 1
            doc_ids[task.id] = doc_id
        self._raw()[doc_id] = doc
        self.by_side[task.side][task.id] = task
        self._storage.mark_dirty()

    def delete(self, side: Side, task_id: str) -> None:
        side = Side(side)
        if self.by_side[side].pop(task_id, None) is not None:
            self._raw().pop(self._doc_ids[side].pop(task_id), None)
            self._storage.mark_dirty()


# ---------------------------------------------------------------- the store


def _new_tables() -> Tables:
    return {"meta": {"1": {"schema_version": SCHEMA_VERSION, "app": paths.APP_NAME}}}


# ---------------------------------------------------------------- the files beside the state

CACHE_LABEL = "task cache"
ACTIVITY_LABEL = "activity log"


def _new_side_tables(table: str) -> Tables:
    meta = {"schema_version": SCHEMA_VERSION, "app": paths.APP_NAME, "holds": table}
    return {"meta": {"1": meta}, table: {}}


def _side_tables(path: Path, table: str, data: Any, label: str) -> Tables:
    """The tables of a side file, or StateFileError if it is not the file we wrote."""
    try:
        holds = data["meta"]["1"]["holds"]
        docs = data[table]
    except (KeyError, TypeError):
        holds, docs = None, None
    if holds != table or not isinstance(docs, dict):
        problem = f"is not a reminder-sync {label} (unexpected layout)"
        raise StateFileError(damaged_file_message(path, problem, label=label))
    _check_shape(path, data)
    return data


def _short(exc: StateFileError) -> str:
    """The first sentence of a damaged-file message (the advice that follows is for the state
    file, whose loss matters; a side file is recovered here)."""
    return str(exc).split(" Nothing was changed.")[0]


def _read_side_file(path: Path, table: str, label: str) -> Tables | None:
    """A side file's tables; None when it does not exist; StateFileError when damaged."""
    data = read_json_file(path, label=label)
    return None if data is None else _side_tables(path, table, data, label)


def _open_cache(path: Path, *, read_only: bool) -> tuple[AtomicJSONStorage, str | None]:
    """The task cache, or an empty one (and why) when its file is damaged: it is only a cache,
    rebuilt from the services by later reads, so losing it loses nothing."""
    where = cache_path(path)
    try:
        tables = _read_side_file(where, CACHE_TABLE, CACHE_LABEL)
        problem = None
    except StateFileError as exc:
        tables, problem = None, _short(exc)
        log.warning("%s; it is only a cache, so it was discarded and will be rebuilt", problem)
    storage = AtomicJSONStorage(
        where, tables or _new_side_tables(CACHE_TABLE), read_only=read_only, keep_backup=False
    )
    if tables is None and not read_only:
        storage.mark_dirty()  # write a good file at the next save
    return storage, problem


@dataclass
class _OpenedActivity:
    storage: AtomicJSONStorage
    problem: str | None = None
    damaged: Path | None = None  # the damaged file, to be moved aside once the store opened

    def keep_damaged_aside(self) -> None:
        """Rename the damaged file (never delete it) before a save would replace it, or would
        make it the `.bak` over the good copy the log went on from."""
        if self.damaged is None or not os.path.lexists(self.damaged):
            return
        aside = self.damaged.with_name(
            f"{self.damaged.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        )
        try:
            os.replace(self.damaged, aside)
            self.problem = f"{self.problem} The damaged file was kept as {aside}."
        except OSError as exc:
            self.storage.keep_backup = False  # the good .bak must not become the damaged file
            self.problem = f"{self.problem} It could not be kept aside ({exc.strerror})."
        self.damaged = None


def _open_activity(path: Path, *, read_only: bool) -> _OpenedActivity:
    """The activity log. A damaged file is moved aside by `keep_damaged_aside`, never deleted
    (in read-only mode it is left alone), and the log goes on from its `.bak` if that is good,
    else from empty."""
    where = activity_path(path)
    try:
        tables = _read_side_file(where, AUDIT_TABLE, ACTIVITY_LABEL)
        if tables is None and backup_path(where).is_file():
            raise StateFileError(damaged_file_message(where, "is missing", label=ACTIVITY_LABEL))
        problem = None
    except StateFileError as exc:
        problem = _short(exc)
        try:
            tables = _read_side_file(backup_path(where), AUDIT_TABLE, ACTIVITY_LABEL)
        except StateFileError:
            tables = None
        problem += (
            " The log goes on from its backup copy (the last save's entries may be missing)."
            if tables is not None
            else " A new log was started."
        )
        log.warning("%s", problem)
    storage = AtomicJSONStorage(where, tables or _new_side_tables(AUDIT_TABLE), read_only=read_only)
    if read_only:
        return _OpenedActivity(storage, problem)
    if tables is None or problem:
        storage.mark_dirty()
    return _OpenedActivity(storage, problem, where if problem else None)


def _schema_version(path: Path, tables: Tables) -> int:
    try:
        version = tables["meta"]["1"]["schema_version"]
    except (KeyError, TypeError):
        raise StateFileError(
            damaged_file_message(path, "is not a reminder-sync state file (no schema version)")
        ) from None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StateFileError(damaged_file_message(path, f"has a bad schema version {version!r}"))
    return version


def _check_shape(path: Path, data: Any) -> Tables:
    if not isinstance(data, dict) or not all(
        isinstance(table, dict) and all(isinstance(doc, dict) for doc in table.values())
        for table in data.values()
    ):
        raise StateFileError(
            damaged_file_message(path, "is not a reminder-sync state file (unexpected layout)")
        )
    return data


def migrate(path: Path, tables: Tables) -> tuple[Tables, bool]:
    """Upgrade raw tables to SCHEMA_VERSION; returns (tables, whether anything changed)."""
    version = _schema_version(path, tables)
    if version > SCHEMA_VERSION:
        raise StateFileError(
            f"The state file {path} was written by a newer reminder-sync (schema {version}; this "
            f"version reads up to {SCHEMA_VERSION}). Nothing was changed. Upgrade reminder-sync "
            "to use it."
        )
    changed = False
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StateFileError(
                f"The state file {path} has schema {version} and this reminder-sync has no "
                f"upgrade from it to {SCHEMA_VERSION}. Nothing was changed."
            )
        try:
            tables = _check_shape(path, step(tables))
        except StateError:
            raise
        except Exception as exc:
            raise StateFileError(
                f"Upgrading the state file {path} from schema {version} failed ({exc}). "
                "Nothing was changed on disk."
            ) from None
        version += 1
        tables.setdefault("meta", {}).setdefault("1", {})["schema_version"] = version
        changed = True
    return tables, changed


class StateStore:
    """Typed access to the state file. Open with `StateStore.open(path)`; close when done.

    Reads are served from memory. Writes change memory only; `save()` writes the file (once,
    however many changes were made). `close()` saves pending changes and releases the lock.
    """

    def __init__(
        self,
        storage: AtomicJSONStorage,
        lock: ProcessLock | None,
        *,
        cache: AtomicJSONStorage | None = None,
        activity: AtomicJSONStorage | None = None,
    ) -> None:
        """`cache` and `activity`: the side files' storages (default: empty, beside the state
        file). `open` is the way to get a store; this is for it and for tests."""
        self._storage = storage
        self._lock = lock
        self.path = storage.path
        read_only = storage.read_only
        self._cache_storage = cache or AtomicJSONStorage(
            cache_path(self.path),
            _new_side_tables(CACHE_TABLE),
            read_only=read_only,
            keep_backup=False,
        )
        self._activity = activity or AtomicJSONStorage(
            activity_path(self.path), _new_side_tables(AUDIT_TABLE), read_only=read_only
        )
        # What was wrong with a side file at open (for the activity log), and whether the
        # cache started empty because its file was damaged (the engine may re-read all).
        self.damage_notes: list[str] = []
        self.cache_was_reset = False
        # Stamps audit entries; the engine points it at its own clock so that the log agrees
        # with the emulators' shifted clock and with fixed-clock tests.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.db = TinyDB(storage=lambda: storage)  # the TinyDB view of the same tables
        self._links = _KeyedTable(
            storage,
            "links",
            lambda link: link.key,
            link_to_json,
            link_from_json,
            encoded=True,
        )
        self._by_sc: dict[str, str] = {}
        self._by_sf: dict[str, str] = {}
        for key, link in self._links.items.items():
            for index, task_id, side in (
                (self._by_sc, link.sc_id, "SC"),
                (self._by_sf, link.sf_id, "SF"),
            ):
                if task_id in index:
                    problem = f"pairs the {side} task {task_id} twice (table 'links')"
                    raise StateFileError(damaged_file_message(self.path, problem))
                index[task_id] = key
        self._conflicts = _KeyedTable(
            storage, "conflicts", lambda c: c.id, conflict_to_json, conflict_from_json
        )
        self._resolutions = _KeyedTable(
            storage,
            "resolutions",
            lambda r: r.conflict_id,
            resolution_to_json,
            resolution_from_json,
        )
        self._cursors = _KeyedTable(
            storage, "cursors", lambda c: c.side.value, cursor_to_json, cursor_from_json
        )
        self._cache = self._load_cache()
        self._errors = _KeyedTable(
            storage, "errors", lambda e: e.key, parked_to_json, parked_from_json
        )
        self._settings = self._load_settings()
        self._audit_ids: deque[str] = deque(self._load_audit_ids())
        self._audit_next = int(self._audit_ids[-1]) + 1 if self._audit_ids else 1
        storage.tables.setdefault("connections", {})

    def _load_cache(self) -> _TaskCache:
        def table() -> _TaskCache:
            return _TaskCache(self._cache_storage)

        try:
            return table()
        except StateFileError as exc:  # an unreadable record: the cache is only a cache
            problem = _short(exc).replace("state file", CACHE_LABEL, 1)
            log.warning("%s; it is only a cache, so it was discarded and will be rebuilt", problem)
            self.note_damage(problem + " It was discarded; later reads rebuild it.")
            self._cache_storage.tables = _new_side_tables(CACHE_TABLE)
            if not self._cache_storage.read_only:
                self._cache_storage.mark_dirty()
            self.cache_was_reset = True
            return table()

    def _load_audit_ids(self) -> list[str]:
        table = self._activity.tables.setdefault(AUDIT_TABLE, {})
        try:
            return sorted(table, key=int)
        except ValueError:
            pass
        # Only hand-editing makes a bad id: keep the readable entries, drop the rest.
        good = {doc_id: doc for doc_id, doc in table.items() if doc_id.isdigit()}
        self.note_damage(
            f"The activity log {self._activity.path} had {len(table) - len(good)} entries with "
            "a bad id; they were dropped."
        )
        self._activity.tables[AUDIT_TABLE] = good
        if not self._activity.read_only:
            self._activity.mark_dirty()
        return sorted(good, key=int)

    def note_damage(self, message: str) -> None:
        """Remember a problem found in a side file; `open` writes it to the activity log."""
        self.damage_notes.append(message)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: Path | str | None = None, *, read_only: bool = False) -> StateStore:
        """Open (or create) the state file and take the writer lock.

        Raises StateLockedError when another process has it open for writing, and
        StateFileError when the file is empty, damaged, too new or a symlink.
        `read_only=True` takes no lock and never writes (for `status` while `run` is going).
        """
        path = Path(path) if path is not None else paths.state_file()
        if not read_only:
            paths.ensure_private_dir(path.parent)
        lock = None if read_only else ProcessLock(lock_path(path))
        if lock:
            lock.acquire()
        try:
            if lock:
                for each in (path, cache_path(path), activity_path(path)):
                    remove_stale_temp_files(each)
            data = read_json_file(path)
            if data is None:
                if backup_path(path).exists():
                    raise StateFileError(damaged_file_message(path, "is missing"))
                tables, changed = _new_tables(), True
            else:
                tables, changed = migrate(path, _check_shape(path, data))
            cache, cache_problem = _open_cache(path, read_only=read_only)
            opened = _open_activity(path, read_only=read_only)
            activity = opened.storage
            # A version 1 file holds the cache and the log itself: they move out, and win over
            # any side file (one left by an upgrade that stopped before the state was saved).
            for side, name in ((cache, CACHE_TABLE), (activity, AUDIT_TABLE)):
                if name in tables:
                    side.tables[name] = tables.pop(name)
                    side.mark_dirty()
                    changed = True
                    if side is cache:
                        cache_problem = None
            storage = AtomicJSONStorage(path, tables, read_only=read_only)
            store = cls(storage, lock, cache=cache, activity=activity)
            if cache_problem:
                store.cache_was_reset = True
                store.note_damage(cache_problem + " It was discarded; later reads rebuild it.")
            opened.keep_damaged_aside()
            if opened.problem:
                store.note_damage(opened.problem)
            if not read_only:
                for note in store.damage_notes:
                    store.audit("state", note)
            if changed and not read_only:
                storage.mark_dirty()
                store.save()  # a new file exists at once; a migration keeps the old one as .bak
            return store
        except BaseException:
            if lock:
                lock.release()
            raise

    def save(self) -> bool:
        """Write every file that changed since the last save, each in one atomic write.

        Each is streamed to a temp file first, and only when all are whole do they replace
        the files (a value that cannot be saved, or a full disk, leaves every file as it was):
        the activity log and the cache first, the state file last (see the module docstring).

        True if the state file was written (so its `.bak` now holds the version before): the
        journal relies on that meaning. A save that only wrote the log or the cache is False.
        """
        dirty = [s for s in (self._activity, self._cache_storage, self._storage) if s.dirty]
        if self._storage in dirty:  # each written version of the state file has its number
            self._storage.tables["meta"]["1"]["generation"] = self.generation + 1
        staged: list[tuple[AtomicJSONStorage, Path]] = []
        try:
            for storage in dirty:
                staged.append((storage, storage.stage()))
            while staged:
                storage, temp = staged[0]
                storage.commit(temp)
                staged.pop(0)
        finally:
            for _storage, temp in staged:  # a failure: no file changed after it
                discard_file(temp)
        return self._storage in dirty

    def close(self) -> None:
        """Save pending changes (not in read-only mode) and release the lock. Idempotent."""
        try:
            if not self._storage.read_only and self._lock is not None and self._lock.held:
                self.save()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_path(self) -> Path:
        """Where the create/delete journal lives: beside the state file."""
        return self.path.with_name(paths.JOURNAL_FILE_NAME)

    @property
    def dirty(self) -> bool:
        """True while any of the files has changes not yet saved."""
        return self._storage.dirty or self._cache_storage.dirty or self._activity.dirty

    @property
    def write_count(self) -> int:
        """How many times this store wrote the state file since it was opened."""
        return self._storage.write_count

    @property
    def cache_path(self) -> Path:
        """The task cache file beside the state file."""
        return self._cache_storage.path

    @property
    def activity_path(self) -> Path:
        """The activity log file beside the state file."""
        return self._activity.path

    @property
    def schema_version(self) -> int:
        return int(self._storage.tables["meta"]["1"]["schema_version"])

    @property
    def generation(self) -> int:
        """How many times the state file was written (since generations were counted): a
        restored `.bak` is a lower generation than the journal's marks (sync.journal)."""
        return int(self._storage.tables["meta"]["1"].get("generation", 0))

    # ------------------------------------------------------------ links

    def links(self) -> Mapping[str, Link]:
        """All links by `Link.key` (a read-only live view)."""
        return MappingProxyType(self._links.items)

    def link(self, key: str) -> Link | None:
        return self._links.get(key)

    def link_by_sc(self, sc_id: str) -> Link | None:
        key = self._by_sc.get(sc_id)
        return None if key is None else self._links.get(key)

    def link_by_sf(self, sf_id: str) -> Link | None:
        key = self._by_sf.get(sf_id)
        return None if key is None else self._links.get(key)

    def put_link(self, link: Link) -> None:
        """Add or replace a link (same key = same SC and SF ids).

        A task belongs to at most one pair: if another link already holds `link.sc_id` or
        `link.sf_id`, this raises ValueError; delete that link first.
        """
        key = link.key
        for index, task_id in ((self._by_sc, link.sc_id), (self._by_sf, link.sf_id)):
            holder = index.get(task_id)
            if holder is not None and holder != key:
                raise ValueError(f"task {task_id} is already linked ({holder})")
        # The key string the tables hold already, if the link is there: one string per link
        # for the table and both indexes (`link.key` makes a new one at each call).
        key = self._by_sc.get(link.sc_id) or key
        self._links.put(link, key)
        self._by_sc[link.sc_id] = key
        self._by_sf[link.sf_id] = key

    def delete_link(self, key: str) -> Link | None:
        link = self._links.delete(key)
        if link is not None:
            self._by_sc.pop(link.sc_id, None)
            self._by_sf.pop(link.sf_id, None)
        return link

    # ------------------------------------------------------------ conflicts and resolutions

    def conflicts(self) -> list[Conflict]:
        return list(self._conflicts.items.values())

    def conflict(self, conflict_id: str) -> Conflict | None:
        return self._conflicts.get(conflict_id)

    def put_conflict(self, conflict: Conflict) -> None:
        self._conflicts.put(conflict)

    def delete_conflict(self, conflict_id: str) -> Conflict | None:
        """Drop a conflict and any resolution saved for it."""
        self._resolutions.delete(conflict_id)
        return self._conflicts.delete(conflict_id)

    def resolutions(self) -> list[Resolution]:
        return list(self._resolutions.items.values())

    def resolution(self, conflict_id: str) -> Resolution | None:
        return self._resolutions.get(conflict_id)

    def put_resolution(self, resolution: Resolution) -> None:
        if resolution.conflict_id not in self._conflicts.items:
            raise ValueError(f"no conflict {resolution.conflict_id!r} is waiting")
        self._resolutions.put(resolution)

    def delete_resolution(self, conflict_id: str) -> Resolution | None:
        return self._resolutions.delete(conflict_id)

    # ------------------------------------------------------------ cursors

    def cursor(self, side: Side) -> Cursor:
        return self._cursors.get(Side(side).value) or Cursor(side=Side(side))

    def put_cursor(self, cursor: Cursor) -> None:
        self._cursors.put(cursor)

    # ------------------------------------------------------------ settings

    def _load_settings(self) -> Settings:
        doc = self.db.table("settings").get(doc_id=1)
        if doc is None:
            return Settings()
        try:
            return settings_from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"holds unreadable settings ({exc})"
            raise StateFileError(damaged_file_message(self.path, problem)) from None

    @property
    def settings(self) -> Settings:
        return self._settings

    def put_settings(self, settings: Settings) -> None:
        table = self.db.table("settings")
        table.truncate()
        table.insert(settings_to_json(settings))
        self._settings = settings

    def update_settings(self, **changes: Any) -> Settings:
        """Replace some settings (validated; ValueError says what is wrong). Returns the new."""
        settings = self._settings.replace(**changes)
        self.put_settings(settings)
        return settings

    # ------------------------------------------------------------ connections (no secrets)

    def connection(self, side: Side) -> dict[str, Any] | None:
        """Non-secret connection details of one side (base URL, client id, user id...)."""
        doc = self._storage.tables["connections"].get(Side(side).value)
        return dict(doc) if doc is not None else None

    def put_connection(self, side: Side, details: Mapping[str, Any]) -> None:
        """Save connection details. Refuses keys that name a secret: those go to the keyring."""
        for key in details:
            if _names_a_secret(key):
                raise ValueError(
                    f"connection detail {key!r} looks like a secret; keep it in the keyring"
                )
        serialise(dict(details))
        self._storage.tables["connections"][Side(side).value] = dict(details)
        self._storage.mark_dirty()

    def delete_connection(self, side: Side) -> None:
        if self._storage.tables["connections"].pop(Side(side).value, None) is not None:
            self._storage.mark_dirty()

    # ------------------------------------------------------------ audit log

    def audit(
        self,
        kind: str,
        message: str = "",
        *,
        run_id: str = "",
        side: Side | None = None,
        sc_id: str | None = None,
        sf_id: str | None = None,
        before: Task | Mapping[str, Any] | None = None,
        after: Task | Mapping[str, Any] | None = None,
        category: str = "",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append an entry to the activity log (oldest entries beyond AUDIT_LIMIT are dropped).
        Returns the entry, read-only: its field dicts may be shared with other documents."""
        entry = {
            "at": _dt_out(at or self.clock()),
            "run_id": run_id,
            "kind": kind,
            "side": (side._value_ if isinstance(side, Side) else Side(side).value)
            if side
            else None,
            "sc_id": sc_id,
            "sf_id": sf_id,
            "before": _fields_out(before),
            "after": _fields_out(after),
            "message": message,
            "category": category,
        }
        # Kept as its JSON text (a value that cannot be saved is refused here, not at the save):
        # an import logs thousands of entries, and each save wrote the 5,000 kept ones again.
        encoded = encode_document(entry)
        tables = self._activity.tables
        table = tables.get(AUDIT_TABLE) or tables.setdefault(AUDIT_TABLE, {})
        doc_id = str(self._audit_next)
        self._audit_next += 1
        table[doc_id] = encoded
        self._audit_ids.append(doc_id)
        while len(self._audit_ids) > AUDIT_LIMIT:
            table.pop(self._audit_ids.popleft(), None)
        self._activity.mark_dirty()
        return entry  # what is kept is its JSON text

    def activity(self, limit: int = 500) -> list[dict[str, Any]]:
        """Audit entries, newest first, as plain JSON dicts (`at` is an ISO 8601 string)."""
        table = self._activity.tables.get(AUDIT_TABLE, {})
        out = []
        for doc_id in reversed(self._audit_ids):
            if len(out) >= limit:
                break
            doc = table[doc_id]
            out.append(jsoncodec.loads(doc) if isinstance(doc, bytes) else dict(doc))
        return out

    # ------------------------------------------------------------ task cache

    def cached_tasks(self, side: Side) -> dict[str, SideTask]:
        """The last seen task of every cached task id of one side."""
        return dict(self._cache.by_side[Side(side)])

    def cached_task(self, side: Side, task_id: str) -> SideTask | None:
        return self._cache.get(side, task_id)

    def put_cached_tasks(self, tasks: Iterable[SideTask]) -> None:
        for task in tasks:
            self._cache.put(task)

    def drop_cached_task(self, side: Side, task_id: str) -> None:
        self._cache.delete(side, task_id)

    # ------------------------------------------------------------ parked errors

    def errors(self) -> list[ParkedError]:
        return list(self._errors.items.values())

    def error_for(self, side: Side, task_id: str) -> ParkedError | None:
        return self._errors.get(_side_key(side, task_id))

    def park_error(self, error: ParkedError) -> ParkedError:
        """Park a task's failure; a task already parked keeps counting its attempts."""
        previous = self._errors.get(error.key)
        if previous is not None:
            error = dataclasses.replace(error, attempts=previous.attempts + 1)
        self._errors.put(error)
        return error

    def clear_error(self, side: Side, task_id: str) -> ParkedError | None:
        if not self._errors.items:  # the common case: nothing parked, no key to build
            return None
        return self._errors.delete(_side_key(side, task_id))

    # ------------------------------------------------------------ counts

    def counts(self) -> dict[str, int]:
        return {
            "links": len(self._links),
            "conflicts": len(self._conflicts),
            "errors": len(self._errors),
        }
