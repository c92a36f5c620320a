"""A DataTable that takes the whole list of rows each time and applies only the difference.

`show(rows)` compares the new rows with what is on screen, by row key:
  - a row whose cells changed gets `update_cell` for those cells only (a row given the very
    same cells tuple as last time costs one identity check),
  - a new row gets `add_row(key=...)`,
  - rows that left are removed together in one pass, unless most rows left, then the table is
    rebuilt (DataTable.remove_row renumbers every row, so thousands one by one are quadratic),
  - if the order changed, the rows are renumbered once into the wanted order.
All of it inside one `batch_update()`, so the screen repaints once. The cursor stays on the
same task across updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets.data_table import (
    CellDoesNotExist,
    CellKey,
    DuplicateKey,
    Row,
    RowDoesNotExist,
    RowKey,
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None


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
    rebuilt: bool = False
    sorted: bool = False


class TaskTable(DataTable):
    """DataTable with keyed-diff updates."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=True,
            cursor_foreground_priority="renderable",
        )
        self._columns_spec: tuple[Column, ...] = ()
        # What is on screen: key -> the cells the table holds, in display order.
        self._shown: dict[str, tuple[Text, ...]] = {}
        self._order: list[str] = []
        self.last_diff = DiffStats()

    # -- columns -----------------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Define the columns; a change of columns rebuilds the table on the next `show()`."""
        columns = tuple(columns)
        if columns == self._columns_spec:
            return
        self._columns_spec = columns
        self.clear(columns=True)
        for column in columns:
            self.add_column(column.label, width=column.width, key=column.key)
        self._shown.clear()
        self._order.clear()

    def set_column_label(self, key: str, label: str | Text) -> None:
        column = self.columns.get(key)  # type: ignore[call-overload]
        if column is not None:
            column.label = Text(label) if isinstance(label, str) else label
            self._require_update_dimensions = True
            self.refresh()

    # -- rows --------------------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    @property
    def cursor_key(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def cells_of(self, key: str) -> tuple[Text, ...] | None:
        return self._shown.get(key)

    def move_to_key(self, key: str) -> bool:
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return False
        self.move_cursor(row=index)
        return True

    def show(self, rows: Sequence[RowView]) -> DiffStats:
        """Make the table show exactly `rows`, in this order, touching only what changed."""
        stats = DiffStats()
        wanted_order = [row.key for row in rows]
        wanted = set(wanted_order)
        keep_cursor = self.cursor_key
        shown = self._shown
        removed = [key for key in shown if key not in wanted]
        with self.app.batch_update():
            if not shown or (removed and len(removed) * 2 > len(shown)):
                self._rebuild(rows)
                stats.rebuilt = True
                stats.added = len(rows)
            else:
                order = self._order
                if removed:
                    self._remove_rows(removed)
                    order = [key for key in order if key in wanted]
                    stats.removed = len(removed)
                new_rows = []
                for row in rows:
                    old = shown.get(row.key)
                    if old is None:
                        new_rows.append(row)
                    elif old is not row.cells and old != row.cells:
                        stats.updated_cells += self._update_changed(row.key, old, row.cells)
                if new_rows:
                    self._append_rows(new_rows)
                    order += [row.key for row in new_rows]
                    stats.added = len(new_rows)
                if order != wanted_order:
                    stats.sorted = True
                if removed or stats.sorted:
                    self._renumber(wanted_order)
            self._order = wanted_order
            if keep_cursor is not None and keep_cursor in wanted:
                self.move_to_key(keep_cursor)
        self.last_diff = stats
        return stats

    def _rebuild(self, rows: Sequence[RowView]) -> None:
        self.clear(columns=False)
        self._shown = {}
        self._append_rows(rows)

    def _update_changed(self, key: str, old: tuple[Text, ...], new: tuple[Text, ...]) -> int:
        cells = list(old)
        changed = 0
        for index, (column, before, after) in enumerate(
            zip(self._columns_spec, old, new, strict=True)
        ):
            if before is after or before == after:
                continue
            try:
                self.update_cell(key, column.key, after)
            except CellDoesNotExist:
                continue
            cells[index] = after
            changed += 1
        self._shown[key] = tuple(cells)
        return changed

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of every new row to size auto-width columns (2.5 s for
        # 10,000 rows). With every column of a fixed width and rows one line high (the default
        # of add_row), a new row changes nothing but the row count, which it recounts anyway.
        if self._columns_spec and all(column.width for column in self._columns_spec):
            new_rows = ()
        super()._update_dimensions(new_rows)

    # DataTable (textual 8.2) offers add_row and remove_row, which do their bookkeeping per row
    # (remove_row renumbers every remaining row each time), and sort, whose key sees only cell
    # values. These do the same bookkeeping once for a whole update, on DataTable's own
    # attributes (textual is pinned); tests/tui/test_task_table.py checks what they leave.

    def _append_rows(self, rows: Sequence[RowView]) -> None:
        """add_row for many rows at once: add_row re-sorts the columns twice and re-validates
        the cursor for every row (0.1-0.2 ms each); this does that once."""
        columns = [column.key for column in self.ordered_columns]
        first_row = self.row_count == 0
        locations = self._row_locations
        start = len(locations)
        for offset, row in enumerate(rows):
            if len(row.cells) > len(columns):
                raise ValueError("More values provided than there are columns.")
            row_key = RowKey(row.key)
            if row_key in locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            locations[row_key] = start + offset
            self._data[row_key] = dict(zip(columns, row.cells, strict=False))
            self.rows[row_key] = Row(row_key, 1)
            self._new_rows.add(row_key)
            self._shown[row.key] = row.cells
        if not rows:
            return
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if first_row and columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # as add_row: a cursor appears, RowHighlighted is posted
        self._update_count += 1
        self.check_idle()

    def _remove_rows(self, keys: Sequence[str]) -> None:
        """Drop these rows' data; `_renumber` then gives the rest their new positions."""
        for key in keys:
            row_key = RowKey(key)
            for column_key in self._data.get(row_key, {}):
                self._updated_cells.discard(CellKey(row_key, column_key))
            self.rows.pop(row_key, None)
            self._data.pop(row_key, None)
            del self._shown[key]
        self._require_update_dimensions = True

    def _renumber(self, order: Sequence[str]) -> None:
        """Put the rows in this order (every key in `order` is in the table)."""
        self._row_locations = TwoWayDict({RowKey(key): index for index, key in enumerate(order)})
        self.cursor_coordinate = self.cursor_coordinate  # clamped if rows left
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.refresh(layout=True)
