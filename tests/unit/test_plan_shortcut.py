"""The planner's shortcut for a link read back exactly as last synced (`_as_last_synced`)
decides what the full decision decides, on the property tests' random worlds."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given

from sync import plan as plan_module
from sync.model import Link, Note, Side, SideTask, Task, frozen_map
from tests.unit.test_plan_properties import FAST, OPTIONS, apply, run, scenarios


def both_ways(world, changed_sc, changed_sf, monkeypatch: pytest.MonkeyPatch):
    quick = run(world, changed_sc, changed_sf, OPTIONS)
    with monkeypatch.context() as patch:
        patch.setattr(plan_module, "_as_last_synced", lambda link, task: False)
        full = run(world, changed_sc, changed_sf, OPTIONS)
    return quick, full


@FAST
@given(scenarios(max_links=4))
def test_the_shortcut_plans_what_the_full_decision_plans(scenario) -> None:
    world, changed_sc, changed_sf = scenario
    with pytest.MonkeyPatch.context() as monkeypatch:
        quick, full = both_ways(world, changed_sc, changed_sf, monkeypatch)
        assert quick == full
        # ...and after the plan is carried out, every task read back again: still the same
        apply(world, quick)
        sc_all = {t.id for t in world.all_tasks()[0]}
        sf_all = {t.id for t in world.all_tasks()[1]}
        again_quick, again_full = both_ways(world, sc_all, sf_all, monkeypatch)
        assert again_quick == again_full and not again_quick.actions


BASE = Task("Call Ada", "open", "high", date(2026, 12, 1), "notes")


def side_task(side: Side, fields: Task, **changes) -> SideTask:
    return SideTask(side, "x", fields, **changes)


@pytest.mark.parametrize(
    ("link", "task", "expected"),
    [
        (Link("s", "f", BASE), side_task(Side.SALESFORCE, BASE), True),
        (Link("s", "f", BASE), side_task(Side.SALESCONNECT, BASE), True),
        (Link("s", "f", BASE), side_task(Side.SALESFORCE, BASE.replace(details="edited")), False),
        (Link("s", "f", BASE), side_task(Side.SALESFORCE, BASE, deleted=True), False),
        (Link("s", "f", BASE), side_task(Side.SALESFORCE, BASE, in_scope=False), False),
        (
            Link("s", "f", BASE),
            side_task(Side.SALESFORCE, BASE, problems=frozen_map({"due_date": "bad"})),
            False,
        ),
        (
            Link("s", "f", BASE, notes={"status": Note.UNMAPPED}),
            side_task(Side.SALESFORCE, BASE),
            False,
        ),
        (  # a base Salesforce holds cut: the full decision keeps its note
            Link("s", "f", BASE.replace(name="y" * 300)),
            side_task(Side.SALESCONNECT, BASE.replace(name="y" * 300)),
            False,
        ),
    ],
)
def test_only_an_exact_in_scope_echo_of_a_plain_link_takes_the_shortcut(
    link: Link, task: SideTask, expected: bool
) -> None:
    assert plan_module._as_last_synced(link, task) is expected
