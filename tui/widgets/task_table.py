"""A DataTable that takes the whole list of rows each time and applies only the difference.

`show(rows)` compares the new rows with what is on screen, by row key:
  - a row whose cells changed gets `update_cell` for those cells only,
  - a new row gets `add_row(key=...)`,
  - a row that left is removed, unless most rows left, then the table is rebuilt
    (DataTable.remove_row is O(n), so removing thousands one by one would be quadratic),
  - if the order changed, one sort puts the rows in the wanted order.
All of it inside one `batch_update()`, so the screen repaints once. The cursor stays on the
same task across updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist


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
        # What is on screen: key -> the cell objects the table holds (kept so that sorting can
        # find a row by the identity of its first cell).
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
        wanted = {row.key: row for row in rows}
        keep_cursor = self.cursor_key
        removed = [key for key in self._shown if key not in wanted]
        with self.app.batch_update():
            if not self._shown or (removed and len(removed) * 2 > len(self._shown)):
                self._rebuild(rows)
                stats.rebuilt = True
                stats.added = len(rows)
            else:
                for key in removed:
                    self.remove_row(key)
                    del self._shown[key]
                stats.removed = len(removed)
                for row in rows:
                    old = self._shown.get(row.key)
                    if old is None:
                        cells = _fresh(row.cells)
                        self.add_row(*cells, key=row.key)
                        self._shown[row.key] = cells
                        stats.added += 1
                    elif old != row.cells:
                        stats.updated_cells += self._update_changed(row.key, old, row.cells)
                current_order = [key for key in self._order if key in wanted] + [
                    row.key for row in rows if row.key not in self._order
                ]
                if current_order != wanted_order:
                    self._sort_into(wanted_order)
                    stats.sorted = True
            self._order = wanted_order
            if keep_cursor is not None and keep_cursor in wanted:
                self.move_to_key(keep_cursor)
        self.last_diff = stats
        return stats

    def _rebuild(self, rows: Sequence[RowView]) -> None:
        self.clear(columns=False)
        self._shown = {}
        for row in rows:
            cells = _fresh(row.cells)
            self.add_row(*cells, key=row.key)
            self._shown[row.key] = cells

    def _update_changed(self, key: str, old: tuple[Text, ...], new: tuple[Text, ...]) -> int:
        cells = list(old)
        changed = 0
        for index, (column, before, after) in enumerate(
            zip(self._columns_spec, old, new, strict=True)
        ):
            if before == after:
                continue
            value = after.copy() if index == 0 else after
            try:
                self.update_cell(key, column.key, value)
            except CellDoesNotExist:
                continue
            cells[index] = value
            changed += 1
        self._shown[key] = tuple(cells)
        return changed

    def _sort_into(self, order: list[str]) -> None:
        # DataTable.sort hands the key function the row's cell values only; every row's first
        # cell is its own object (see `_fresh`), so its identity names the row.
        position = {id(self._shown[key][0]): index for index, key in enumerate(order)}
        self.sort(key=lambda values: position.get(id(values[0]), len(position)))


def _fresh(cells: tuple[Text, ...]) -> tuple[Text, ...]:
    """A copy of the first cell, so no two rows share that object (sorting relies on it)."""
    if not cells:
        return cells
    return (cells[0].copy(), *cells[1:])
