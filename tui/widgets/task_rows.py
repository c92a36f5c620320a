"""How one dashboard row looks: the engine's Row -> cells of the side-by-side table.

Pure presentation: no widgets, no I/O. The dashboard decides which rows to show (view and
filter) and hands the result to `TaskTable.show()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from rich.text import Text

from sync.model import PRIORITY_HIGH, STATUS_COMPLETE, STATUS_OPEN, Side
from tui.widgets.task_table import Column, RowView
from tui.widgets.text import plain, sanitize

# state -> (icon, word, style)
MARKERS: dict[str, tuple[str, str, str]] = {
    "in_sync": ("✓", "in sync", "green"),
    "pending": ("•", "pending", "yellow"),
    "conflict": ("!", "conflict", "bold red"),
    "error": ("✗", "error", "red"),
    "not_synced": ("–", "not synced", "dim"),
}

SF_STATUS_LABEL = {STATUS_OPEN: "Not Started", STATUS_COMPLETE: "Completed"}
SF_PRIORITY_LABEL = {"normal": "Normal", "high": "High"}


@dataclass(frozen=True)
class Layout:
    """Column widths for a terminal width: wide shows status and priority, narrow folds them."""

    wide: bool
    name_width: int

    @classmethod
    def for_width(cls, width: int) -> Layout:
        if width >= 110:
            fixed = 12 + 6 + 4 + 4 + 6 + 11 + 4  # marker, SC due/state/pri, SF due/status/pri
            padding = 2 * 9 + 2
            return cls(True, max(12, (width - fixed - padding) // 2))
        fixed = 2 + 6 + 6 + 3 + 3
        padding = 2 * 7 + 2
        return cls(False, max(8, (width - fixed - padding) // 2))

    def columns(self, focused: Side) -> tuple[Column, ...]:
        sc = ("▶ " if focused is Side.SALESCONNECT else "  ") + "Sales Connect"
        sf = ("▶ " if focused is Side.SALESFORCE else "  ") + "Salesforce"
        n = self.name_width
        if self.wide:
            return (
                Column("mark", "", 12),
                Column("sc_name", sc, n),
                Column("sc_due", "Due", 6),
                Column("sc_status", "St", 4),
                Column("sc_priority", "Pri", 4),
                Column("sf_name", sf, n),
                Column("sf_due", "Due", 6),
                Column("sf_status", "Status", 11),
                Column("sf_priority", "Pri", 4),
            )
        return (
            Column("mark", "", 2),
            Column("sc_name", sc, n),
            Column("sc_due", "Due", 6),
            Column("sc_status", "", 3),
            Column("sf_name", sf, n),
            Column("sf_due", "Due", 6),
            Column("sf_status", "", 3),
        )


def state_of(row: Any) -> str:
    return str(getattr(row.state, "value", row.state))


def due_label(due: date | None, today: date) -> tuple[str, str]:
    """("today", style) etc.; overdue open tasks are red."""
    if due is None:
        return "", ""
    if due == today:
        return "today", "bold"
    if due == today + timedelta(days=1):
        return "tmrw", ""
    if due < today:
        return due.strftime("%b %d"), "red"
    return due.strftime("%b %d"), ""


def sf_status(task: Any) -> str:
    raw = getattr(task, "raw", {}) or {}
    if raw.get("status"):
        return sanitize(raw["status"])
    return SF_STATUS_LABEL.get(task.fields.status or "", "")


# Most cells hold one of a few values (a due label, a status word, a marker): each distinct one
# is made once and shared by every row that shows it; the table only reads cells.
_cell = lru_cache(maxsize=4096)
_EMPTY = Text("")


@_cell
def _sc_status_cell(status: str | None) -> Text:
    if status == STATUS_COMPLETE:
        return Text("done", style="green")
    return Text("open", style="dim")


def _styled_sc_status(task: Any) -> Text:
    if task is None:
        return _EMPTY
    return _sc_status_cell(task.fields.status)


@_cell
def _sf_status_cell(label: str, status: str | None) -> Text:
    if status is None:
        style = "yellow"  # a value Sales Connect cannot hold: not synced
    elif status == STATUS_COMPLETE:
        style = "green"
    else:
        style = "dim"
    return plain(label, width=11, style=style)


def _styled_sf_status(task: Any) -> Text:
    if task is None:
        return _EMPTY
    return _sf_status_cell(sf_status(task), task.fields.status)


@_cell
def _priority_cell(priority: str | None, side: Side, unmapped_label: str) -> Text:
    if priority == PRIORITY_HIGH:
        return Text("high" if side is Side.SALESCONNECT else "High", style="bold red")
    if priority is None:
        return plain(unmapped_label, width=4, style="dim yellow")
    return _EMPTY


def _styled_priority(task: Any, side: Side) -> Text:
    """High stands out, Low is dim, Normal stays empty (most tasks are normal)."""
    if task is None:
        return _EMPTY
    priority = task.fields.priority
    return _priority_cell(priority, side, sf_priority(task) if priority is None else "")


def sf_priority(task: Any) -> str:
    raw = getattr(task, "raw", {}) or {}
    if raw.get("priority"):
        return sanitize(raw["priority"])
    return SF_PRIORITY_LABEL.get(task.fields.priority or "", "")


@_cell
def _flags_cell(status: str | None, priority: str | None, side: Side) -> Text:
    text = Text()
    if status == STATUS_COMPLETE:
        text.append("✔", "green")
    elif status is None:
        text.append("◐", "yellow")
    if priority == PRIORITY_HIGH:
        text.append("!", "bold red")
    elif priority is None and side is Side.SALESFORCE:
        text.append("↓", "dim")
    return text


def _flags(task: Any, side: Side) -> Text:
    """The narrow layout's one-cell summary: ✔ done, ! high, ◐ status not synced, ↓ low."""
    if task is None:
        return _EMPTY
    return _flags_cell(task.fields.status, task.fields.priority, side)


def _name(task: Any, width: int) -> Text:
    if task is None:
        return _EMPTY
    style = "dim strike" if task.fields.status == STATUS_COMPLETE else ""
    if getattr(task, "deleted", False):
        style = "dim italic"
    return plain(task.fields.name, width=width, style=style)


@_cell
def _due_cell(due: date | None, today: date, complete: bool) -> Text:
    label, style = due_label(due, today)
    if complete and style == "red":
        style = ""
    return Text(label, style=style)


def _due(task: Any, today: date) -> Text:
    if task is None:
        return _EMPTY
    return _due_cell(task.fields.due_date, today, task.fields.status == STATUS_COMPLETE)


@_cell
def _marker_cell(state: str, wide: bool) -> Text:
    icon, word, style = MARKERS.get(state, ("?", state, ""))
    if wide:
        return Text(f"{icon} {word}", style=style, no_wrap=True, overflow="ellipsis")
    return Text(icon, style=style)


def marker(row: Any, wide: bool) -> Text:
    return _marker_cell(state_of(row), wide)


def render_row(row: Any, layout: Layout, today: date) -> RowView:
    sc, sf = row.sc, row.sf
    n = layout.name_width
    if layout.wide:
        cells = (
            marker(row, True),
            _name(sc, n),
            _due(sc, today),
            _styled_sc_status(sc),
            _styled_priority(sc, Side.SALESCONNECT),
            _name(sf, n),
            _due(sf, today),
            _styled_sf_status(sf),
            _styled_priority(sf, Side.SALESFORCE),
        )
    else:
        cells = (
            marker(row, False),
            _name(sc, n),
            _due(sc, today),
            _flags(sc, Side.SALESCONNECT),
            _name(sf, n),
            _due(sf, today),
            _flags(sf, Side.SALESFORCE),
        )
    return RowView(row.key, cells)


def due_dates(row: Any) -> Iterable[date]:
    for task in (row.sc, row.sf):
        if task is not None and task.fields.due_date is not None:
            yield task.fields.due_date


def in_command_center(row: Any, today: date) -> bool:
    """Due today or tomorrow on either side (SPEC 4: the Command Center view)."""
    # Plain loops, no generators: an import asks this of thousands of new rows at once.
    tomorrow = today + timedelta(days=1)
    for task in (row.sc, row.sf):
        if task is not None:
            due = task.fields.due_date
            if due is not None and today <= due <= tomorrow:
                return True
    return False


def search_texts(row: Any) -> tuple[str, ...]:
    """What `/` searches in, casefolded: both sides' names and comments, and the row's reason."""
    texts = [getattr(row, "reason", "") or ""]
    for task in (row.sc, row.sf):
        if task is not None:
            texts += [task.fields.name or "", task.fields.details or ""]
    return tuple(sanitize(text).casefold() for text in texts)


def matches(row: Any, needle: str) -> bool:
    """Case-insensitive text match on both sides' names and comments, and the row's reason."""
    if not needle:
        return True
    needle = needle.casefold()
    return any(needle in text for text in search_texts(row))


def sort_key(row: Any) -> tuple:
    """Earliest due date first (undated last), then name, then key (stable)."""
    dues = list(due_dates(row))
    first = min(dues) if dues else date.max
    task = row.sc or row.sf
    name = sanitize(task.fields.name).casefold() if task is not None else ""
    return (first, name, row.key)
