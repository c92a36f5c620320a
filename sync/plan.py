"""The one place where every decision about a task is made: pure, no I/O, no clock.

    plan(links, sc_tasks, sf_tasks, settings, now, *, conflicts=(), resolutions=(),
         linked_count=None) -> Plan

Inputs:
- `links`: ALL links (with their base and notes), or only the links this run can touch: every
  link with a side in `sc_tasks`/`sf_tasks`, a parked conflict or an answer (any other link
  produces no action), with `linked_count` = how many links there are in all (the mass-delete
  guard compares the deletes with it). Both give the same plan, except that a broken link (R13)
  left out is not reported.
- `sc_tasks` / `sf_tasks`: only the tasks that changed since the last run, tombstones included
  (`SideTask(deleted=True)`). A linked side missing from the input is unchanged (rule 12).
- `conflicts`: the conflicts parked by earlier runs (from the store). They matter: for a link in
  conflict, a side missing from the input is taken as last seen in its conflict, not as the base.
- `resolutions`: the user's saved answers, applied by this run.

Output: the actions to run, and `Plan.conflicts` = the COMPLETE set of open conflicts after this
run (store it in place of the old set). `Plan.resolved` lists the resolutions this run used up
(applied, or stale because their conflict changed): drop them. Record bases with
`model.settle_base(link.base, action)` for each confirmed action.

A RESTORE (edit-vs-delete answered "restore") is a CREATE whose id on the target side is None
while the other id is the surviving task: link the new task to it, replacing the old link.

The decision table this implements is in docs/architecture.md; each row has a test named after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.mapping import SF_LIMITS, fit, normalize_text, parse_date, project_to_sf
from sync.model import (
    CANONICAL_PRIORITIES,
    CANONICAL_STATUSES,
    FIELDS,
    PRIORITY_NORMAL,
    STATUS_COMPLETE,
    STATUS_OPEN,
    Action,
    ActionKind,
    Choice,
    Conflict,
    ConflictKind,
    GuardTrip,
    Link,
    Note,
    Plan,
    PlanSettings,
    Policy,
    Resolution,
    Side,
    SideTask,
    Skip,
    Task,
    frozen_map,
)

__all__ = ["command_center", "conflict_id", "due_soon", "local_today", "plan"]

PICKLIST_FIELDS = ("status", "priority")


def conflict_id(sc_id: str, sf_id: str, kind: ConflictKind) -> str:
    """Stable across runs: the same link in the same kind of conflict has the same id."""
    return f"{kind.value}:{sc_id}|{sf_id}"


# --- the plan -------------------------------------------------------------------------------


@dataclass
class _Builder:
    settings: PlanSettings
    actions: list[Action] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    kept_resolutions: set[str] = field(default_factory=set)  # links skipped: answer still due
    guarded_deletes: set[int] = field(default_factory=set)  # indexes of deletes the guard sees


def plan(
    links: Iterable[Link],
    sc_tasks: Iterable[SideTask],
    sf_tasks: Iterable[SideTask],
    settings: PlanSettings,
    now: datetime,
    *,
    conflicts: Iterable[Conflict] = (),
    resolutions: Iterable[Resolution] | Mapping[str, Resolution] = (),
    linked_count: int | None = None,
) -> Plan:
    """Decide what this run does. Never raises on bad task data: it parks or skips it.

    `linked_count`: the number of all links when `links` is only the touched ones (see above).
    """
    out = _Builder(settings)
    sc_by_id = _index(sc_tasks, Side.SALESCONNECT, out)
    sf_by_id = _index(sf_tasks, Side.SALESFORCE, out)
    links = list(links)
    stored = {c.id: c for c in conflicts}
    given = resolutions.values() if isinstance(resolutions, Mapping) else resolutions
    answers = {r.conflict_id: r for r in given}

    good_links = _check_links(links, out)
    for link in good_links:
        parked = answer = None
        if stored or answers:
            ids = [conflict_id(link.sc_id, link.sf_id, kind) for kind in ConflictKind]
            parked = next((stored[i] for i in ids if i in stored), None)
            answer = next((answers[i] for i in ids if i in answers), None)
        sc = sc_by_id.get(link.sc_id)
        sf = sf_by_id.get(link.sf_id)
        if parked is None and answer is None:
            if sc is None and sf is None:
                continue  # nothing changed on either side (rule 12)
            if (sc is None or sf is None) and _as_last_synced(link, sc or sf):  # type: ignore[arg-type]
                continue  # R01: one side read back exactly as last synced (an echo)
        _LinkDecision(link, sc, sf, parked, answer, out).decide()

    linked_sc = {link.sc_id for link in links}
    linked_sf = {link.sf_id for link in links}
    for task in sorted(sc_by_id.values(), key=lambda t: t.id):
        if task.id not in linked_sc:
            _unlinked_sc(task, out)
    for task in sorted(sf_by_id.values(), key=lambda t: t.id):
        if task.id not in linked_sf:
            _unlinked_sf(task, out)

    linked = len(good_links) if linked_count is None else max(linked_count, len(good_links))
    guards = _apply_guard(out, linked=linked)
    resolved = tuple(sorted(set(answers) - out.kept_resolutions))
    return Plan(
        actions=tuple(out.actions),
        conflicts=tuple(sorted(out.conflicts, key=lambda c: c.id)),
        skipped=tuple(out.skipped),
        guard=guards[0] if guards else None,
        guards=guards,
        resolved=resolved,
    )


def _as_last_synced(link: Link, task: SideTask) -> bool:
    """The one side read holds exactly the link's base, as that side holds it, and there is
    nothing else to settle: no note on the link, and a base that fits Salesforce as it is (so
    no cut to note). `_LinkDecision` would find every field unchanged (F01) and do nothing
    (R01): the common case of a run that reads back its own writes, decided without it."""
    if task.deleted or not task.in_scope or task.problems or link.notes:
        return False
    base = link.base
    return task.fields == base and project_to_sf(base) is base


def _index(tasks: Iterable[SideTask], side: Side, out: _Builder) -> dict[str, SideTask]:
    """Tasks by id. A live record beats a tombstone for the same id (it was restored)."""
    by_id: dict[str, SideTask] = {}
    for task in tasks:
        if task.side is not side:
            out.skipped.append(Skip(task.side, task.id, f"given as a {side.label} task"))
            continue
        if not task.id:
            out.skipped.append(Skip(side, "", "a task without an id"))
            continue
        seen = by_id.get(task.id)
        if seen is None or seen.deleted or not task.deleted:
            by_id[task.id] = task
    return by_id


def _check_links(links: list[Link], out: _Builder) -> list[Link]:
    """Links that can be trusted; a link with a missing or shared id is skipped, never guessed."""
    good: list[Link] = []
    sc_seen: set[str] = set()
    sf_seen: set[str] = set()
    for link in links:
        if not link.sc_id or not link.sf_id:
            side = Side.SALESCONNECT if not link.sc_id else Side.SALESFORCE
            other = link.sf_id or link.sc_id
            out.skipped.append(Skip(side.other, other, f"link has no {side.label} id"))
        elif link.sc_id in sc_seen or link.sf_id in sf_seen:
            out.skipped.append(
                Skip(Side.SALESCONNECT, link.sc_id, f"link {link.key} shares a task with another")
            )
        else:
            good.append(link)
        sc_seen.add(link.sc_id)
        sf_seen.add(link.sf_id)
    return good


# --- one link -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """One side of a link as the planner sees it: current if it changed, else last seen."""

    side: Side
    present: bool
    deleted: bool
    fields: Task | None
    task: SideTask | None = None

    def unmapped(self) -> set[str]:
        if self.side is Side.SALESCONNECT or self.fields is None:
            return set()
        return {f for f in PICKLIST_FIELDS if self.fields.get(f) is None}


class _LinkDecision:
    def __init__(
        self,
        link: Link,
        sc: SideTask | None,
        sf: SideTask | None,
        parked: Conflict | None,
        answer: Resolution | None,
        out: _Builder,
    ) -> None:
        self.link, self.parked, self.answer, self.out = link, parked, answer, out
        self.base = link.base
        self.sc = self._view(Side.SALESCONNECT, sc)
        self.sf = self._view(Side.SALESFORCE, sf)

    def _view(self, side: Side, task: SideTask | None) -> _View:
        if task is not None:
            return _View(side, True, task.deleted, None if task.deleted else task.fields, task)
        parked = self.parked
        if parked is not None:
            if parked.kind is ConflictKind.EDIT_VS_DELETE and parked.deleted_side is side:
                return _View(side, False, True, None)
            snapshot = parked.sc if side is Side.SALESCONNECT else parked.sf
            if snapshot is None:  # the side was deleted when the conflict was parked
                return _View(side, False, True, None)
            return _View(side, False, False, snapshot)
        if side is Side.SALESCONNECT:
            return _View(side, False, False, self.base)
        unmapped = {f: None for f in PICKLIST_FIELDS if self.link.notes.get(f) == Note.UNMAPPED}
        return _View(side, False, False, project_to_sf(self.base).replace(**unmapped))

    def decide(self) -> None:
        for view in (self.sc, self.sf):
            task = view.task
            if task is not None and not task.deleted and not task.in_scope:
                self._skip(view.side, task.id, f"out of scope now ({task.scope_reason})")
                return
        if self._invalid():
            return
        if self.sc.deleted and self.sf.deleted:
            self._emit(ActionKind.UNLINK, None, reason="deleted on both sides")
        elif self.sc.deleted or self.sf.deleted:
            self._deleted_one_side()
        else:
            self._merge_fields()

    # -- skips and invalid data

    def _skip(self, side: Side, task_id: str, reason: str) -> None:
        self.out.skipped.append(Skip(side, task_id, reason))
        if self.parked is not None:
            self.out.conflicts.append(self.parked)
        if self.answer is not None:
            self.out.kept_resolutions.add(self.answer.conflict_id)

    def _invalid(self) -> bool:
        problems: dict[Side, Mapping[str, str]] = {}
        for view in (self.sc, self.sf):
            if view.task is not None and not view.task.deleted and view.task.problems:
                problems[view.side] = view.task.problems
        parked = self.parked
        if parked is not None and parked.kind is ConflictKind.INVALID:
            for side in _unreadable_sides(parked):
                view = self.sc if side is Side.SALESCONNECT else self.sf
                if not view.present:  # unchanged since: still unreadable
                    problems.setdefault(side, {f: "unreadable value" for f in parked.fields})
        if not problems:
            return False
        bad_fields = tuple(f for f in FIELDS if any(f in p for p in problems.values()))
        cid = conflict_id(self.link.sc_id, self.link.sf_id, ConflictKind.INVALID)
        if self.answer is not None and self.answer.conflict_id == cid:
            left = self._answer_invalid(bad_fields, set(problems))
            if not left:
                return True
            bad_fields = left
        message = "; ".join(
            f"{side.label}: {reason}"
            for side, found in problems.items()
            for reason in found.values()
        )
        unchanged = not any(v.present for v in (self.sc, self.sf))
        if parked is not None and parked.id == cid and unchanged and self.answer is None:
            self.out.conflicts.append(parked)
            return True
        self.out.conflicts.append(
            Conflict(
                id=cid,
                kind=ConflictKind.INVALID,
                sc_id=self.link.sc_id,
                sf_id=self.link.sf_id,
                fields=bad_fields,
                base=self.base,
                sc=self.sc.fields,
                sf=self.sf.fields,
                message=f"{message}. Fix it in that service, or choose a value here.",
                invalid_sides=tuple(
                    s for s in (Side.SALESCONNECT, Side.SALESFORCE) if s in problems
                ),
            )
        )
        return True

    def _answer_invalid(self, bad_fields: tuple[str, ...], bad_sides: set[Side]) -> tuple[str, ...]:
        """Write the chosen values over unreadable ones; the fields left unanswered."""
        chosen: dict[str, Any] = {}
        for name in bad_fields:
            value, ok = self._chosen_value(name, bad_sides)
            if ok:
                chosen[name] = value
        if chosen:
            self._write_values(
                chosen, force=bad_sides, reason="your choice for an unreadable value"
            )
        return tuple(f for f in bad_fields if f not in chosen)

    # -- deletes

    def _deleted_one_side(self) -> None:
        deleted, survivor = (self.sc, self.sf) if self.sc.deleted else (self.sf, self.sc)
        edited = self._edited(survivor)
        cid = conflict_id(self.link.sc_id, self.link.sf_id, ConflictKind.EDIT_VS_DELETE)
        answer = self.answer if self.answer and self.answer.conflict_id == cid else None
        choice = answer.choices.get("record") if answer else None
        stale = edited and choice is Choice.DELETE and not self._answered_as_is(deleted, survivor)
        if edited and choice is Choice.RESTORE:
            self._restore(deleted.side, survivor)
        elif edited and choice is Choice.DELETE and not stale:
            self._emit(ActionKind.DELETE, survivor.side, reason="you chose delete", guarded=False)
        elif edited:
            again = " It changed again since your choice: choose again." if stale else ""
            self.out.conflicts.append(
                Conflict(
                    id=cid,
                    kind=ConflictKind.EDIT_VS_DELETE,
                    sc_id=self.link.sc_id,
                    sf_id=self.link.sf_id,
                    fields=tuple(edited),
                    base=self.base,
                    sc=self.sc.fields,
                    sf=self.sf.fields,
                    deleted_side=deleted.side,
                    message=(
                        f"Deleted in {deleted.side.label} but edited in {survivor.side.label} "
                        f"({', '.join(edited)}): restore it or delete it too.{again}"
                    ),
                )
            )
        else:
            self._emit(
                ActionKind.DELETE,
                survivor.side,
                reason=f"deleted in {deleted.side.label}",
                guarded=True,
            )

    def _answered_as_is(self, deleted: _View, survivor: _View) -> bool:
        """Is the survivor exactly as the user saw it when answering "delete"? (rule 11)

        A delete answer is only good for the state it was given for: if the survivor changed
        since (or the conflict the answer was for is not known), the user must choose again.
        """
        parked = self.parked
        if parked is None or parked.kind is not ConflictKind.EDIT_VS_DELETE:
            return False
        if parked.deleted_side is not deleted.side:
            return False
        shown = parked.sc if survivor.side is Side.SALESCONNECT else parked.sf
        return shown is not None and shown == survivor.fields

    def _edited(self, view: _View) -> list[str]:
        """The fields of `view` that differ from the base (as that side would hold it)."""
        assert view.fields is not None
        expected = self.base if view.side is Side.SALESCONNECT else project_to_sf(self.base)
        noted_unmapped = {f for f, n in self.link.notes.items() if n == Note.UNMAPPED}
        return [
            f
            for f in FIELDS
            if view.fields.get(f) != expected.get(f)
            and not (f in view.unmapped() and f in noted_unmapped)
        ]

    def _restore(self, target: Side, survivor: _View) -> None:
        assert survivor.fields is not None
        values = survivor.fields.replace(
            **{f: self.base.get(f) for f in survivor.unmapped()}  # SC needs a value
        )
        notes = {f: Note.UNMAPPED for f in survivor.unmapped()}
        notes.update(_truncation_notes(values))
        self.out.actions.append(
            Action(
                kind=ActionKind.CREATE,
                target=target,
                sc_id=self.link.sc_id if target is Side.SALESFORCE else None,
                sf_id=self.link.sf_id if target is Side.SALESCONNECT else None,
                changes=frozen_map(values.as_dict()),
                new_base=values,
                notes=frozen_map(notes),
                reason="restore (your choice)",
                settles=FIELDS,
            )
        )

    # -- fields

    def _merge_fields(self) -> None:
        assert self.sc.fields is not None and self.sf.fields is not None
        sc, sf, base = self.sc.fields, self.sf.fields, self.base
        projected_base = project_to_sf(base)
        unmapped = self.sf.unmapped()
        to_sf: dict[str, Any] = {}
        to_sc: dict[str, Any] = {}
        agreed: dict[str, Any] = {}
        disputed: list[str] = []
        stale: list[str] = []
        cid = conflict_id(self.link.sc_id, self.link.sf_id, ConflictKind.FIELDS)
        answer = self.answer if self.answer and self.answer.conflict_id == cid else None

        for name in FIELDS:
            s, r, b = sc.get(name), sf.get(name), base.get(name)
            sc_changed = s != b
            if name in unmapped:
                if sc_changed:  # rule 9: SC changes still push to SF
                    to_sf[name] = s
                continue
            sf_changed = r != projected_base.get(name)
            s_in_sf = _as_sf(name, s)
            if not sc_changed and not sf_changed:
                continue
            if sc_changed and not sf_changed:
                (agreed if s_in_sf == r else to_sf)[name] = s
            elif sf_changed and not sc_changed:
                to_sc[name] = r
            elif s_in_sf == r:
                agreed[name] = s
            else:
                policy = self.out.settings.policy(name)
                if policy is Policy.SALESCONNECT_WINS:
                    to_sf[name] = s
                elif policy is Policy.SALESFORCE_WINS:
                    to_sc[name] = r
                elif answer is not None and name in answer.choices:
                    if self._is_stale(name):
                        stale.append(name)
                        disputed.append(name)
                        continue
                    value, ok = self._chosen_value(name, set())
                    if not ok:
                        disputed.append(name)
                        continue
                    if value != s:
                        to_sc[name] = value
                    if _as_sf(name, value) != r:
                        to_sf[name] = value
                    if value == s and _as_sf(name, value) == r:
                        agreed[name] = value
                else:
                    disputed.append(name)

        # (A CUSTOM answer writes the same value to both sides.)
        new_base = base.replace(**{**agreed, **to_sf, **to_sc})
        notes = dict(_truncation_notes(new_base))
        notes.update({f: Note.UNMAPPED for f in unmapped if f not in to_sf})
        self._emit_field_actions(to_sf, to_sc, agreed, new_base, notes)
        if disputed:
            message = "Changed on both sides: " + ", ".join(disputed) + "."
            if stale:
                message += " Both sides changed again since your choice: choose again."
            self.out.conflicts.append(
                Conflict(
                    id=cid,
                    kind=ConflictKind.FIELDS,
                    sc_id=self.link.sc_id,
                    sf_id=self.link.sf_id,
                    fields=tuple(disputed),
                    base=base,
                    sc=sc,
                    sf=sf,
                    message=message,
                )
            )

    def _emit_field_actions(
        self,
        to_sf: dict[str, Any],
        to_sc: dict[str, Any],
        agreed: dict[str, Any],
        new_base: Task,
        notes: dict[str, str],
    ) -> None:
        common = {"sc_id": self.link.sc_id, "sf_id": self.link.sf_id, "new_base": new_base}
        frozen_notes = frozen_map(notes)
        if to_sf:
            self.out.actions.append(
                Action(
                    ActionKind.UPDATE,
                    Side.SALESFORCE,
                    changes=frozen_map(to_sf),
                    notes=frozen_notes,
                    reason="changed in Sales Connect: " + ", ".join(to_sf),
                    settles=tuple(to_sf),
                    **common,
                )
            )
        if to_sc:
            self.out.actions.append(
                Action(
                    ActionKind.UPDATE,
                    Side.SALESCONNECT,
                    changes=frozen_map(to_sc),
                    notes=frozen_notes,
                    reason="changed in Salesforce: " + ", ".join(to_sc),
                    settles=tuple(to_sc),
                    **common,
                )
            )
        if agreed or (not to_sf and not to_sc and notes != dict(self.link.notes)):
            reason = "same change on both sides: " + ", ".join(agreed) if agreed else "notes"
            self.out.actions.append(
                Action(
                    ActionKind.SET_BASE,
                    None,
                    notes=frozen_notes,
                    reason=reason,
                    settles=tuple(agreed),
                    **common,
                )
            )

    # -- resolutions

    def _is_stale(self, name: str) -> bool:
        """Did either side change this field since the conflict the user answered was shown?"""
        parked = self.parked
        if parked is None or parked.sc is None or parked.sf is None:
            return False
        assert self.sc.fields is not None and self.sf.fields is not None
        return parked.sc.get(name) != self.sc.fields.get(name) or parked.sf.get(
            name
        ) != self.sf.fields.get(name)

    def _chosen_value(self, name: str, unreadable: set[Side]) -> tuple[Any, bool]:
        """The value the user chose for `name`, if the choice can be carried out."""
        assert self.answer is not None
        choice = self.answer.choices.get(name)
        if choice is Choice.CUSTOM:
            return _coerce(name, self.answer.values.get(name))
        side = {
            Choice.TAKE_SALESCONNECT: Side.SALESCONNECT,
            Choice.TAKE_SALESFORCE: Side.SALESFORCE,
        }
        if choice not in side or side[choice] in unreadable:
            return None, False
        view = self.sc if side[choice] is Side.SALESCONNECT else self.sf
        if view.fields is None or name in view.unmapped():
            return None, False
        return view.fields.get(name), True

    def _write_values(self, values: dict[str, Any], force: set[Side], reason: str) -> None:
        """Write `values` to every side that does not hold them yet, and settle the base."""
        to_sc = {
            f: v
            for f, v in values.items()
            if Side.SALESCONNECT in force or (self.sc.fields and self.sc.fields.get(f) != v)
        }
        to_sf = {
            f: v
            for f, v in values.items()
            if Side.SALESFORCE in force
            or (self.sf.fields and self.sf.fields.get(f) != _as_sf(f, v))
        }
        new_base = self.base.replace(**values)
        notes = {**self.link.notes, **_truncation_notes(new_base)}
        for target, changes in ((Side.SALESFORCE, to_sf), (Side.SALESCONNECT, to_sc)):
            if changes:
                self.out.actions.append(
                    Action(
                        ActionKind.UPDATE,
                        target,
                        self.link.sc_id,
                        self.link.sf_id,
                        changes=frozen_map(changes),
                        new_base=new_base,
                        notes=frozen_map(notes),
                        reason=reason,
                        settles=tuple(changes),
                    )
                )

    # -- output

    def _emit(
        self, kind: ActionKind, target: Side | None, reason: str, guarded: bool = False
    ) -> None:
        if guarded:
            self.out.guarded_deletes.add(len(self.out.actions))
        self.out.actions.append(
            Action(kind, target, self.link.sc_id, self.link.sf_id, reason=reason)
        )


def _unreadable_sides(parked: Conflict) -> tuple[Side, ...]:
    """The sides an INVALID conflict was parked for.

    A conflict stored without them (an older state file) must still never let the unreadable
    value through as "no value": take every side whose snapshot lacks one of the fields.
    """
    if parked.invalid_sides:
        return parked.invalid_sides
    lacking = tuple(
        side
        for side, snapshot in ((Side.SALESCONNECT, parked.sc), (Side.SALESFORCE, parked.sf))
        if snapshot is not None and any(snapshot.get(f) is None for f in parked.fields)
    )
    return lacking or (Side.SALESCONNECT, Side.SALESFORCE)


def _as_sf(name: str, value: Any) -> Any:
    """A canonical value as Salesforce would hold it (text cut to fit)."""
    limit = SF_LIMITS.get(name)
    return fit(value, limit) if limit is not None and isinstance(value, str) else value


def _truncation_notes(task: Task) -> dict[str, str]:
    """The fields Salesforce gets cut (`project_to_sf` hands back the task itself when
    everything fits: every task of an import is checked)."""
    cut = project_to_sf(task)
    if cut is task:
        return {}
    return {name: Note.TRUNCATED for name in SF_LIMITS if cut.get(name) != task.get(name)}


def _coerce(name: str, value: Any) -> tuple[Any, bool]:
    """A typed-in value in canonical form, or (None, False) if it cannot be a value of `name`."""
    if name in ("name", "details"):
        text = normalize_text(value)
        return (text, True) if name == "details" or text else (None, False)
    if name == "status":
        return (value, True) if value in CANONICAL_STATUSES else (None, False)
    if name == "priority":
        return (value, True) if value in CANONICAL_PRIORITIES else (None, False)
    if name == "due_date":
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value, True
        try:
            return parse_date(value), True
        except ValueError:
            return None, False
    return None, False


# --- unlinked tasks (first sync and new tasks, rule 3) ----------------------------------------


def _unlinked_sc(task: SideTask, out: _Builder) -> None:
    enabled_at = out.settings.enabled_at
    if task.deleted:
        return  # never synced, nothing to do
    if reason := _not_importable(task):
        out.skipped.append(Skip(task.side, task.id, reason))
    elif enabled_at is None:
        out.skipped.append(Skip(task.side, task.id, "sync is not enabled"))
    elif task.created_at is None:
        out.skipped.append(Skip(task.side, task.id, "no readable creation time"))
    elif task.created_at < enabled_at:
        out.skipped.append(Skip(task.side, task.id, "created before sync was enabled"))
    else:
        fields = task.fields
        out.actions.append(
            Action(
                ActionKind.CREATE,
                Side.SALESFORCE,
                sc_id=task.id,
                sf_id=None,
                changes=frozen_map(fields.as_dict()),
                new_base=fields,
                notes=frozen_map(_truncation_notes(fields)),
                reason="new in Sales Connect",
                settles=FIELDS,
            )
        )


def _unlinked_sf(task: SideTask, out: _Builder) -> None:
    settings = out.settings
    enabled_at = settings.enabled_at
    if task.deleted:
        return
    if reason := _not_importable(task):
        out.skipped.append(Skip(task.side, task.id, reason))
    elif enabled_at is None:
        out.skipped.append(Skip(task.side, task.id, "sync is not enabled"))
    elif task.updated_at is None:
        out.skipped.append(Skip(task.side, task.id, "no readable modification time"))
    elif task.updated_at < enabled_at - settings.import_window:
        out.skipped.append(Skip(task.side, task.id, "last changed before the first-sync window"))
    else:
        # SC needs a status and a priority: an unmapped SF value starts as SC's nearest one.
        raw_status = task.raw.get("status")
        closed = raw_status in settings.picklists.closed_statuses
        defaults = {
            "status": STATUS_COMPLETE if closed else STATUS_OPEN,
            "priority": PRIORITY_NORMAL,
        }
        unmapped = [f for f in PICKLIST_FIELDS if task.fields.get(f) is None]
        fields = task.fields.replace(**{f: defaults[f] for f in unmapped})
        out.actions.append(
            Action(
                ActionKind.CREATE,
                Side.SALESCONNECT,
                sc_id=None,
                sf_id=task.id,
                changes=frozen_map(fields.as_dict()),
                new_base=fields,
                notes=frozen_map({f: Note.UNMAPPED for f in unmapped}),
                reason="new in Salesforce",
                settles=FIELDS,
            )
        )


def _not_importable(task: SideTask) -> str:
    if not task.in_scope:
        return f"out of scope ({task.scope_reason})"
    if task.problems:
        return "cannot be read: " + "; ".join(task.problems.values())
    return ""


# --- mass-delete guard (rule 14) ------------------------------------------------------------


def _apply_guard(out: _Builder, linked: int) -> tuple[GuardTrip, ...]:
    settings = out.settings
    if settings.allow_mass_delete or linked == 0:
        return ()
    trips: list[GuardTrip] = []
    for side in (Side.SALESCONNECT, Side.SALESFORCE):
        held = [i for i in sorted(out.guarded_deletes) if out.actions[i].target is side]
        count = len(held)
        too_many = count >= settings.guard_min_deletes and count > settings.guard_max_share * linked
        emptied = count == linked and linked >= settings.guard_empty_min_linked
        if not (too_many or emptied):
            continue
        what = "every" if emptied else f"{count} of {linked}"
        message = (
            f"This run would delete {what} linked task(s) in {side.label} because they were "
            f"deleted in {side.other.label}. Nothing was deleted: confirm to let them through."
        )
        trips.append(GuardTrip(side=side, deletes=count, linked=linked, message=message))
        for index in held:
            action = out.actions[index]
            task_id = action.sc_id if side is Side.SALESCONNECT else action.sf_id
            out.skipped.append(Skip(side, task_id or "", "held back by the mass-delete guard"))
    if trips:
        held_sides = {trip.side for trip in trips}
        out.actions[:] = [
            a
            for i, a in enumerate(out.actions)
            if not (i in out.guarded_deletes and a.target in held_sides)
        ]
    return tuple(trips)


# --- Command Center (rule 4) ----------------------------------------------------------------


def local_today(tz: str | ZoneInfo, now: datetime) -> date:
    """The user's calendar day at `now` (a naive `now` is taken as UTC)."""
    zone = _zone(tz)
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    return moment.astimezone(zone).date()


def due_soon(due: date | None, tz: str | ZoneInfo, now: datetime) -> bool:
    """Due today or tomorrow in the user's time zone."""
    if due is None:
        return False
    today = local_today(tz, now)
    return today <= due <= today + timedelta(days=1)


def command_center(items: Iterable[Any], tz: str | ZoneInfo, now: datetime) -> list[Any]:
    """The items due today or tomorrow, in their order (rule 4: a view, not a sync filter).

    An item is a Task, a SideTask, or a dashboard row with `sc`/`sf` SideTasks (shown if
    either side is due soon). Raises ValueError for an unknown time zone name.
    """
    zone = _zone(tz)
    return [item for item in items if any(due_soon(d, zone, now) for d in _due_dates(item))]


def _due_dates(item: Any) -> list[date | None]:
    if isinstance(item, Task):
        return [item.due_date]
    if isinstance(item, SideTask):
        return [item.fields.due_date]
    dates: list[date | None] = []
    for side in ("sc", "sf"):
        task = getattr(item, side, None)
        if isinstance(task, SideTask) and not task.deleted:
            dates.append(task.fields.due_date)
    return dates


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Paris'"
        ) from exc
