"""One test per row of the decision table in docs/architecture.md, named after the row."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sync.mapping import ELLIPSIS, sc_to_side_task, sf_to_side_task, task_to_sf
from sync.model import (
    Action,
    ActionKind,
    Choice,
    ConflictKind,
    Link,
    Note,
    PlanSettings,
    Policy,
    Resolution,
    Side,
    SideTask,
    Task,
    frozen_map,
    settle_base,
)
from sync.plan import command_center, conflict_id, local_today, plan

ENABLED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
NOW = ENABLED + timedelta(hours=1)
USER = "u-1"
OWNER = "005U"
BASE = Task(
    name="Call Jane", status="open", priority="normal", due_date=date(2026, 12, 1), details="d"
)
SETTINGS = PlanSettings(enabled_at=ENABLED)


def sc(task_id: str = "s1", fields: Task = BASE, **kw) -> SideTask:
    kw.setdefault("created_at", NOW)
    kw.setdefault("updated_at", NOW)
    return SideTask(Side.SALESCONNECT, task_id, fields, **kw)


def sf(task_id: str = "f1", fields: Task = BASE, **kw) -> SideTask:
    kw.setdefault("created_at", NOW)
    kw.setdefault("updated_at", NOW)
    return SideTask(Side.SALESFORCE, task_id, fields, **kw)


def sf_wire(task_id: str = "f1", **overrides) -> SideTask:
    """An SF task as the real record shape, through the real mapping."""
    record = {
        "Id": task_id,
        "OwnerId": OWNER,
        "TaskSubtype": "Task",
        "IsRecurrence": False,
        "IsDeleted": False,
        "SystemModstamp": "2026-11-30T10:00:00.000+0000",
        "CreatedDate": "2026-11-30T10:00:00.000+0000",
        **task_to_sf(BASE.as_dict()).record,
        **overrides,
    }
    return sf_to_side_task(record, OWNER)


def link(base: Task = BASE, **kw) -> Link:
    return Link("s1", "f1", base, **kw)


def gone(side: Side, task_id: str) -> SideTask:
    return SideTask(side, task_id, Task(name=""), deleted=True)


def only(actions, kind: ActionKind, target: Side | None = None) -> Action:
    found = [a for a in actions if a.kind is kind and (target is None or a.target is target)]
    assert len(found) == 1, actions
    return found[0]


# --- record level: links ------------------------------------------------------------------


def test_row_R01_unchanged_link_does_nothing():
    result = plan([link()], [], [], SETTINGS, NOW)
    assert result.is_empty and not result.skipped


def test_row_R02_sc_delete_with_sf_unchanged_deletes_in_sf():
    result = plan([link()], [gone(Side.SALESCONNECT, "s1")], [], SETTINGS, NOW)
    delete = only(result.actions, ActionKind.DELETE)
    assert (delete.target, delete.sf_id) == (Side.SALESFORCE, "f1")
    assert not result.conflicts


def test_row_R03_sf_delete_with_sc_unchanged_deletes_in_sc():
    # SC is in the input but holds the base: touched, not edited.
    result = plan([link()], [sc()], [gone(Side.SALESFORCE, "f1")], SETTINGS, NOW)
    delete = only(result.actions, ActionKind.DELETE)
    assert (delete.target, delete.sc_id) == (Side.SALESCONNECT, "s1")


def test_row_R04_both_deleted_unlinks():
    result = plan(
        [link()], [gone(Side.SALESCONNECT, "s1")], [gone(Side.SALESFORCE, "f1")], SETTINGS, NOW
    )
    unlink = only(result.actions, ActionKind.UNLINK)
    assert unlink.target is None and not result.writes


def test_row_R05_sc_delete_with_sf_edit_is_conflict():
    edited = sf(fields=BASE.replace(due_date=date(2026, 12, 5)))
    result = plan([link()], [gone(Side.SALESCONNECT, "s1")], [edited], SETTINGS, NOW)
    assert not result.writes
    (conflict,) = result.conflicts
    assert conflict.kind is ConflictKind.EDIT_VS_DELETE
    assert conflict.deleted_side is Side.SALESCONNECT
    assert conflict.fields == ("due_date",)
    assert conflict.id == conflict_id("s1", "f1", ConflictKind.EDIT_VS_DELETE)


def test_row_R06_sf_delete_with_sc_edit_is_conflict():
    edited = sc(fields=BASE.replace(status="complete"))
    result = plan([link()], [edited], [gone(Side.SALESFORCE, "f1")], SETTINGS, NOW)
    assert not result.writes
    (conflict,) = result.conflicts
    assert conflict.kind is ConflictKind.EDIT_VS_DELETE
    assert conflict.deleted_side is Side.SALESFORCE


def _edit_vs_delete_parked():
    edited = BASE.replace(status="complete")
    first = plan([link()], [sc(fields=edited)], [gone(Side.SALESFORCE, "f1")], SETTINGS, NOW)
    return edited, first.conflicts[0]


def test_row_R07_restore_answer_recreates_the_deleted_side():
    edited, conflict = _edit_vs_delete_parked()
    answer = Resolution(conflict.id, frozen_map({"record": Choice.RESTORE}))
    # Next run: nothing new crossed the wire; the conflict and the answer come from the store.
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=[conflict], resolutions=[answer])
    create = only(result.actions, ActionKind.CREATE)
    assert create.target is Side.SALESFORCE
    assert (create.sc_id, create.sf_id) == ("s1", None)
    assert create.new_base == edited and create.changes["status"] == "complete"
    assert not result.conflicts
    assert result.resolved == (conflict.id,)


def test_row_R08_delete_answer_deletes_the_edited_side():
    _, conflict = _edit_vs_delete_parked()
    answer = Resolution(conflict.id, frozen_map({"record": Choice.DELETE}))
    strict = PlanSettings(enabled_at=ENABLED, guard_empty_min_linked=1)
    result = plan([link()], [], [], strict, NOW, conflicts=[conflict], resolutions=[answer])
    delete = only(result.actions, ActionKind.DELETE)
    assert delete.target is Side.SALESCONNECT
    assert result.guard is None and not result.conflicts


def test_row_R09_mass_delete_guard_holds_back_deletes():
    links = [Link(f"s{i}", f"f{i}", BASE) for i in range(10)]
    tombstones = [gone(Side.SALESFORCE, f"f{i}") for i in range(6)]
    result = plan(links, [], tombstones, SETTINGS, NOW)
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE]
    assert result.guard is not None
    assert (result.guard.side, result.guard.deletes, result.guard.linked) == (
        Side.SALESCONNECT,
        6,
        10,
    )
    assert len([s for s in result.skipped if "guard" in s.reason]) == 6
    # Below the share, the deletes go through; confirmed, they all go through.
    assert len(plan(links, [], tombstones[:5], SETTINGS, NOW).writes) == 5
    confirmed = PlanSettings(enabled_at=ENABLED, allow_mass_delete=True)
    assert len(plan(links, [], tombstones, confirmed, NOW).writes) == 6
    # A side suddenly empty trips it too, even below the minimum count.
    three = links[:3]
    emptied = plan(three, [], tombstones[:3], SETTINGS, NOW)
    assert emptied.guard is not None and not emptied.writes


def test_row_R10_side_out_of_scope_is_skipped():
    moved = sf_wire(OwnerId="005OTHER", Subject="Renamed")
    result = plan([link()], [], [moved], SETTINGS, NOW)
    assert not result.actions
    (skip,) = result.skipped
    assert skip.task_id == "f1" and "someone else" in skip.reason


def test_row_R11_unreadable_value_parks_invalid_conflict():
    bad = sf_wire(ActivityDate="2026-13-45", Subject="Call Jane today")
    result = plan([link()], [], [bad], SETTINGS, NOW)
    assert not result.actions
    (conflict,) = result.conflicts
    assert conflict.kind is ConflictKind.INVALID
    assert conflict.fields == ("due_date",)
    assert conflict.invalid_sides == (Side.SALESFORCE,)
    assert "2026-13-45" in conflict.message
    # Unchanged next run: still parked, same id.
    again = plan([link()], [], [], SETTINGS, NOW, conflicts=result.conflicts)
    assert [c.id for c in again.conflicts] == [conflict.id] and not again.actions


def test_row_R12_answer_to_invalid_writes_the_chosen_value():
    bad = sc_to_side_task(
        {"id": "s1", "name": "Call Jane", "status": "archived", "priority": "normal",
         "due_date": "2026-12-01", "details": "d", "assignee_id": USER},
        USER,
    )  # fmt: skip
    parked = plan([link()], [bad], [], SETTINGS, NOW).conflicts
    answer = Resolution(parked[0].id, frozen_map({"status": Choice.TAKE_SALESFORCE}))
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=parked, resolutions=[answer])
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT and dict(update.changes) == {"status": "open"}
    assert not result.conflicts and result.resolved == (parked[0].id,)


def test_row_R13_broken_link_is_skipped():
    links = [Link("", "f9", BASE), link(), Link("s1", "f2", BASE)]
    result = plan(links, [gone(Side.SALESCONNECT, "s1")], [], SETTINGS, NOW)
    reasons = [s.reason for s in result.skipped]
    assert any("no Sales Connect id" in r for r in reasons)
    assert any("shares a task" in r for r in reasons)
    # Only the good link acts; the duplicate never deletes f2.
    assert [(a.kind, a.sf_id) for a in result.actions] == [(ActionKind.DELETE, "f1")]


def test_row_R14_parked_conflict_stays_while_unchanged():
    first = plan(
        [link()],
        [sc(fields=BASE.replace(name="Call Jane A"))],
        [sf(fields=BASE.replace(name="Call Jane B"))],
        SETTINGS,
        NOW,
    )
    assert len(first.conflicts) == 1
    again = plan([link()], [], [], SETTINGS, NOW, conflicts=first.conflicts)
    assert again.conflicts == first.conflicts and not again.actions


def test_row_R15_absent_side_of_conflicted_link_is_last_seen():
    first = plan(
        [link()],
        [sc(fields=BASE.replace(name="Call Jane A"))],
        [sf(fields=BASE.replace(name="Call Jane B"))],
        SETTINGS,
        NOW,
    )
    # SC now also changes the due date; SF is not in the input.
    later = sc(fields=BASE.replace(name="Call Jane A", due_date=date(2026, 12, 9)))
    result = plan([link()], [later], [], SETTINGS, NOW, conflicts=first.conflicts)
    update = only(result.actions, ActionKind.UPDATE)
    assert dict(update.changes) == {"due_date": date(2026, 12, 9)}  # not the disputed name
    assert result.conflicts[0].fields == ("name",)


def test_row_R16_delete_answer_for_an_older_state_is_asked_again():
    _, conflict = _edit_vs_delete_parked()
    answer = Resolution(conflict.id, frozen_map({"record": Choice.DELETE}))
    # After the user chose delete, SC was edited again: the answer was not for this state.
    again = sc(fields=BASE.replace(status="complete", name="Call Jane now"))
    result = plan([link()], [again], [], SETTINGS, NOW, conflicts=[conflict], resolutions=[answer])
    assert not result.actions
    (asked,) = result.conflicts
    assert asked.id == conflict.id and asked.sc == again.fields
    assert "choose again" in asked.message
    assert result.resolved == (conflict.id,)
    # Touched but not changed (the same state re-sent): the answer still holds.
    same = sc(fields=conflict.sc, version="9")
    result = plan([link()], [same], [], SETTINGS, NOW, conflicts=[conflict], resolutions=[answer])
    assert only(result.actions, ActionKind.DELETE).target is Side.SALESCONNECT


def test_row_R17_delete_answer_never_deletes_the_side_the_user_kept():
    _, conflict = _edit_vs_delete_parked()  # SF deleted, SC edited
    answer = Resolution(conflict.id, frozen_map({"record": Choice.DELETE}))
    # Since then SF was undeleted (and edited) and SC deleted: the survivor is now SF.
    revived = sf(fields=BASE.replace(due_date=date(2026, 12, 7)))
    result = plan(
        [link()],
        [gone(Side.SALESCONNECT, "s1")],
        [revived],
        SETTINGS,
        NOW,
        conflicts=[conflict],
        resolutions=[answer],
    )
    assert not result.writes
    (asked,) = result.conflicts
    assert asked.deleted_side is Side.SALESCONNECT and "choose again" in asked.message
    # An answer without its parked conflict cannot say which state it was for.
    result = plan([link()], [], [], SETTINGS, NOW, resolutions=[answer])
    assert not result.writes


def test_row_R18_deleted_side_stays_deleted_while_unreadable_value_is_parked():
    bad = sf_wire(ActivityDate="2026-13-45")
    first = plan([link()], [gone(Side.SALESCONNECT, "s1")], [bad], SETTINGS, NOW)
    (conflict,) = first.conflicts
    assert conflict.kind is ConflictKind.INVALID and conflict.sc is None
    # "Take Sales Connect's value" cannot be carried out: that task is deleted.
    answer = Resolution(conflict.id, frozen_map({"due_date": Choice.TAKE_SALESCONNECT}))
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=[conflict], resolutions=[answer])
    assert not result.writes and [c.kind for c in result.conflicts] == [ConflictKind.INVALID]
    # Once SF is readable again, the SC delete is still known: edit-vs-delete, never an
    # update of the deleted SC task.
    fixed = sf(fields=BASE.replace(due_date=date(2026, 12, 7)))
    result = plan([link()], [], [fixed], SETTINGS, NOW, conflicts=[conflict])
    assert not result.writes
    (asked,) = result.conflicts
    assert asked.kind is ConflictKind.EDIT_VS_DELETE
    assert asked.deleted_side is Side.SALESCONNECT


# --- record level: unlinked tasks ---------------------------------------------------------


def test_row_U01_new_sc_task_after_enabling_is_pushed():
    task = sc("s7", BASE, created_at=ENABLED)
    create = only(plan([], [task], [], SETTINGS, NOW).actions, ActionKind.CREATE)
    assert (create.target, create.sc_id, create.sf_id) == (Side.SALESFORCE, "s7", None)
    assert create.new_base == BASE and dict(create.changes) == BASE.as_dict()


def test_row_U02_sc_task_from_before_enabling_is_not_pushed():
    task = sc("s7", BASE, created_at=ENABLED - timedelta(seconds=1))
    result = plan([], [task], [], SETTINGS, NOW)
    assert not result.actions
    assert result.skipped[0].reason == "created before sync was enabled"


def test_row_U03_sf_task_changed_in_window_is_imported():
    task = sf("f7", BASE, updated_at=ENABLED - timedelta(hours=24))
    create = only(plan([], [], [task], SETTINGS, NOW).actions, ActionKind.CREATE)
    assert (create.target, create.sc_id, create.sf_id) == (Side.SALESCONNECT, None, "f7")


def test_row_U04_sf_task_older_than_window_is_not_imported():
    task = sf("f7", BASE, updated_at=ENABLED - timedelta(hours=24, seconds=1))
    result = plan([], [], [task], SETTINGS, NOW)
    assert not result.actions and "window" in result.skipped[0].reason


@pytest.mark.parametrize(
    "task",
    [
        sc("s7", BASE, in_scope=False, scope_reason="assigned to someone else"),
        sf("f7", BASE, in_scope=False, scope_reason="a logged Call, not a reminder"),
    ],
)
def test_row_U05_out_of_scope_unlinked_task_is_skipped(task):
    sc_tasks = [task] if task.side is Side.SALESCONNECT else []
    sf_tasks = [task] if task.side is Side.SALESFORCE else []
    result = plan([], sc_tasks, sf_tasks, SETTINGS, NOW)
    assert not result.actions
    assert result.skipped[0].reason.startswith("out of scope (")


def test_row_U06_unreadable_unlinked_task_is_skipped():
    task = sf_wire("f7", ActivityDate="tomorrow")
    result = plan([], [], [task], SETTINGS, NOW)
    assert not result.actions
    assert "tomorrow" in result.skipped[0].reason


def test_row_U07_unlinked_tombstone_is_ignored():
    result = plan([], [gone(Side.SALESCONNECT, "s7")], [gone(Side.SALESFORCE, "f7")], SETTINGS, NOW)
    assert result.is_empty and not result.skipped


def test_row_U08_sf_import_of_unmapped_value_starts_from_sc_default():
    task = sf_wire("f7", Status="In Progress", Priority="Low")
    create = only(plan([], [], [task], SETTINGS, NOW).actions, ActionKind.CREATE)
    assert (create.changes["status"], create.changes["priority"]) == ("open", "normal")
    assert dict(create.notes) == {"status": Note.UNMAPPED, "priority": Note.UNMAPPED}
    deferred_closed = sf_wire("f8", Status="Completed")
    create = only(plan([], [], [deferred_closed], SETTINGS, NOW).actions, ActionKind.CREATE)
    assert create.changes["status"] == "complete"


def test_row_U09_nothing_unlinked_moves_while_disabled():
    result = plan([], [sc("s7")], [sf("f7")], PlanSettings(), NOW)
    assert not result.actions
    assert {s.reason for s in result.skipped} == {"sync is not enabled"}


# --- field level --------------------------------------------------------------------------


def test_row_F01_no_change_no_action():
    assert plan([link()], [sc()], [sf()], SETTINGS, NOW).is_empty


def test_row_F02_sc_change_is_copied_to_sf():
    result = plan([link()], [sc(fields=BASE.replace(details="new"))], [], SETTINGS, NOW)
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESFORCE and dict(update.changes) == {"details": "new"}
    assert settle_base(BASE, update) == BASE.replace(details="new")


def test_row_F03_sf_change_is_copied_to_sc():
    result = plan([link()], [], [sf(fields=BASE.replace(priority="high"))], SETTINGS, NOW)
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT and dict(update.changes) == {"priority": "high"}


def test_row_F04_same_change_on_both_sides_sets_base():
    same = BASE.replace(status="complete")
    result = plan([link()], [sc(fields=same)], [sf(fields=same)], SETTINGS, NOW)
    action = only(result.actions, ActionKind.SET_BASE)
    assert not result.writes and settle_base(BASE, action) == same


def test_row_F05_different_changes_with_manual_policy_is_conflict():
    ours = BASE.replace(name="Call Jane A", details="sc notes")
    theirs = BASE.replace(name="Call Jane B", due_date=date(2026, 12, 3))
    result = plan([link()], [sc(fields=ours)], [sf(fields=theirs)], SETTINGS, NOW)
    (conflict,) = result.conflicts
    assert conflict.kind is ConflictKind.FIELDS and conflict.fields == ("name",)
    assert (conflict.sc.name, conflict.sf.name, conflict.base.name) == (
        "Call Jane A",
        "Call Jane B",
        "Call Jane",
    )
    # The other fields still sync, and the disputed one is written nowhere.
    to_sf = only(result.actions, ActionKind.UPDATE, Side.SALESFORCE)
    to_sc = only(result.actions, ActionKind.UPDATE, Side.SALESCONNECT)
    assert dict(to_sf.changes) == {"details": "sc notes"}
    assert dict(to_sc.changes) == {"due_date": date(2026, 12, 3)}


@pytest.mark.parametrize(
    ("policy", "target", "value"),
    [
        (Policy.SALESCONNECT_WINS, Side.SALESFORCE, "Call Jane A"),
    ],
)
def test_row_F06_sales_connect_wins_policy_settles(policy, target, value):
    settings = PlanSettings(enabled_at=ENABLED, policies=frozen_map({"name": policy}))
    result = plan(
        [link()],
        [sc(fields=BASE.replace(name="Call Jane A"))],
        [sf(fields=BASE.replace(name="Call Jane B"))],
        settings,
        NOW,
    )
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is target and dict(update.changes) == {"name": value}
    assert not result.conflicts


def test_row_F07_salesforce_wins_policy_settles():
    settings = PlanSettings(
        enabled_at=ENABLED, policies=frozen_map({"name": Policy.SALESFORCE_WINS})
    )
    result = plan(
        [link()],
        [sc(fields=BASE.replace(name="Call Jane A"))],
        [sf(fields=BASE.replace(name="Call Jane B"))],
        settings,
        NOW,
    )
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT and dict(update.changes) == {"name": "Call Jane B"}
    assert not result.conflicts


def test_row_F08_unmapped_sf_value_is_not_synced():
    result = plan([link()], [], [sf_wire(Status="In Progress")], SETTINGS, NOW)
    assert not result.writes and not result.conflicts
    note = only(result.actions, ActionKind.SET_BASE)
    assert dict(note.notes) == {"status": Note.UNMAPPED}
    assert settle_base(BASE, note) == BASE
    # Once noted, the same state plans nothing.
    noted = link(notes=frozen_map({"status": Note.UNMAPPED}))
    assert plan([noted], [], [sf_wire(Status="In Progress")], SETTINGS, NOW).is_empty


def test_row_F09_sc_change_over_unmapped_value_pushes():
    noted = link(notes=frozen_map({"status": Note.UNMAPPED}))
    result = plan(
        [noted],
        [sc(fields=BASE.replace(status="complete"))],
        [sf_wire(Status="In Progress")],
        SETTINGS,
        NOW,
    )
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESFORCE and dict(update.changes) == {"status": "complete"}
    assert task_to_sf(update.changes).record == {"Status": "Completed"}
    assert "status" not in update.notes and not result.conflicts


def test_row_F10_sf_move_back_to_mapped_value_syncs():
    noted = link(notes=frozen_map({"status": Note.UNMAPPED}))
    result = plan([noted], [], [sf_wire(Status="Completed")], SETTINGS, NOW)
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT and dict(update.changes) == {"status": "complete"}
    assert dict(update.notes) == {}


def test_row_F11_long_sc_name_is_cut_and_not_seen_as_sf_edit():
    long_name = "Call " + "x" * 300
    result = plan([link()], [sc(fields=BASE.replace(name=long_name))], [], SETTINGS, NOW)
    update = only(result.actions, ActionKind.UPDATE)
    written = task_to_sf(update.changes).record["Subject"]
    assert len(written) == 255 and written.endswith(ELLIPSIS)
    assert update.notes["name"] == Note.TRUNCATED
    new_base = settle_base(BASE, update)
    assert new_base.name == long_name
    # SF reports the cut value back: no edit, nothing to do.
    relinked = link(base=new_base, notes=update.notes)
    echoed = sf(fields=new_base.replace(name=written))
    assert plan([relinked], [], [echoed], SETTINGS, NOW).is_empty


def test_row_F12_sf_edit_of_cut_name_is_copied():
    long_base = BASE.replace(name="Call " + "x" * 300)
    cut = task_to_sf({"name": long_base.name}).record["Subject"]
    new_subject = cut[:100] + " (called back)"
    edited = sf(fields=long_base.replace(name=new_subject))
    relinked = link(base=long_base, notes=frozen_map({"name": Note.TRUNCATED}))
    result = plan([relinked], [], [edited], SETTINGS, NOW)
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT
    assert update.changes["name"] == new_subject
    assert "name" not in update.notes


def test_row_F13_cosmetic_rewrite_is_no_change():
    rewritten = sf_wire(Subject="  Call Jane \r\n", Description="d\r\n")
    assert plan([link()], [], [rewritten], SETTINGS, NOW).is_empty


def test_row_F14_disjoint_edits_merge():
    result = plan(
        [link()],
        [sc(fields=BASE.replace(priority="high"))],
        [sf(fields=BASE.replace(due_date=None))],
        SETTINGS,
        NOW,
    )
    assert not result.conflicts
    assert dict(only(result.actions, ActionKind.UPDATE, Side.SALESFORCE).changes) == {
        "priority": "high"
    }
    assert dict(only(result.actions, ActionKind.UPDATE, Side.SALESCONNECT).changes) == {
        "due_date": None
    }


def _fields_conflict():
    ours, theirs = BASE.replace(name="Call Jane A"), BASE.replace(name="Call Jane B")
    first = plan([link()], [sc(fields=ours)], [sf(fields=theirs)], SETTINGS, NOW)
    return first.conflicts


def test_row_F15_answer_take_side_settles_field():
    parked = _fields_conflict()
    answer = Resolution(parked[0].id, frozen_map({"name": Choice.TAKE_SALESFORCE}))
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=parked, resolutions=[answer])
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESCONNECT and dict(update.changes) == {"name": "Call Jane B"}
    assert settle_base(BASE, update).name == "Call Jane B"
    assert not result.conflicts and result.resolved == (parked[0].id,)


def test_row_F16_answer_custom_value_is_written_to_both():
    parked = _fields_conflict()
    answer = Resolution(
        parked[0].id,
        frozen_map({"name": Choice.CUSTOM}),
        frozen_map({"name": "Call Jane (both)"}),
    )
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=parked, resolutions=[answer])
    targets = {a.target: dict(a.changes) for a in result.actions}
    assert targets == {
        Side.SALESCONNECT: {"name": "Call Jane (both)"},
        Side.SALESFORCE: {"name": "Call Jane (both)"},
    }
    assert not result.conflicts


def test_row_F17_stale_answer_is_asked_again():
    parked = _fields_conflict()
    answer = Resolution(parked[0].id, frozen_map({"name": Choice.TAKE_SALESCONNECT}))
    newer = sf(fields=BASE.replace(name="Call Jane C"))
    result = plan([link()], [], [newer], SETTINGS, NOW, conflicts=parked, resolutions=[answer])
    assert not result.writes
    (conflict,) = result.conflicts
    assert conflict.id == parked[0].id and conflict.sf.name == "Call Jane C"
    assert "choose again" in conflict.message
    assert result.resolved == (parked[0].id,)


# --- the table and the tests stay in step -------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
ROW = re.compile(r"^\| ([RUF]\d\d) \| (\w+) \|")


def test_every_decision_table_row_has_a_test_named_after_it():
    rows = [m.groups() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]
    assert len(rows) >= 30
    ids = [row_id for row_id, _ in rows]
    assert len(ids) == len(set(ids)), "duplicate row ids in the decision table"
    module = sys.modules[__name__]
    missing = [f"test_row_{i}_{n}" for i, n in rows if not hasattr(module, f"test_row_{i}_{n}")]
    assert not missing, f"rows without a test: {missing}"
    tests = {n for n in dir(module) if n.startswith("test_row_")}
    documented = {f"test_row_{i}_{n}" for i, n in rows}
    assert tests <= documented, f"tests for rows not in the table: {tests - documented}"


# --- beyond the table: bad input and the Command Center helper ------------------------------


def test_misfiled_and_id_less_tasks_are_skipped_not_raised():
    misfiled = sf("f9")  # an SF task handed in as an SC task
    no_id = sc("")
    result = plan([link()], [misfiled, no_id], [], SETTINGS, NOW)
    assert not result.actions
    assert sorted(s.reason for s in result.skipped) == [
        "a task without an id",
        "given as a Sales Connect task",
    ]


def test_a_live_record_beats_a_tombstone_for_the_same_id():
    # SF undelete: the deleted record and the restored one arrive in the same run.
    result = plan([link()], [], [gone(Side.SALESFORCE, "f1"), sf()], SETTINGS, NOW)
    assert result.is_empty


def test_invalid_conflict_stored_without_its_sides_still_holds_the_value_back():
    bad = sf_wire(ActivityDate="2026-13-45")
    (conflict,) = plan([link()], [], [bad], SETTINGS, NOW).conflicts
    stored = replace(conflict, invalid_sides=())  # as a state file without them reads back
    again = plan([link()], [], [], SETTINGS, NOW, conflicts=[stored])
    assert not again.actions  # never "no due date" written to Sales Connect
    assert [c.kind for c in again.conflicts] == [ConflictKind.INVALID]
    answer = Resolution(conflict.id, frozen_map({"due_date": Choice.TAKE_SALESCONNECT}))
    result = plan([link()], [], [], SETTINGS, NOW, conflicts=[stored], resolutions=[answer])
    update = only(result.actions, ActionKind.UPDATE)
    assert update.target is Side.SALESFORCE and update.changes["due_date"] == BASE.due_date


def test_answer_for_a_conflict_that_is_gone_is_used_up():
    stale = Resolution("fields:s1|f1", frozen_map({"name": Choice.TAKE_SALESCONNECT}))
    result = plan([link()], [], [], SETTINGS, NOW, resolutions=[stale])
    assert result.is_empty and result.resolved == ("fields:s1|f1",)


class Row:
    def __init__(self, key, sc_task=None, sf_task=None):
        self.key, self.sc, self.sf = key, sc_task, sf_task


def test_command_center_keeps_today_and_tomorrow_in_the_users_time_zone():
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # already 1 December in Auckland
    assert local_today("Pacific/Auckland", now) == date(2026, 12, 1)
    assert local_today("America/New_York", now) == date(2026, 11, 30)
    tasks = {d: BASE.replace(due_date=d) for d in (date(2026, 11, 30), date(2026, 12, 1))}
    tasks |= {d: BASE.replace(due_date=d) for d in (date(2026, 12, 2), date(2026, 12, 3))}
    undated = BASE.replace(due_date=None)
    items = [*tasks.values(), undated]
    auckland = command_center(items, "Pacific/Auckland", now)
    assert [t.due_date for t in auckland] == [date(2026, 12, 1), date(2026, 12, 2)]
    new_york = command_center(items, "America/New_York", now)
    assert [t.due_date for t in new_york] == [date(2026, 11, 30), date(2026, 12, 1)]
    rows = [
        Row(
            "a",
            sc_task=sc(fields=tasks[date(2026, 12, 3)]),
            sf_task=sf(fields=tasks[date(2026, 12, 2)]),
        ),
        Row("b", sf_task=sf(fields=undated)),
        Row("c", sc_task=sc(fields=tasks[date(2026, 12, 1)])),
    ]
    assert [r.key for r in command_center(rows, "Pacific/Auckland", now)] == ["a", "c"]


def test_command_center_rejects_an_unknown_time_zone_clearly():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        command_center([], "Mars/Olympus", NOW)
