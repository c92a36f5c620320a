"""One row opened: both sides' five fields next to each other, ids, and why the row is marked."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sync.model import FIELDS, Side
from tui.widgets.key_bar import KeyBar
from tui.widgets.task_rows import sf_priority, sf_status, state_of
from tui.widgets.text import multiline, plain

FIELD_LABELS = {
    "name": "Name / Subject",
    "status": "Status",
    "priority": "Priority",
    "due_date": "Due",
    "details": "Details / Comments",
}


def field_text(side: Side, task: Any, field_name: str) -> Text:
    if task is None:
        return Text("—", style="dim")
    if side is Side.SALESFORCE and field_name == "status":
        return plain(sf_status(task))
    if side is Side.SALESFORCE and field_name == "priority":
        return plain(sf_priority(task))
    value = task.fields.get(field_name)
    if field_name == "details":
        return multiline(value or "")
    if value is None:
        return Text("—", style="dim")
    return plain(value.isoformat() if hasattr(value, "isoformat") else value)


class TaskScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close", id="task_close")
    ]

    def __init__(self, row: Any) -> None:
        super().__init__(classes="dialog-screen")
        self.row = row

    def compose(self) -> ComposeResult:
        row = self.row
        table = Table(expand=True, show_lines=True, title_justify="left")
        table.add_column("", style="bold", width=18)
        table.add_column("Sales Connect", ratio=1)
        table.add_column("Salesforce", ratio=1)
        for field_name in FIELDS:
            label = FIELD_LABELS[field_name]
            if field_name in getattr(row, "unmapped", ()):
                label += " (not synced)"
            table.add_row(
                label,
                field_text(Side.SALESCONNECT, row.sc, field_name),
                field_text(Side.SALESFORCE, row.sf, field_name),
            )
        table.add_row(
            "Id",
            plain(row.sc.id if row.sc else "—"),
            plain(row.sf.id if row.sf else "—"),
        )
        head = Text()
        head.append(state_of(row).replace("_", " "), "bold")
        if row.reason:
            head.append(": ")
            head.append_text(plain(row.reason))
        with VerticalScroll(classes="dialog wide tall"):
            yield Static(head, classes="dialog-title")
            yield Static(table)
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
