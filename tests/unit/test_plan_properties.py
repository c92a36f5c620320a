"""Properties of the planner, on random edits to both sides of random links.

A tiny in-test world holds both services as wire records (SC task JSON, SF Task records) and
the link table; an applier carries out a plan the way the engine does (through the mapping,
bases settled per action). Then:
- idempotent: planning again over the result gives no action;
- converges: linked tasks agree on all five fields unless a conflict is parked or the field is
  unmapped in SF / cut to fit SF;
- never deletes a task that changed since the base;
- never writes a value the target cannot hold (Subject > 255, Description > 32,000, a status
  or priority the org does not have).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sync.mapping import (
    SF_DESCRIPTION_MAX,
    SF_SUBJECT_MAX,
    build_picklists,
    fit,
    normalize_text,
    project_to_sf,
    sc_to_side_task,
    sf_to_side_task,
    sf_units,
    task_to_sc,
    task_to_sf,
)
from sync.model import (
    FIELDS,
    ActionKind,
    Choice,
    Conflict,
    ConflictKind,
    Link,
    Note,
    Plan,
    PlanSettings,
    Resolution,
    Side,
    SideTask,
    Task,
    frozen_map,
    settle_base,
)
from sync.plan import plan

USER, OWNER = "u-1", "005U"
ENABLED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
NOW = ENABLED + timedelta(days=2)
PICKLISTS = build_picklists(None)

NAMES = st.one_of(
    st.sampled_from(["Call Jane", "Call Jane  ", "Call\r\nJane", "Cafe\u0301", "x" * 300]),
    st.sampled_from(["x" * 254 + "yz", "😀" * 130, "a" + "🇫🇷" * 70, "Email Bob"]),
    st.text(alphabet="ab \n", min_size=1, max_size=4),
)
# One value in eight is over Salesforce's limit: enough to exercise the cut, cheap on average.
DETAILS = st.sampled_from(
    ["", "d", "d\r\n", "notes", "Notes ", "e\n\nf", "é", "y" * (SF_DESCRIPTION_MAX + 5)]
)
DATES = st.one_of(st.none(), st.dates(date(2026, 11, 28), date(2026, 12, 3)))
TASKS = st.builds(
    Task,
    name=NAMES.map(normalize_text),
    status=st.sampled_from(["open", "complete"]),
    priority=st.sampled_from(["normal", "high"]),
    due_date=DATES,
    details=DETAILS.map(normalize_text),
)  # a base is always what the mapping produced
SC_EDITS = st.fixed_dictionaries(
    {},
    optional={
        "name": NAMES,
        "status": st.sampled_from(["open", "complete"]),
        "priority": st.sampled_from(["normal", "high"]),
        "due_date": DATES.map(lambda d: d and d.isoformat()),
        "details": DETAILS,
    },
)
SF_EDITS = st.fixed_dictionaries(
    {},
    optional={
        "Subject": NAMES.map(lambda n: fit(n, SF_SUBJECT_MAX)),
        "Status": st.sampled_from(PICKLISTS.statuses),
        "Priority": st.sampled_from(PICKLISTS.priorities),
        "ActivityDate": st.one_of(
            DATES.map(lambda d: d and d.isoformat()),
            st.just("2026-02-30"),  # unreadable: must park, never raise
        ),
        "Description": DETAILS.map(lambda d: fit(d, SF_DESCRIPTION_MAX)),
    },
)
CHANGE = st.sampled_from(["same", "same", "edit", "edit", "delete"])
CHANGE_MORE = st.sampled_from(["same", "edit", "edit", "delete", "delete"])  # more to answer


@dataclass
class World:
    sc: dict[str, dict] = field(default_factory=dict)
    sf: dict[str, dict] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)  # by SC id
    ids: itertools.count = field(default_factory=itertools.count)

    def sc_task(self, task_id: str) -> SideTask:
        return sc_to_side_task(self.sc[task_id], USER)

    def sf_task(self, task_id: str) -> SideTask:
        return sf_to_side_task(self.sf[task_id], OWNER, PICKLISTS)

    def put_sc(self, task_id: str, body: dict, created_at: datetime = NOW) -> None:
        record = self.sc.setdefault(
            task_id,
            {"id": task_id, "assignee_id": USER, "version": 0, "deleted_at": None,
             "created_at": created_at.isoformat(), "updated_at": created_at.isoformat()},
        )  # fmt: skip
        record.update(body)
        record["version"] += 1

    def put_sf(self, task_id: str, record: dict, modified: datetime = NOW) -> None:
        check_sf_values(record)
        stamp = modified.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        row = self.sf.setdefault(
            task_id,
            {"Id": task_id, "OwnerId": OWNER, "TaskSubtype": "Task", "IsRecurrence": False,
             "IsDeleted": False, "CreatedDate": stamp},
        )  # fmt: skip
        row.update(record)
        row["SystemModstamp"] = stamp

    def all_tasks(self) -> tuple[list[SideTask], list[SideTask]]:
        return [self.sc_task(i) for i in self.sc], [self.sf_task(i) for i in self.sf]


def check_sf_values(record: dict) -> None:
    """What Salesforce would refuse: the planner must never produce it."""
    if "Subject" in record:
        assert sf_units(record["Subject"]) <= SF_SUBJECT_MAX
    if "Description" in record:
        assert sf_units(record["Description"]) <= SF_DESCRIPTION_MAX
    if "Status" in record:
        assert record["Status"] in PICKLISTS.statuses
    if "Priority" in record:
        assert record["Priority"] in PICKLISTS.priorities


def unedited(task: SideTask, link: Link) -> bool:
    """Is this side still as last synced (an unmapped value already noted does not count)?"""
    expected = link.base if task.side is Side.SALESCONNECT else project_to_sf(link.base)
    for name in FIELDS:
        value = task.fields.get(name)
        if value is None and name in ("status", "priority") and link.notes.get(name):
            continue
        if value != expected.get(name) or name in task.problems:
            return False
    return True


def may_delete(task: SideTask, link: Link, chosen: Mapping[str, Conflict]) -> bool:
    """Rule 11: only a task unchanged since the base, or one the user chose to delete in
    exactly the state shown to them (the edited side of an answered edit-vs-delete)."""
    if unedited(task, link):
        return True
    conflict = chosen.get(link.key)
    if conflict is None or conflict.deleted_side is not task.side.other:
        return False
    shown = conflict.sc if task.side is Side.SALESCONNECT else conflict.sf
    return not task.problems and task.fields == shown


def apply(world: World, result: Plan, *, chosen: Mapping[str, Conflict] = frozen_map()) -> None:
    """Carry out a plan as the engine does. `chosen`: by link key, the edit-vs-delete conflicts
    the user answered "delete"."""
    by_sf = {link.sf_id: link for link in world.links.values()}
    for action in result.actions:
        link = world.links.get(action.sc_id or "") or by_sf.get(action.sf_id or "")
        if action.kind is ActionKind.CREATE:
            new_id = f"n{next(world.ids)}"
            if action.target is Side.SALESFORCE:
                world.put_sf(new_id, task_to_sf(action.changes, PICKLISTS).record)
                sc_id, sf_id = action.sc_id, new_id
            else:
                world.put_sc(new_id, task_to_sc(action.changes))
                sc_id, sf_id = new_id, action.sf_id
            if link is not None:  # a restore replaces the dead id
                world.links.pop(link.sc_id)
            world.links[sc_id] = Link(sc_id, sf_id, action.new_base, notes=action.notes)
            continue
        assert link is not None, action
        if action.kind is ActionKind.DELETE:
            # Never delete a task that changed since the base (unless the user chose to).
            if action.target is Side.SALESCONNECT:
                assert may_delete(world.sc_task(link.sc_id), link, chosen), action
                world.sc[link.sc_id]["deleted_at"] = NOW.isoformat()
            else:
                assert may_delete(world.sf_task(link.sf_id), link, chosen), action
                world.sf[link.sf_id]["IsDeleted"] = True
            world.links.pop(link.sc_id)
        elif action.kind is ActionKind.UNLINK:
            world.links.pop(link.sc_id)
        else:
            if action.kind is ActionKind.UPDATE and action.target is Side.SALESCONNECT:
                world.put_sc(link.sc_id, task_to_sc(action.changes))
            elif action.kind is ActionKind.UPDATE:
                world.put_sf(link.sf_id, task_to_sf(action.changes, PICKLISTS).record)
            world.links[link.sc_id] = replace(
                link, base=settle_base(link.base, action), notes=action.notes
            )


@st.composite
def scenarios(draw, min_links: int = 0, max_links: int = 3, max_unlinked: int = 1, changes=CHANGE):
    """A world of linked tasks (some edited or deleted on either side) and unlinked ones.

    The default sizes keep the CI run short; the slow variant draws bigger worlds.
    """
    world = World()
    changed_sc: set[str] = set()
    changed_sf: set[str] = set()
    for i in range(draw(st.integers(min_links, max_links))):
        base = draw(TASKS)
        sc_id, sf_id = f"s{i}", f"f{i}"
        world.put_sc(sc_id, task_to_sc(base.as_dict()), created_at=ENABLED)
        world.put_sf(sf_id, task_to_sf(base.as_dict(), PICKLISTS).record)
        notes = frozen_map(
            {n: Note.TRUNCATED for n in ("name", "details") if fit(base.get(n), 255) != base.get(n)}
        )
        world.links[sc_id] = Link(sc_id, sf_id, base, notes=notes)
        for side, ids in ((Side.SALESCONNECT, changed_sc), (Side.SALESFORCE, changed_sf)):
            change = draw(changes)
            task_id = sc_id if side is Side.SALESCONNECT else sf_id
            if change == "delete" and side is Side.SALESCONNECT:
                world.sc[sc_id]["deleted_at"] = NOW.isoformat()
            elif change == "delete":
                world.sf[sf_id]["IsDeleted"] = True
            elif change == "edit" and side is Side.SALESCONNECT:
                world.put_sc(sc_id, draw(SC_EDITS))
            elif change == "edit":
                world.put_sf(sf_id, draw(SF_EDITS))
            if change != "same" or draw(st.booleans()):  # unchanged tasks may be re-sent
                ids.add(task_id)
    for j in range(draw(st.integers(0, max_unlinked))):
        created = draw(st.sampled_from([ENABLED - timedelta(hours=1), ENABLED, NOW]))
        world.put_sc(f"u{j}", task_to_sc(draw(TASKS).as_dict()), created_at=created)
        changed_sc.add(f"u{j}")
    for j in range(draw(st.integers(0, max_unlinked))):
        modified = draw(st.sampled_from([ENABLED - timedelta(hours=30), NOW]))
        record = {**task_to_sf(draw(TASKS).as_dict(), PICKLISTS).record, **draw(SF_EDITS)}
        world.put_sf(f"v{j}", record, modified=modified)
        changed_sf.add(f"v{j}")
    return world, changed_sc, changed_sf


def run(world: World, changed_sc, changed_sf, options: PlanSettings) -> Plan:
    return plan(
        list(world.links.values()),
        [world.sc_task(i) for i in sorted(changed_sc)],
        [world.sf_task(i) for i in sorted(changed_sf)],
        options,
        NOW,
    )


OPTIONS = PlanSettings(enabled_at=ENABLED, allow_mass_delete=True)


def check_round_trip(scenario, options: PlanSettings = OPTIONS) -> None:
    world, changed_sc, changed_sf = scenario
    first = run(world, changed_sc, changed_sf, options)
    for action in first.actions:  # shown by --hypothesis-show-statistics
        event(f"action {action.kind} {action.target}")
    for conflict in first.conflicts:
        event(f"conflict {conflict.kind}")
    apply(world, first)

    # Idempotent: everything re-read as changed, the parked conflicts handed back: no action.
    sc_all, sf_all = world.all_tasks()
    links = list(world.links.values())
    second = plan(links, sc_all, sf_all, options, NOW, conflicts=first.conflicts)
    assert not second.actions, second.actions
    assert [c.id for c in second.conflicts] == [c.id for c in first.conflicts]

    # Converged: every link agrees unless parked, unmapped in SF, or cut to fit.
    parked = {(c.sc_id, c.sf_id) for c in first.conflicts}
    for link in links:
        if (link.sc_id, link.sf_id) in parked:
            continue
        sc_task, sf_task = world.sc_task(link.sc_id), world.sf_task(link.sf_id)
        assert not sc_task.deleted and not sf_task.deleted
        for name in FIELDS:
            sc_value, sf_value = sc_task.fields.get(name), sf_task.fields.get(name)
            if sf_value is None and name in ("status", "priority"):
                assert link.notes.get(name) == Note.UNMAPPED
                continue
            if isinstance(sc_value, str) and name in ("name", "details"):
                limit = SF_SUBJECT_MAX if name == "name" else SF_DESCRIPTION_MAX
                sc_value = fit(sc_value, limit)
            assert sc_value == sf_value, (name, link)


FAST = settings(
    max_examples=int(os.environ.get("PLAN_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(scenarios())
def test_plan_is_idempotent_converges_and_never_writes_what_sf_cannot_hold(scenario):
    check_round_trip(scenario)


@FAST
@given(scenarios())
def test_guard_never_lets_a_mass_delete_through(scenario):
    world, changed_sc, changed_sf = scenario
    options = PlanSettings(enabled_at=ENABLED, guard_min_deletes=2, guard_empty_min_linked=2)
    result = run(world, changed_sc, changed_sf, options)
    linked = len(world.links)
    for side in (Side.SALESCONNECT, Side.SALESFORCE):
        deletes = [a for a in result.actions if a.kind is ActionKind.DELETE and a.target is side]
        assert not (len(deletes) >= 2 and len(deletes) > linked / 2), deletes
        assert not (linked >= 2 and len(deletes) == linked), deletes
    held = {g.side for g in result.guards}
    assert all(a.target not in held for a in result.actions if a.kind is ActionKind.DELETE)
    assert (result.guard is None) == (not result.guards)


@settings(FAST, max_examples=max(1, FAST.max_examples * 2 // 3))
@given(scenarios(), st.sampled_from(["sales_connect_wins", "salesforce_wins"]))
def test_a_policy_for_every_field_leaves_no_fields_conflict(scenario, policy):
    options = PlanSettings(
        enabled_at=ENABLED,
        allow_mass_delete=True,
        policies=frozen_map(dict.fromkeys(FIELDS, policy)),
    )
    world, changed_sc, changed_sf = scenario
    result = run(world, changed_sc, changed_sf, options)
    assert all(c.kind != "fields" for c in result.conflicts)
    check_round_trip(scenario, options)


@settings(FAST, max_examples=max(1, FAST.max_examples * 2 // 3))
@given(scenarios(min_links=1, changes=CHANGE_MORE), st.data())
def test_answering_every_conflict_settles_it_for_good(scenario, data):
    check_answers(scenario, data)


def check_answers(scenario, data) -> None:
    world, changed_sc, changed_sf = scenario
    first = run(world, changed_sc, changed_sf, OPTIONS)
    apply(world, first)
    answers = []
    chosen_delete: dict[str, Conflict] = {}
    for conflict in first.conflicts:
        if conflict.kind is ConflictKind.EDIT_VS_DELETE:
            choice = data.draw(st.sampled_from([Choice.RESTORE, Choice.DELETE]))
            answers.append(Resolution(conflict.id, frozen_map({"record": choice})))
            event(f"answer {choice}")
            if choice is Choice.DELETE:
                chosen_delete[f"{conflict.sc_id}|{conflict.sf_id}"] = conflict
        elif conflict.kind is ConflictKind.FIELDS:
            sides = st.sampled_from([Choice.TAKE_SALESCONNECT, Choice.TAKE_SALESFORCE])
            choices = {name: data.draw(sides) for name in conflict.fields}
            answers.append(Resolution(conflict.id, frozen_map(choices)))
        elif len(conflict.invalid_sides) == 1:
            (bad,) = conflict.invalid_sides
            take = Choice.TAKE_SALESCONNECT if bad is Side.SALESFORCE else Choice.TAKE_SALESFORCE
            answers.append(
                Resolution(conflict.id, frozen_map(dict.fromkeys(conflict.fields, take)))
            )
    # Before the next run, the user may edit a task again after answering "delete" for it:
    # that answer was for another state, so it must be asked again (rule 11, R16).
    again_sc, again_sf, edited_again = set(), set(), set()
    for key, conflict in chosen_delete.items():
        if not data.draw(st.booleans()):
            continue
        edited_again.add(key)
        event("edited again after answering delete")
        if conflict.deleted_side is Side.SALESFORCE:
            world.put_sc(conflict.sc_id, data.draw(SC_EDITS))
            again_sc.add(conflict.sc_id)
        else:
            world.put_sf(conflict.sf_id, data.draw(SF_EDITS))
            again_sf.add(conflict.sf_id)
    # The next run: the parked conflicts and the answers from the store.
    second = plan(
        list(world.links.values()),
        [world.sc_task(i) for i in sorted(again_sc)],
        [world.sf_task(i) for i in sorted(again_sf)],
        OPTIONS,
        NOW,
        conflicts=first.conflicts,
        resolutions=answers,
    )
    assert set(second.resolved) == {a.conflict_id for a in answers}
    apply(world, second, chosen=chosen_delete)
    for conflict in second.conflicts:  # an answered delete is only asked again for a reason
        if conflict.id in {chosen.id for chosen in chosen_delete.values()}:
            assert f"{conflict.sc_id}|{conflict.sf_id}" in edited_again, conflict
            assert "choose again" in conflict.message, conflict
    # One ordinary run carries over the rest of a link whose unreadable value was just fixed
    # (R12); after it, nothing is left to do.
    parked = second.conflicts
    for _ in range(2):
        sc_all, sf_all = world.all_tasks()
        third = plan(list(world.links.values()), sc_all, sf_all, OPTIONS, NOW, conflicts=parked)
        apply(world, third)
        parked = third.conflicts
    assert not third.actions, (first, answers, second, third)
    left = [c for c in third.conflicts if c.id in {a.conflict_id for a in answers}]
    # An answered unreadable value may stay only where the answer could not be carried out;
    # an answered delete only where the task was edited again since.
    assert all(
        c.kind is ConflictKind.INVALID
        or (c.kind is ConflictKind.EDIT_VS_DELETE and f"{c.sc_id}|{c.sf_id}" in edited_again)
        for c in left
    ), left


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(max_links=6, max_unlinked=2))
def test_slow_plan_round_trip_many_examples(scenario):
    check_round_trip(scenario)


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(max_links=6, max_unlinked=2, changes=CHANGE_MORE), st.data())
def test_slow_answering_many_examples(scenario, data):
    check_answers(scenario, data)
