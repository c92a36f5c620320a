"""The dashboard's table: a Line API widget that paints only the rows on screen, from a cache.

`show(rows)` takes the whole list of rows each time and compares it with what is held, by row
key: a row whose cells changed loses its cached line, and only a change on screen is repainted.
Each row is rendered to a `Strip` once, when it first comes into view, and kept until its
cells, the columns or the width change; a paint crops and styles the cached strips of the
visible rows (zebra stripes, the cursor), so its cost does not depend on how many rows the
table holds, nor on how many changed off screen.

Why not `DataTable`: any cell update there invalidates the whole table's render cache, so
during a 10,000-task sync each repaint rendered every visible cell again (~140 ms a paint at
120x40, docs/benchmarks.md, target 5). The cursor stays on the same task across updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

CELL_PADDING = 1  # blank cells each side of a column, as DataTable draws them
HEADER_HEIGHT = 1


@dataclass(frozen=True)
class Column:
    key: str
    label: str | Text
    width: int


@dataclass(frozen=True)
class RowView:
    """One table row: a stable key and one renderable per column."""

    key: str
    cells: tuple[Text, ...]


@dataclass
class DiffStats:
    """What the last `show()` did (for tests and the benchmark)."""

    added: int = 0
    updated_cells: int = 0
    removed: int = 0
    sorted: bool = False
    repainted_rows: int = 0  # rows on screen that had to be painted again; -1: all of them


class TaskTable(ScrollView, can_focus=True):
    """Rows of fixed-width cells under one header line, a row cursor, keyed-diff updates."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "task-table--header",
        "task-table--cursor",
        "task-table--even-row",
    }
    # The colours of Textual's DataTable, so the table looks as it always did.
    DEFAULT_CSS = """
    TaskTable {
        background: $surface;
        color: $foreground;
        & > .task-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .task-table--even-row {
            background: $surface-lighten-1 50%;
        }
        &:dark > .task-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .task-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .task-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    class RowHighlighted(Message):
        """The cursor is on another row (`key` None: the table is empty)."""

        def __init__(self, table: TaskTable, key: str | None, index: int) -> None:
            super().__init__()
            self.table = table
            self.key = key
            self.index = index

        @property
        def control(self) -> TaskTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._columns: tuple[Column, ...] = ()
        self._shown: dict[str, tuple[Text, ...]] = {}  # key -> cells
        self._order: list[str] = []  # keys in display order
        self._index_of: dict[str, int] | None = None  # made when first asked for
        self._strips: dict[str, Strip] = {}  # key -> the row's rendered line, unstyled
        self._header: Strip | None = None
        self._cursor = 0
        self._paint_style: Style | None = None  # the widget's style during one paint
        self.last_diff = DiffStats()

    # -- columns -----------------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Define the columns; a change drops every cached line."""
        columns = tuple(columns)
        if columns == self._columns:
            return
        self._columns = columns
        self._strips.clear()
        self._header = None
        self._resize_virtual()
        self.refresh()

    def set_column_label(self, key: str, label: str | Text) -> None:
        self._columns = tuple(
            Column(column.key, label, column.width) if column.key == key else column
            for column in self._columns
        )
        self._header = None
        self.refresh(Region(0, 0, self.size.width, HEADER_HEIGHT))

    # -- rows --------------------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def cursor_row(self) -> int:
        return self._cursor if self._order else -1

    @property
    def cursor_key(self) -> str | None:
        return self._order[self._cursor] if self._order else None

    def cells_of(self, key: str) -> tuple[Text, ...] | None:
        return self._shown.get(key)

    def index_of(self, key: str) -> int | None:
        if self._index_of is None:
            self._index_of = {key: index for index, key in enumerate(self._order)}
        return self._index_of.get(key)

    def move_to_key(self, key: str) -> bool:
        index = self.index_of(key)
        if index is None:
            return False
        self.move_cursor(row=index)
        return True

    def move_cursor(self, *, row: int) -> None:
        """Put the cursor on this row (clamped), scroll it into view, tell the screen."""
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        before = self._cursor
        self._cursor = row
        self._scroll_to_cursor()
        if row != before:
            self._refresh_rows((before, row))
            self.post_message(self.RowHighlighted(self, self._order[row], row))

    def show(self, rows: Sequence[RowView]) -> DiffStats:
        """Make the table show exactly `rows`, in this order, repainting only what changed."""
        stats = DiffStats()
        old_shown, old_order = self._shown, self._order
        keep_cursor = self.cursor_key
        shown: dict[str, tuple[Text, ...]] = {}
        changed: list[str] = []
        for row in rows:
            cells = before = old_shown.get(row.key)
            if before is None:
                stats.added += 1
                cells = row.cells
            elif before is not row.cells and before != row.cells:
                stats.updated_cells += sum(
                    1 for old, new in zip(before, row.cells, strict=True) if old != new
                )
                changed.append(row.key)
                cells = row.cells
            shown[row.key] = cells  # equal cells keep the tuple held (and its cached line)
        if len(shown) != len(rows):
            raise ValueError("two rows have the same key")
        order = list(shown)
        stats.removed = len(old_shown) - (len(order) - stats.added)
        if stats.removed or stats.added:
            kept_before = [key for key in old_order if key in shown]
            kept_now = [key for key in order if key in old_shown]
            stats.sorted = kept_before != kept_now
        else:
            stats.sorted = order != old_order
        for key in changed:
            self._strips.pop(key, None)
        if stats.removed:
            for key in old_shown.keys() - shown.keys():
                self._strips.pop(key, None)
        self._shown, self._order = shown, order
        if stats.added or stats.removed or stats.sorted:
            self._index_of = None
            self._resize_virtual()
            self._place_cursor(keep_cursor)
            self.refresh()
            stats.repainted_rows = -1
        else:
            stats.repainted_rows = self._refresh_rows(
                index for key in changed if (index := self.index_of(key)) is not None
            )
        self.last_diff = stats
        return stats

    def _place_cursor(self, key: str | None) -> None:
        """After rows moved: the cursor follows its task, or stays at its place if it left."""
        index = self.index_of(key) if key is not None else None
        if index is None:
            index = max(0, min(self._cursor, len(self._order) - 1))
        self._cursor = index
        if self._order:
            self._scroll_to_cursor()
        if self.cursor_key != key:
            self.post_message(self.RowHighlighted(self, self.cursor_key, self.cursor_row))

    # -- keys and mouse ----------------------------------------------------------------------

    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER_HEIGHT)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self._cursor - self._page)

    def action_page_down(self) -> None:
        self.move_cursor(row=self._cursor + self._page)

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= HEADER_HEIGHT:
            self.move_cursor(row=int(self.scroll_y) + offset.y - HEADER_HEIGHT)

    def on_focus(self) -> None:
        self.refresh()  # the cursor's colour depends on focus

    def on_blur(self) -> None:
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + self._page:
            self.scroll_to(y=self._cursor - self._page + 1, animate=False, immediate=True)

    # -- painting ----------------------------------------------------------------------------

    def _resize_virtual(self) -> None:
        width = sum(column.width + 2 * CELL_PADDING for column in self._columns)
        size = Size(width, len(self._order) + HEADER_HEIGHT)
        if size == self.virtual_size:
            return
        if self._sized_by_rows():
            self.virtual_size = size  # a layout pass: the table's own size follows its rows
            return
        # Only the scrollbars follow the rows (Textual lays the screen out again itself if one
        # comes or goes). Setting `virtual_size` would lay out the whole screen on every row
        # added or removed: 15-30 ms with the dashboard, during an import every refresh.
        self.set_reactive(TaskTable.virtual_size, size)
        self._scroll_update(size)

    def _sized_by_rows(self) -> bool:
        styles = self.styles
        return (
            not self.container_size
            or styles.width is None
            or styles.width.is_auto
            or styles.height is None
            or styles.height.is_auto
        )

    def _refresh_rows(self, indexes: Iterable[int]) -> int:
        """Repaint these rows if they are on screen; returns how many were."""
        top, page = int(self.scroll_y), self._page
        width = max(self.virtual_size.width, self.size.width)
        count = 0
        for index in indexes:
            if top <= index < top + page:
                self.refresh(Region(0, index - top + HEADER_HEIGHT, width, 1))
                count += 1
        return count

    def render_lines(self, crop: Region) -> list[Strip]:
        # `rich_style` walks the DOM up to the screen: two thirds of a line's cost, so once a
        # paint (a full repaint of the table is 35 lines).
        self._paint_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._paint_style = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style if self._paint_style is None else self._paint_style
        if y < HEADER_HEIGHT:
            strip, style = self._header_strip(), "task-table--header"
        else:
            index = scroll_y + y - HEADER_HEIGHT
            if index >= len(self._order):
                return Strip.blank(width, base)
            strip = self._row_strip(self._order[index])
            if index == self._cursor:
                style = "task-table--cursor"
            elif index % 2 == 0:
                style = "task-table--even-row"
            else:
                style = ""
        # The line's style goes under the cells' own: a green "done" stays green on the cursor.
        line_style = base + self.get_component_rich_style(style) if style else base
        return strip.crop_extend(scroll_x, scroll_x + width, line_style).apply_style(line_style)

    def _header_strip(self) -> Strip:
        if self._header is None:
            labels = [
                column.label if isinstance(column.label, Text) else Text(column.label)
                for column in self._columns
            ]
            self._header = self._line(labels)
        return self._header

    def _row_strip(self, key: str) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._line(self._shown[key])
        return strip

    def _line(self, cells: Iterable[Text]) -> Strip:
        console = self.app.console
        pad = Segment(" " * CELL_PADDING)
        segments: list[Segment] = []
        for column, cell in zip(self._columns, cells, strict=False):
            if cell.cell_len != column.width or "\n" in cell.plain:
                cell = cell.copy()
                cell.plain = cell.plain.replace("\n", " ")
                cell.truncate(column.width, overflow="ellipsis", pad=True)
            segments.append(pad)
            # Text.render leaves the text's own style to the caller when it has no spans.
            rendered = cell.render(console)
            if cell.style:
                rendered = Segment.apply_style(rendered, console.get_style(cell.style))
            segments.extend(rendered)
            segments.append(pad)
        width = sum(column.width + 2 * CELL_PADDING for column in self._columns)
        return Strip(segments, width)
