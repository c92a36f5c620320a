"""The planner given only the links a run touched decides exactly as when given every link.

The engine hands `plan` only the links with a changed side, a parked conflict or an answer,
plus the number of all links (for the mass-delete guard), so a run costs O(changes). These
properties check that this never changes a decision: same actions, conflicts, skips, guard
trips and used answers as the plan over every link.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.engine import resolution_taking
from sync.mapping import task_to_sc, task_to_sf
from sync.model import Link, Plan, PlanSettings, Side, Task
from sync.plan import plan
from tests.unit.test_plan_properties import (
    ENABLED,
    FAST,
    NOW,
    PICKLISTS,
    World,
    apply,
    scenarios,
)


def add_quiet_links(world: World, count: int) -> None:
    """Links that did not change on either side: the ones the engine leaves out."""
    for i in range(count):
        base = Task(f"Quiet task {i}")
        sc_id, sf_id = f"q{i}", f"g{i}"
        world.put_sc(sc_id, task_to_sc(base.as_dict()), created_at=ENABLED)
        world.put_sf(sf_id, task_to_sf(base.as_dict(), PICKLISTS).record)
        world.links[sc_id] = Link(sc_id, sf_id, base)


def touched(world: World, sc_ids, sf_ids, conflicts=(), answers=()) -> list[Link]:
    pairs = {(c.sc_id, c.sf_id) for c in conflicts}
    return [
        link
        for link in world.links.values()
        if link.sc_id in sc_ids or link.sf_id in sf_ids or (link.sc_id, link.sf_id) in pairs
    ]


def both_ways(world: World, sc_ids, sf_ids, options: PlanSettings, **kwargs) -> tuple[Plan, Plan]:
    sc_tasks = [world.sc_task(i) for i in sorted(sc_ids)]
    sf_tasks = [world.sf_task(i) for i in sorted(sf_ids)]
    every = plan(list(world.links.values()), sc_tasks, sf_tasks, options, NOW, **kwargs)
    some = plan(
        touched(world, sc_ids, sf_ids, kwargs.get("conflicts", ())),
        sc_tasks,
        sf_tasks,
        options,
        NOW,
        linked_count=len(world.links),
        **kwargs,
    )
    return every, some


def assert_same(every: Plan, some: Plan) -> None:
    assert sorted(map(repr, some.actions)) == sorted(map(repr, every.actions))
    assert some.conflicts == every.conflicts
    assert sorted(map(repr, some.skipped)) == sorted(map(repr, every.skipped))
    assert some.guards == every.guards
    assert some.resolved == every.resolved


GUARDED = PlanSettings(enabled_at=ENABLED, guard_min_deletes=2, guard_empty_min_linked=2)


@FAST
@given(scenarios(max_links=5), st.booleans(), st.integers(0, 8))
def test_touched_links_give_the_same_plan_as_every_link(scenario, guarded, quiet):
    world, changed_sc, changed_sf = scenario
    add_quiet_links(world, quiet)
    options = GUARDED if guarded else PlanSettings(enabled_at=ENABLED, allow_mass_delete=True)
    every, some = both_ways(world, changed_sc, changed_sf, options)
    assert_same(every, some)


@FAST
@given(scenarios(min_links=1, max_links=4), st.data())
def test_parked_conflicts_and_answers_reach_the_planner_without_a_changed_side(scenario, data):
    world, changed_sc, changed_sf = scenario
    add_quiet_links(world, data.draw(st.integers(0, 3)))
    options = PlanSettings(enabled_at=ENABLED, allow_mass_delete=True)
    first = plan(
        list(world.links.values()),
        [world.sc_task(i) for i in sorted(changed_sc)],
        [world.sf_task(i) for i in sorted(changed_sf)],
        options,
        NOW,
    )
    apply(world, first)
    answers = []
    for conflict in first.conflicts:
        if data.draw(st.booleans()):
            side = data.draw(st.sampled_from([Side.SALESCONNECT, Side.SALESFORCE]))
            answers.append(resolution_taking(conflict, side))
    # The next run reads nothing new: only the parked conflicts and the answers bring links in.
    every, some = both_ways(
        world, set(), set(), options, conflicts=first.conflicts, resolutions=answers
    )
    assert_same(every, some)


def test_the_guard_compares_deletes_with_every_link_not_only_the_touched_ones():
    world = World()
    add_quiet_links(world, 6)
    for sc_id in ("q0", "q1"):  # two of six deleted in Sales Connect: not a mass delete
        world.sc[sc_id]["deleted_at"] = NOW.isoformat()
    every, some = both_ways(world, {"q0", "q1"}, set(), GUARDED)
    assert some.guards == every.guards == ()
    assert sorted(a.sf_id for a in some.actions) == ["g0", "g1"]

    for sc_id in ("q2", "q3", "q4"):  # five of six: held back either way
        world.sc[sc_id]["deleted_at"] = NOW.isoformat()
    every, some = both_ways(world, {"q0", "q1", "q2", "q3", "q4"}, set(), GUARDED)
    assert [g.linked for g in some.guards] == [g.linked for g in every.guards] == [6]
    assert not some.actions
