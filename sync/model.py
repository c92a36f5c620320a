"""The data that flows through one sync run: frozen, comparable, free of I/O.

Everything here is a plain value. The planner (`plan.py`) takes these in and returns a `Plan`;
the engine turns the plan into remote writes and records what was confirmed.

The classes with one instance per task, link or planned step are slotted (`slots=True`, no
`__dict__` per instance), and empty maps are one shared object: the state holds a `Link` and
its base `Task` per link plus a cached `SideTask` and its `Task` per task and side, 300,000
objects at 50,000 links.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

C = TypeVar("C")
A = TypeVar("A")
R = TypeVar("R")
_NOTHING = object()


def remember_last(*, equal: bool = False) -> Callable[[Callable[[A], R]], Callable[[A], R]]:
    """Make a one-argument function hand back its last result when it is called again with
    the same argument: the same object, or with `equal`, an equal one (texts, where equal means
    the same answer). The records of one batch share their times and fields, so per-task code
    meets the same value several times in a row. The (argument, result) pair is one tuple,
    replaced whole, so a caller on another thread always sees a matching pair."""

    def decorate(fn: Callable[[A], R]) -> Callable[[A], R]:
        last: tuple[Any, Any] = (_NOTHING, None)

        @functools.wraps(fn)
        def remembered(value: A) -> R:
            nonlocal last
            key, result = last
            if value is key or (equal and value == key):
                return result  # type: ignore[no-any-return]
            result = fn(value)
            last = (value, result)
            return result  # type: ignore[no-any-return]

        return remembered

    return decorate


class _Factory:
    """The default shown for a field made by a factory (as dataclasses shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: type[C]) -> type[C]:
    """Give a frozen dataclass an `__init__` that sets its fields without `object.__setattr__`.

    The generated `__init__` of a frozen dataclass sets each field through
    `object.__setattr__(self, name, value)`, about 200 ns a field here: with a Task, a SideTask,
    a Link and an Action made per task, a third of recording a 10,000-task import went on it.
    This one writes each slot through its own descriptor (slotted classes) or the instance
    dict (the others), 2-3x faster. Same signature, defaults, default factories and
    `__post_init__`; the instances stay frozen (assignment still raises). Apply it above
    `@dataclass`, so it sees the finished class."""
    slotted = "__slots__" in cls.__dict__
    env: dict[str, Any] = {"_FACTORY": _FACTORY}
    params, body = [], []
    for index, spec in enumerate(fields(cls)):  # type: ignore[arg-type]
        name = spec.name
        if spec.default is not MISSING:
            env[f"_default{index}"] = spec.default
            params.append(f"{name}=_default{index}")
        elif spec.default_factory is not MISSING:
            env[f"_factory{index}"] = spec.default_factory
            params.append(f"{name}=_FACTORY")
            body.append(f"if {name} is _FACTORY: {name} = _factory{index}()")
        else:
            params.append(name)
        if slotted:
            env[f"_set{index}"] = cls.__dict__[name].__set__
            body.append(f"_set{index}(self, {name})")
        else:
            body.append(f"values[{name!r}] = {name}")
    if not slotted:
        body.insert(0, "values = self.__dict__")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body)
    exec(source, env)  # our own field names, as dataclasses itself does
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


# The five synchronised fields, in display order.
FIELDS: tuple[str, ...] = ("name", "status", "priority", "due_date", "details")

# Canonical values are Sales Connect's: SC is the narrower side, so every canonical value fits it.
STATUS_OPEN = "open"
STATUS_COMPLETE = "complete"
PRIORITY_NORMAL = "normal"
PRIORITY_HIGH = "high"
CANONICAL_STATUSES = frozenset({STATUS_OPEN, STATUS_COMPLETE})
CANONICAL_PRIORITIES = frozenset({PRIORITY_NORMAL, PRIORITY_HIGH})


# The one empty read-only mapping: most tasks and links have no notes, raw values or problems,
# and an empty map per record (a dict and its proxy, 112 bytes) added up to megabytes.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only mapping, so frozen dataclasses stay truly immutable (empty ones are shared:
    nobody can change them)."""
    if not data:
        return _EMPTY
    return MappingProxyType(dict(data))


class Side(StrEnum):
    SALESCONNECT = "salesconnect"
    SALESFORCE = "salesforce"

    @property
    def other(self) -> Side:
        return Side.SALESFORCE if self is Side.SALESCONNECT else Side.SALESCONNECT

    @property
    def label(self) -> str:
        return "Sales Connect" if self is Side.SALESCONNECT else "Salesforce"


@quick_init
@dataclass(frozen=True, slots=True)
class Task:
    """The five synchronised fields in canonical form.

    `status` and `priority` are canonical values, or None when a Salesforce value has no
    Sales Connect equivalent (rule 9: "not synced"); the raw value then lives in `SideTask.raw`.
    """

    name: str
    status: str | None = STATUS_OPEN
    priority: str | None = PRIORITY_NORMAL
    due_date: date | None = None
    details: str = ""

    def get(self, field_name: str) -> Any:
        return getattr(self, field_name)

    def replace(self, **changes: Any) -> Task:
        if not changes:
            return self
        task = Task(
            changes.pop("name", self.name),
            changes.pop("status", self.status),
            changes.pop("priority", self.priority),
            changes.pop("due_date", self.due_date),
            changes.pop("details", self.details),
        )
        if changes:
            raise TypeError(f"Task has no field {next(iter(changes))!r}")
        return task

    def as_dict(self) -> dict[str, Any]:
        return {  # spelled out (FIELDS order): every create and update makes one
            "name": self.name,
            "status": self.status,
            "priority": self.priority,
            "due_date": self.due_date,
            "details": self.details,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class SideTask:
    """One task as one service reported it, already mapped to canonical fields.

    `version` is the server's change stamp (SC `version`, SF `SystemModstamp`); `raw` keeps the
    service's own values for fields that did not map (e.g. {"status": "In Progress"}).
    `in_scope` is False for tasks the connected user does not own, logged calls/emails, recurring
    series roots...; `scope_reason` says why. Out-of-scope tasks are never touched.
    """

    side: Side
    id: str
    fields: Task
    version: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    in_scope: bool = True
    scope_reason: str = ""
    raw: Mapping[str, Any] = field(default_factory=frozen_map)
    # field -> what is wrong with the value the service sent (bad date, unknown SC status...).
    # A task with problems is never synced; the planner parks it as an INVALID conflict.
    problems: Mapping[str, str] = field(default_factory=frozen_map)

    @property
    def valid(self) -> bool:
        return not self.problems


class Note(StrEnum):
    """Per-field remarks kept on a link and shown by the dashboard."""

    UNMAPPED = "unmapped"  # SF holds a value SC cannot hold; the field is "not synced"
    TRUNCATED = "truncated"  # the value was cut to fit Salesforce


@quick_init
@dataclass(frozen=True, slots=True)
class Link:
    """A task pair (SC id, SF id) and the five fields as last synced (the base)."""

    sc_id: str
    sf_id: str
    base: Task
    sc_version: str = ""
    sf_version: str = ""
    notes: Mapping[str, str] = field(default_factory=frozen_map)

    def __post_init__(self) -> None:
        if type(self.notes) is not MappingProxyType:  # a plain dict: read-only, shared if empty
            object.__setattr__(self, "notes", frozen_map(self.notes))

    @property
    def key(self) -> str:
        return f"{self.sc_id}|{self.sf_id}"


class Policy(StrEnum):
    """How a same-field conflict is settled (rule 8)."""

    MANUAL = "manual"
    SALESCONNECT_WINS = "sales_connect_wins"
    SALESFORCE_WINS = "salesforce_wins"


class ConflictKind(StrEnum):
    FIELDS = "fields"  # the same field changed on both sides to different values
    EDIT_VS_DELETE = "edit_vs_delete"  # deleted on one side, edited on the other (rule 11)
    INVALID = "invalid"  # a value the planner cannot read (bad date, unknown status...)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A decision the user must take. One per link; `fields` lists the fields in dispute.

    For EDIT_VS_DELETE, `deleted_side` is the side where the task was deleted.
    `base`, `sc` and `sf` are the three versions the resolution screen shows.
    """

    id: str
    kind: ConflictKind
    sc_id: str
    sf_id: str
    fields: tuple[str, ...]
    base: Task | None
    sc: Task | None
    sf: Task | None
    deleted_side: Side | None = None
    message: str = ""
    invalid_sides: tuple[Side, ...] = ()  # INVALID: the side(s) that sent the unreadable values


class Choice(StrEnum):
    TAKE_SALESCONNECT = "salesconnect"
    TAKE_SALESFORCE = "salesforce"
    CUSTOM = "custom"  # the user typed a value
    RESTORE = "restore"  # edit-vs-delete: recreate the deleted side from the edited one
    DELETE = "delete"  # edit-vs-delete: delete the edited side too


@dataclass(frozen=True, slots=True)
class Resolution:
    """The user's answer to a conflict, applied by the next run.

    `choices` maps each disputed field to a Choice; `values` holds CUSTOM values.
    For EDIT_VS_DELETE, `choices` has the single key "record" with RESTORE or DELETE.
    """

    conflict_id: str
    choices: Mapping[str, Choice]
    values: Mapping[str, Any] = field(default_factory=frozen_map)


class ActionKind(StrEnum):
    CREATE = "create"  # create on `target` from the other side's task, then link
    UPDATE = "update"  # write `changes` to `target`
    DELETE = "delete"  # delete on `target`, then unlink
    SET_BASE = "set_base"  # no remote write: record a new base (e.g. both sides agree)
    UNLINK = "unlink"  # no remote write: drop a link whose tasks are gone on both sides


@quick_init
@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan.

    `sc_id`/`sf_id` identify the task pair (one is None for a create from an unlinked task).
    `changes` holds canonical field values to write (UPDATE) or the full task (CREATE).
    `new_base` is the base to record once the write is confirmed.
    """

    kind: ActionKind
    target: Side | None
    sc_id: str | None
    sf_id: str | None
    changes: Mapping[str, Any] = field(default_factory=frozen_map)
    new_base: Task | None = None
    notes: Mapping[str, str] = field(default_factory=frozen_map)
    reason: str = ""
    # The fields of `new_base` this action settles once confirmed. Record the base with
    # `settle_base(link.base, action)`, so a failed sibling write never advances its fields.
    settles: tuple[str, ...] = ()


def settle_base(base: Task, action: Action) -> Task:
    """The link's base after `action` was confirmed: only the fields it settles move."""
    if action.new_base is None:
        return base
    return base.replace(**{name: action.new_base.get(name) for name in action.settles})


@dataclass(frozen=True, slots=True)
class Skip:
    """A task the planner left alone on purpose, and why (shown by --dry-run and the log)."""

    side: Side
    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class GuardTrip:
    """The mass-delete guard stopped the deletes of this run (rule 14)."""

    side: Side
    deletes: int
    linked: int
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    skipped: tuple[Skip, ...] = ()
    guard: GuardTrip | None = None  # the first trip, if any (see `guards`)
    guards: tuple[GuardTrip, ...] = ()  # every side whose deletes were held back
    resolved: tuple[str, ...] = ()  # conflict ids whose saved resolution became actions

    @property
    def writes(self) -> tuple[Action, ...]:
        """Actions that change a remote service."""
        return tuple(
            a
            for a in self.actions
            if a.kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DELETE)
        )

    @property
    def is_empty(self) -> bool:
        return not self.actions and not self.conflicts


# Salesforce's standard Task picklists, used when the org's own values are not known.
STANDARD_SF_STATUSES: tuple[str, ...] = (
    "Not Started",
    "In Progress",
    "Completed",
    "Waiting on someone else",
    "Deferred",
)
STANDARD_SF_PRIORITIES: tuple[str, ...] = ("High", "Normal", "Low")


@dataclass(frozen=True)
class SfPicklists:
    """The org's Task Status and Priority values (read from TaskStatus/TaskPriority).

    `open_status`/`closed_status` are what SC `open`/`complete` map to; `normal_priority`/
    `high_priority` likewise (None when the org has no such value). Build it from the org's
    rows with `sync.mapping.build_picklists`.
    """

    statuses: tuple[str, ...] = STANDARD_SF_STATUSES
    priorities: tuple[str, ...] = STANDARD_SF_PRIORITIES
    open_status: str | None = "Not Started"
    closed_status: str | None = "Completed"
    closed_statuses: frozenset[str] = frozenset({"Completed"})
    normal_priority: str | None = "Normal"
    high_priority: str | None = "High"


@dataclass(frozen=True)
class PlanSettings:
    """What the planner needs to know besides the tasks (all plain data, no clock).

    `enabled_at` is when the user turned sync on (rule 1); None means "not enabled": linked
    tasks still sync but nothing unlinked is imported or pushed. `policies` maps a field to its
    conflict policy (missing = manual). The guard holds back one side's deletes when they
    exceed `guard_max_share` of its linked tasks and number at least `guard_min_deletes`, or
    when they would empty a side holding at least `guard_empty_min_linked` linked tasks;
    `allow_mass_delete` lets them through once the user confirmed.
    """

    enabled_at: datetime | None = None
    import_window: timedelta = timedelta(hours=24)
    policies: Mapping[str, Policy] = field(default_factory=frozen_map)
    picklists: SfPicklists = field(default_factory=SfPicklists)
    guard_max_share: float = 0.5
    guard_min_deletes: int = 5
    guard_empty_min_linked: int = 3
    allow_mass_delete: bool = False

    def policy(self, field_name: str) -> Policy:
        return Policy(self.policies.get(field_name, Policy.MANUAL))
