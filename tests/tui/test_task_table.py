"""The task table applies keyed diffs: only what changed is touched and repainted, the cursor
stays on its task, and what is drawn is the cells' text, never markup."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from tui.widgets.task_table import Column, RowView, TaskTable

COLUMNS = (Column("mark", "", 3), Column("name", "Name", 20), Column("due", "Due", 6))


def row(key: str, name: str, due: str = "", mark: str = "✓") -> RowView:
    return RowView(key, (Text(mark), Text(name), Text(due)))


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield TaskTable(id="table")

    def on_mount(self) -> None:
        self.query_one(TaskTable).set_columns(COLUMNS)


def shown(table: TaskTable) -> list[tuple[str, str]]:
    return [(key, str(table.cells_of(key)[1])) for key in table.keys]


def drawn(table: TaskTable) -> list[str]:
    """The table's lines as painted (header first), trailing blanks dropped."""
    return [table.render_line(y).text.rstrip() for y in range(table.size.height)]


async def test_first_show_builds_then_updates_only_changed_cells() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        stats = table.show([row("a", "Call Jane"), row("b", "Email Bob")])
        assert stats.added == 2
        await pilot.pause()
        stats = table.show([row("a", "Call Jane"), row("b", "Email Bob", due="today")])
        assert (stats.added, stats.removed, stats.updated_cells, stats.repainted_rows) == (
            0,
            0,
            1,
            1,
        )
        assert str(table.cells_of("b")[2]) == "today"
        await pilot.pause()
        assert "Email Bob" in drawn(table)[2] and drawn(table)[2].endswith("today")


async def test_new_rows_are_added_and_order_follows_the_list() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        table.show([row("a", "A"), row("c", "C")])
        stats = table.show([row("a", "A"), row("b", "B"), row("c", "C")])
        assert stats.added == 1 and not stats.sorted
        assert shown(table) == [("a", "A"), ("b", "B"), ("c", "C")]
        assert table.keys == ["a", "b", "c"]


async def test_removed_rows_leave_the_table() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        table.show([row(k, k.upper()) for k in "abcdef"])
        stats = table.show([row(k, k.upper()) for k in "abcde"])
        assert stats.removed == 1 and stats.added == 0
        stats = table.show([row("a", "A")])
        assert stats.removed == 4
        assert shown(table) == [("a", "A")]


async def test_cursor_stays_on_the_same_task_when_rows_move() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        table.show([row(k, k.upper()) for k in "abcd"])
        table.move_to_key("c")
        assert table.cursor_key == "c"
        table.show([row(k, k.upper()) for k in "dcba"])
        assert shown(table)[0] == ("d", "D")
        assert table.cursor_key == "c"
        assert table.cursor_row == 1


async def test_markup_and_escape_sequences_show_literally() -> None:
    from tui.widgets.text import plain

    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        table.show([RowView("a", (Text("!"), plain("[/x] \x1b[2Jboom"), Text("")))])
        await pilot.pause()
        assert str(table.cells_of("a")[1]) == "[/x] boom"
        assert "[/x] boom" in drawn(table)[1]


async def test_ten_thousand_rows_update_by_diff_and_repaint_only_what_is_on_screen() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        rows = [row(f"k{i}", f"Task {i}", due="Mar 14") for i in range(10_000)]
        assert table.show(rows).added == 10_000
        await pilot.pause()
        assert "Task 0" in drawn(table)[1]
        # Off screen: held, but nothing is painted again.
        rows[5000] = row("k5000", "Task 5000 (renamed)", due="Mar 14")
        stats = table.show(rows)
        assert (stats.updated_cells, stats.added, stats.sorted, stats.repainted_rows) == (
            1,
            0,
            False,
            0,
        )
        assert str(table.cells_of("k5000")[1]) == "Task 5000 (renamed)"
        # On screen: that one row is painted again, with its new text.
        rows[3] = row("k3", "Task 3 (renamed)", due="Mar 14")
        assert table.show(rows).repainted_rows == 1
        await pilot.pause()
        assert "Task 3 (renamed)" in drawn(table)[4]
        stats = table.show([*rows[:-3], row("new", "A new task")])
        assert (stats.removed, stats.added) == (3, 1)
        assert table.row_count == 9_998
        stats = table.show(rows[:2000])
        assert stats.removed == 7_998 and table.row_count == 2000
        table.move_to_key("k1999")
        await pilot.pause()
        assert "Task 1999" in drawn(table)[-1]  # the cursor's row was scrolled into view


async def test_rows_coming_and_going_lay_out_the_screen_only_when_the_scrollbar_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        layouts: list[object] = []
        lay_out = app.screen._refresh_layout
        monkeypatch.setattr(
            app.screen, "_refresh_layout", lambda *a, **k: layouts.append(a) or lay_out(*a, **k)
        )
        rows = [row(f"k{i}", f"Task {i}") for i in range(300)]
        table.show(rows[:5])
        await pilot.pause()
        assert not table.show_vertical_scrollbar
        table.show(rows[:100])
        await pilot.pause()
        assert table.show_vertical_scrollbar and layouts  # it came: the screen was laid out
        layouts.clear()
        table.show(rows)
        await pilot.pause()
        table.move_to_key("k299")
        await pilot.pause()
        assert not layouts  # rows only: the scroll range follows without a layout pass
        assert table.max_scroll_y == 300 + 1 - table.scrollable_content_region.height
        assert "Task 299" in drawn(table)[-1]
        table.show(rows[:50])
        await pilot.pause()
        assert table.cursor_key == "k49" and "Task 49" in drawn(table)[-1]
        table.show(rows[:5])
        await pilot.pause()
        assert not table.show_vertical_scrollbar and layouts  # it went
        assert table.scroll_y == 0 and "Task 4" in drawn(table)[5]


async def test_a_paint_looks_up_the_table_style_once_not_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        table.show([row(f"k{i}", f"Task {i}") for i in range(100)])
        await pilot.pause()
        one_by_one = [table.render_line(y) for y in range(table.size.height)]
        looked_up: list[object] = []
        style_of = TaskTable.rich_style
        monkeypatch.setattr(
            TaskTable, "rich_style", property(lambda t: looked_up.append(t) or style_of.fget(t))
        )
        table.refresh()
        painted = table.render_lines(Region(0, 0, table.size.width, table.size.height))
        assert len(looked_up) == 1
        assert [strip.text for strip in painted] == [strip.text for strip in one_by_one]
        assert "Task 2" in painted[3].text


async def test_many_rows_leave_and_arrive_in_one_update() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        rows = [row(f"k{i}", f"Task {i}") for i in range(100)]
        table.show(rows)
        table.move_to_key("k50")
        kept = [r for i, r in enumerate(rows) if i % 3]  # a third leave
        wanted = [row("new", "A new task"), *kept[::-1]]
        stats = table.show(wanted)
        assert (stats.removed, stats.added, stats.sorted) == (34, 1, True)
        order = [r.key for r in wanted]
        assert table.keys == order
        assert [table.index_of(key) for key in order] == list(range(len(order)))
        assert shown(table)[0] == ("new", "A new task")
        assert table.cursor_key == "k50"  # the cursor stayed on its task
        await pilot.press("down")
        assert table.cursor_key == order[order.index("k50") + 1]
        await pilot.pause()


async def test_rows_given_the_same_cells_are_not_touched() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        rows = [row("a", "A"), row("b", "B")]
        table.show(rows)
        stats = table.show([rows[0], row("b", "B")])  # equal cells, new objects
        assert stats.updated_cells == 0
        stats = table.show([rows[0], row("b", "B", due="today")])
        assert stats.updated_cells == 1 and str(table.cells_of("b")[2]) == "today"
