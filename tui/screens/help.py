"""`?`: every key of the dashboard and the conflict screen, and what the markers mean."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

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


def help_text() -> Text:
    """The whole page as one Text (made once): cheap to paint, unlike a Rich Table."""
    text = Text()
    meanings = {
        "in_sync": "both sides hold the same five fields",
        "pending": "a change waits for the next run",
        "conflict": "the same field changed on both sides: enter to settle",
        "error": "the last write failed; see the activity log (l)",
        "not_synced": "out of scope, or a Salesforce value Sales Connect cannot hold",
    }
    for title, rows in (("Dashboard", DASHBOARD_KEYS), ("Conflict screen", CONFLICT_KEYS)):
        text.append(f"{title}\n", "italic")
        for key, meaning in rows:
            text.append(f"  {key:<12}", "bold cyan")
            text.append(f"{meaning}\n")
        text.append("\n")
    text.append("Markers\n", "italic")
    for state, (icon, word, style) in MARKERS.items():
        text.append(f"  {icon} {word:<12}", style)
        text.append(f"{meanings[state]}\n")
    text.rstrip()
    return text


class HelpScreen(Screen[None]):
    """A page of its own: nothing behind it is drawn while it is open (opening and closing it
    during a big sync stays quick)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help_close")
    ]

    def __init__(self) -> None:
        super().__init__(id="help")

    def compose(self) -> ComposeResult:
        yield Label("reminder-sync: keys", classes="screen-title")
        with VerticalScroll():
            yield Static(help_text(), markup=False)
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
