"""The dashboard's row index: rows are rendered when first shown and again only when they
change; the view, the filter and the order come from what it holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta

import pytest

from sync.dashboard import Row, RowState
from sync.model import Side, SideTask, Task
from tui.widgets import row_index
from tui.widgets.row_index import RowIndex
from tui.widgets.task_rows import Layout

TODAY = date(2030, 3, 14)
WIDE = Layout.for_width(120)


def row(n: int, name: str, due: date | None, state: RowState = RowState.IN_SYNC) -> Row:
    task = Task(name=name, due_date=due)
    return Row(
        key=f"sc{n}|sf{n}",
        sc=SideTask(Side.SALESCONNECT, f"sc{n}", task),
        sf=SideTask(Side.SALESFORCE, f"sf{n}", task),
        state=state,
    )


def week() -> list[Row]:
    return [
        row(1, "Call Jane", TODAY),
        row(2, "Email Bob", TODAY + timedelta(days=1)),
        row(3, "Quarterly plan", TODAY + timedelta(days=9)),
        row(4, "Send proposal", TODAY - timedelta(days=2), RowState.PENDING),
    ]


def by_key(rows: Iterable[Row]) -> dict[str, Row]:
    """The rows as the engine hands them over (`rows_so_far`)."""
    return {r.key: r for r in rows}


def names(views: list) -> list[str]:
    return [str(view.cells[1]) for view in views]


def index_of(rows: list[Row]) -> RowIndex:
    index = RowIndex()
    index.set_basis(WIDE, TODAY)
    index.update(by_key(rows))
    return index


def test_command_center_all_and_the_filter_in_due_order() -> None:
    index = index_of(week())
    assert names(index.visible(command_center=True)) == ["Call Jane", "Email Bob"]
    assert names(index.visible(command_center=False)) == [
        "Send proposal",
        "Call Jane",
        "Email Bob",
        "Quarterly plan",
    ]
    assert names(index.visible(command_center=False, needle="PLAN")) == ["Quarterly plan"]


def test_unchanged_rows_keep_their_cells_a_changed_row_is_rendered_again() -> None:
    rows = week()
    index = index_of(rows)
    first = {view.key: view for view in index.visible(command_center=False)}
    # The engine built every row anew (equal but not the same objects); one really changed.
    fresh = [replace(r) for r in rows]
    fresh[1] = row(2, "Email Bob (moved)", TODAY + timedelta(days=1))
    assert index.update(by_key(fresh))
    again = {view.key: view for view in index.visible(command_center=False)}
    assert again["sc2|sf2"] is not first["sc2|sf2"]
    assert str(again["sc2|sf2"].cells[1]) == "Email Bob (moved)"
    assert all(again[key] is first[key] for key in first if key != "sc2|sf2")
    assert not index.update(by_key(replace(r) for r in fresh))  # nothing changed


def test_changed_keys_name_the_rows_to_render_again() -> None:
    rows = week()
    index = index_of(rows)
    index.visible(command_center=False)
    fresh = list(rows)
    fresh[0] = row(1, "Call Jane (done)", TODAY)
    fresh[2] = row(3, "Quarterly plan (v2)", TODAY + timedelta(days=9))
    index.update(by_key(fresh), changed={"sc1|sf1"})  # the engine said only row 1 changed
    shown = names(index.visible(command_center=False))
    assert "Call Jane (done)" in shown and "Quarterly plan" in shown
    index.update(by_key(fresh))  # a full comparison finds the rest
    assert "Quarterly plan (v2)" in names(index.visible(command_center=False))


def test_rows_that_leave_or_arrive_and_a_new_day() -> None:
    rows = week()
    index = index_of(rows)
    index.update(by_key([*rows[1:], row(5, "New task", TODAY)]), changed=set())
    assert names(index.visible(command_center=True)) == ["New task", "Email Bob"]
    assert "sc1|sf1" not in index.rows and "sc5|sf5" in index.rows
    index.set_basis(WIDE, TODAY + timedelta(days=1))  # after midnight: tomorrow is today
    assert names(index.visible(command_center=True)) == ["Email Bob"]
    assert str(index.visible(command_center=True)[0].cells[2]) == "today"


def test_a_new_layout_renders_the_rows_for_it() -> None:
    index = index_of(week())
    wide = index.visible(command_center=True)
    index.set_basis(Layout.for_width(80), TODAY)
    narrow = index.visible(command_center=True)
    assert len(wide[0].cells) == 9 and len(narrow[0].cells) == 7


def test_whether_a_row_is_due_soon_is_worked_out_only_for_the_command_center(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Taking an import's new rows (one loop step) leaves it to showing them (the next)."""
    asked: list[str] = []
    real = row_index.in_command_center
    monkeypatch.setattr(
        row_index, "in_command_center", lambda r, day: asked.append(r.key) or real(r, day)
    )
    index = index_of(week())
    index.update(by_key([*week(), row(5, "New task", TODAY)]), changed=set())
    assert asked == []
    assert names(index.visible(command_center=False)) == [
        "Send proposal",
        "Call Jane",
        "New task",
        "Email Bob",
        "Quarterly plan",
    ]
    assert asked == []
    assert names(index.visible(command_center=True)) == ["Call Jane", "New task", "Email Bob"]
    assert len(asked) == 5
    index.visible(command_center=True)
    assert len(asked) == 5  # worked out once per row and day
