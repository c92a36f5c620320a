"""`?`: every key of the dashboard and the conflict screen, and what the markers mean."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.key_bar import KeyBar
from tui.widgets.task_rows import MARKERS

DASHBOARD_KEYS = (
    ("s", "sync now (during a run: queue one more)"),
    ("n / p", "next / previous conflict"),
    ("enter", "open the task or the conflict"),
    ("← / →", "choose the side e, x, a and d act on"),
    ("e", "edit the task on that side"),
    ("x", "complete / reopen it"),
    ("a", "add a task on that side"),
    ("d", "delete it (asks first)"),
    ("v", "Command Center (due today & tomorrow) / All"),
    ("/", "filter by text; escape clears"),
    (",", "settings"),
    ("l", "activity log"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)
CONFLICT_KEYS = (
    ("<", "take the Sales Connect value"),
    (">", "take the Salesforce value"),
    ("e", "type the value yourself"),
    ("/", "skip to the next conflict"),
    ("A", "apply this field's choice to all conflicts on the field"),
    ("r / d", "edit-vs-delete: restore the task / delete it"),
    ("enter", "save; the next sync applies it"),
)


def key_table(title: str, rows: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True)
    table.add_column(style="bold cyan", width=10)
    table.add_column()
    for key, meaning in rows:
        table.add_row(key, meaning)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help_close")
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        markers = Table(
            title="Markers", title_justify="left", show_header=False, box=None, expand=True
        )
        markers.add_column(width=14)
        markers.add_column()
        meanings = {
            "in_sync": "both sides hold the same five fields",
            "pending": "a change waits for the next run",
            "conflict": "the same field changed on both sides: enter to settle",
            "error": "the last write failed; see the activity log (l)",
            "not_synced": "out of scope, or a Salesforce value Sales Connect cannot hold",
        }
        for state, (icon, word, style) in MARKERS.items():
            markers.add_row(Text(f"{icon} {word}", style=style), meanings[state])
        with VerticalScroll(classes="dialog wide tall"):
            yield Static(Text("reminder-sync: keys", style="bold"), classes="dialog-title")
            yield Static(key_table("Dashboard", DASHBOARD_KEYS))
            yield Static(key_table("Conflict screen", CONFLICT_KEYS))
            yield Static(markers)
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
