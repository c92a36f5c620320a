"""How one dashboard row looks: the engine's Row -> cells of the side-by-side table.

Pure presentation: no widgets, no I/O. The dashboard decides which rows to show (view and
filter) and hands the result to `TaskTable.show()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
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


def _styled_sc_status(task: Any) -> Text:
    if task is None:
        return Text("")
    if task.fields.status == STATUS_COMPLETE:
        return Text("done", style="green")
    return Text("open", style="dim")


def _styled_sf_status(task: Any) -> Text:
    if task is None:
        return Text("")
    label = sf_status(task)
    if task.fields.status is None:
        style = "yellow"  # a value Sales Connect cannot hold: not synced
    elif task.fields.status == STATUS_COMPLETE:
        style = "green"
    else:
        style = "dim"
    return plain(label, width=11, style=style)


def _styled_priority(task: Any, side: Side) -> Text:
    """High stands out, Low is dim, Normal stays empty (most tasks are normal)."""
    if task is None:
        return Text("")
    if task.fields.priority == PRIORITY_HIGH:
        return Text("high" if side is Side.SALESCONNECT else "High", style="bold red")
    if task.fields.priority is None:
        return plain(sf_priority(task), width=4, style="dim yellow")
    return Text("")


def sf_priority(task: Any) -> str:
    raw = getattr(task, "raw", {}) or {}
    if raw.get("priority"):
        return sanitize(raw["priority"])
    return SF_PRIORITY_LABEL.get(task.fields.priority or "", "")


def _flags(task: Any, side: Side) -> Text:
    """The narrow layout's one-cell summary: ✔ done, ! high, ◐ status not synced, ↓ low."""
    text = Text()
    if task is None:
        return text
    fields = task.fields
    if fields.status == STATUS_COMPLETE:
        text.append("✔", "green")
    elif fields.status is None:
        text.append("◐", "yellow")
    if fields.priority == PRIORITY_HIGH:
        text.append("!", "bold red")
    elif fields.priority is None and side is Side.SALESFORCE:
        text.append("↓", "dim")
    return text


def _name(task: Any, width: int) -> Text:
    if task is None:
        return Text("")
    style = "dim strike" if task.fields.status == STATUS_COMPLETE else ""
    if getattr(task, "deleted", False):
        style = "dim italic"
    return plain(task.fields.name, width=width, style=style)


def _due(task: Any, today: date) -> Text:
    if task is None:
        return Text("")
    label, style = due_label(task.fields.due_date, today)
    if task.fields.status == STATUS_COMPLETE and style == "red":
        style = ""
    return Text(label, style=style)


def marker(row: Any, wide: bool) -> Text:
    icon, word, style = MARKERS.get(state_of(row), ("?", state_of(row), ""))
    if wide:
        return Text(f"{icon} {word}", style=style, no_wrap=True, overflow="ellipsis")
    return Text(icon, style=style)


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
    tomorrow = today + timedelta(days=1)
    return any(today <= due <= tomorrow for due in due_dates(row))


def matches(row: Any, needle: str) -> bool:
    """Case-insensitive text match on both sides' names and comments, and the row's reason."""
    if not needle:
        return True
    needle = needle.casefold()
    haystack = [getattr(row, "reason", "") or ""]
    for task in (row.sc, row.sf):
        if task is not None:
            haystack += [task.fields.name or "", task.fields.details or ""]
    return any(needle in sanitize(text).casefold() for text in haystack)


def sort_key(row: Any) -> tuple:
    """Earliest due date first (undated last), then name, then key (stable)."""
    dues = list(due_dates(row))
    first = min(dues) if dues else date.max
    task = row.sc or row.sf
    name = sanitize(task.fields.name).casefold() if task is not None else ""
    return (first, name, row.key)
