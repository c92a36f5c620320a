"""The task table applies keyed diffs: only what changed is touched, the cursor stays put."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

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
    return [(r.key.value, str(table.get_cell(r.key, "name"))) for r in table.ordered_rows]


async def test_first_show_builds_then_updates_only_changed_cells() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        stats = table.show([row("a", "Call Jane"), row("b", "Email Bob")])
        assert stats.rebuilt and stats.added == 2
        stats = table.show([row("a", "Call Jane"), row("b", "Email Bob", due="today")])
        assert (stats.rebuilt, stats.added, stats.removed, stats.updated_cells) == (
            False,
            0,
            0,
            1,
        )
        assert str(table.get_cell("b", "due")) == "today"
        await pilot.pause()


async def test_new_rows_are_added_and_order_follows_the_list() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        table.show([row("a", "A"), row("c", "C")])
        stats = table.show([row("a", "A"), row("b", "B"), row("c", "C")])
        assert stats.added == 1 and not stats.rebuilt
        assert shown(table) == [("a", "A"), ("b", "B"), ("c", "C")]
        assert table.keys == ["a", "b", "c"]


async def test_a_few_removed_rows_are_removed_most_removed_rebuilds() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)):
        table = app.query_one(TaskTable)
        table.show([row(k, k.upper()) for k in "abcdef"])
        stats = table.show([row(k, k.upper()) for k in "abcde"])
        assert stats.removed == 1 and not stats.rebuilt
        stats = table.show([row("a", "A")])
        assert stats.rebuilt
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
        assert str(table.get_cell("a", "name")) == "[/x] boom"


async def test_ten_thousand_rows_update_by_diff_not_rebuild() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        rows = [row(f"k{i}", f"Task {i}", due="Mar 14") for i in range(10_000)]
        assert table.show(rows).rebuilt
        await pilot.pause()
        rows[5000] = row("k5000", "Task 5000 (renamed)", due="Mar 14")
        stats = table.show(rows)
        assert (stats.rebuilt, stats.updated_cells, stats.added, stats.sorted) == (
            False,
            1,
            0,
            False,
        )
        assert str(table.get_cell("k5000", "name")) == "Task 5000 (renamed)"
        stats = table.show([*rows[:-3], row("new", "A new task")])
        assert (stats.rebuilt, stats.removed, stats.added) == (False, 3, 1)
        assert table.row_count == 9_998
        stats = table.show(rows[:2000])  # most rows left: one rebuild, not 8,000 removals
        assert stats.rebuilt and table.row_count == 2000


async def test_many_rows_leave_and_arrive_in_one_update() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(TaskTable)
        rows = [row(f"k{i}", f"Task {i}") for i in range(100)]
        table.show(rows)
        table.move_to_key("k50")
        kept = [r for i, r in enumerate(rows) if i % 3]  # a third leave: removed, not rebuilt
        wanted = [row("new", "A new task"), *kept[::-1]]
        stats = table.show(wanted)
        assert (stats.rebuilt, stats.removed, stats.added, stats.sorted) == (False, 34, 1, True)
        order = [r.key for r in wanted]
        assert table.keys == order
        assert [r.key.value for r in table.ordered_rows] == order
        assert [table.get_row_index(key) for key in order] == list(range(len(order)))
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
        assert stats.updated_cells == 1 and str(table.get_cell("b", "due")) == "today"
