"""The dashboard's rows, kept between refreshes, so a refresh costs what changed, not every row.

`update()` takes the engine's rows and keeps, per row key, what the dashboard derived from it:
whether it is due soon (Command Center), its sort key, its rendered cells and its filter text.
All but the first are made only when the row is first shown, and made again only when that
row changes. With 10,000 links the Command Center shows a few hundred rows: only those are
rendered. Pure: no widgets, no engine calls.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from tui.widgets.task_rows import Layout, in_command_center, render_row, search_texts, sort_key
from tui.widgets.task_table import RowView


@dataclass(slots=True)
class _Entry:
    row: Any
    soon: bool | None = None  # due today or tomorrow on either side; None: not worked out yet
    order: tuple | None = None
    view: RowView | None = None
    texts: tuple[str, ...] | None = None  # casefolded names, comments and reason


class RowIndex:
    """Row key -> the engine's row and what was derived from it for one layout and day."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self._entries: dict[str, _Entry] = {}
        self._layout: Layout | None = None
        self._today: date | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def set_basis(self, layout: Layout, today: date) -> bool:
        """Cells depend on the column layout, Command Center and due labels on the day.
        Returns whether anything derived had to be dropped."""
        if layout == self._layout and today == self._today:
            return False
        new_day = today != self._today
        self._layout, self._today = layout, today
        for entry in self._entries.values():
            entry.view = None
            if new_day:
                entry.soon = None
        return True

    def update(self, rows: Mapping[str, Any], changed: Collection[str] | None = None) -> bool:
        """Take the engine's current rows, by key (`engine.rows_so_far()`). With `changed`
        None every row is compared with the one held; with a set of keys (the engine's
        TasksChanged), only those rows and the rows that came or went are looked at (a cost
        that follows the change, not the 10,000 rows held), and the rest keep what was derived
        from them. Returns whether any row changed.
        """
        fresh = rows
        entries = self._entries
        came = fresh.keys() - entries.keys()
        went = entries.keys() - fresh.keys()
        for key in went:
            del entries[key]
        if changed is None:
            looked_at: Iterable[str] = fresh
        else:
            # Taken as unchanged: an entry not named keeps the row it was derived from, so a
            # later full comparison still sees a difference the engine did not announce.
            looked_at = came.union(key for key in changed if key in fresh)
        changed_any = bool(went)
        for key in looked_at:
            row = fresh[key]
            entry = entries.get(key)
            if entry is not None:
                if entry.row is row:
                    continue
                if entry.row == row:
                    entry.row = row  # the same content in a new object: next time `is` holds
                    continue
            # Whether it is due soon is worked out when the Command Center is shown: an import
            # brings ~800 new rows a refresh, and this step is the one that takes them.
            entries[key] = _Entry(row)
            changed_any = True
        self.rows = fresh
        return changed_any

    def _soon(self, entry: _Entry) -> bool:
        if entry.soon is None:
            assert self._today is not None
            entry.soon = in_command_center(entry.row, self._today)
        return entry.soon

    def visible(self, *, command_center: bool, needle: str = "") -> list[RowView]:
        """The rows to show, in display order, their cells rendered where not yet."""
        needle = needle.casefold()
        entries = self._entries
        picked = [
            entry
            for entry in entries.values()
            if (not command_center or entry.soon or (entry.soon is None and self._soon(entry)))
            and (not needle or self._matches(entry, needle))
        ]
        for entry in picked:
            if entry.order is None:
                entry.order = sort_key(entry.row)
        picked.sort(key=_order)
        return [self._view(entry) for entry in picked]

    def _view(self, entry: _Entry) -> RowView:
        if entry.view is None:
            assert self._layout is not None and self._today is not None
            entry.view = render_row(entry.row, self._layout, self._today)
        return entry.view

    @staticmethod
    def _matches(entry: _Entry, needle: str) -> bool:
        if entry.texts is None:
            entry.texts = search_texts(entry.row)
        return any(needle in text for text in entry.texts)


def _order(entry: _Entry) -> tuple:
    assert entry.order is not None
    return entry.order
