"""The one-line status bar under the dashboard: sync state and progress, last and next run,
Salesforce API usage, counts of conflicts and errors, and what the table shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text

from tui.widgets.line import Line
from tui.widgets.text import sanitize


@dataclass(frozen=True)
class StatusView:
    state: str = "idle"  # idle | running | waiting | failed | disabled | not_connected
    phase: str = ""
    done: int = 0
    total: int = 0
    queued: bool = False
    last_run: datetime | None = None
    next_run: datetime | None = None
    api_used: int | None = None
    api_max: int | None = None
    conflicts: int = 0
    errors: int = 0
    shown: int = 0
    total_rows: int = 0
    view: str = "Command Center"
    filter: str = ""
    message: str = ""


def _clock(moment: datetime | None, tz: tzinfo | None) -> str:
    if moment is None:
        return "—"
    if tz is not None and moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    return moment.strftime("%H:%M")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def render_status(view: StatusView, tz: tzinfo | None = None, *, wide: bool = True) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if view.state == "running":
        progress = f" {view.phase} {view.done}/{view.total}" if view.total else f" {view.phase}"
        text.append("⟳ syncing" + progress.rstrip(), "bold yellow")
        if view.queued:
            text.append(" +1 queued", "yellow")
    elif view.state == "failed":
        text.append("✗ last sync failed", "bold red")
    elif view.state == "disabled":
        text.append("○ sync off", "dim")
    elif view.state == "not_connected":
        text.append("○ not connected", "dim")
    elif view.state == "waiting":
        text.append("◷ waiting", "yellow")
    else:
        text.append("● idle", "green")
        if view.queued:
            text.append(" +1 queued", "yellow")
    sep = " · "
    text.append(sep + f"last {_clock(view.last_run, tz)}")
    if wide:
        text.append(sep + f"next {_clock(view.next_run, tz)}")
    if view.api_max:
        text.append(sep + f"SF API {view.api_used or 0}/{view.api_max}")
    text.append(sep)
    text.append(_count(view.conflicts, "conflict"), "bold red" if view.conflicts else "")
    text.append(sep)
    text.append(_count(view.errors, "error"), "red" if view.errors else "")
    view_name = view.view if wide else ("CC" if view.view == "Command Center" else view.view)
    text.append(sep + f"{view_name} {view.shown}/{view.total_rows}")
    if view.filter:
        text.append(f' "{sanitize(view.filter)}"', "italic")
    if view.message:
        text.append(sep + sanitize(view.message), "red" if view.state == "failed" else "dim")
    return text


class StatusBar(Line):
    """Shows a `StatusView`; the dashboard replaces the view whenever something changes."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = StatusView()
        self.tz: tzinfo | None = None

    def show(self, view: StatusView, tz: tzinfo | None = None) -> None:
        self.view = view
        self.tz = tz
        self.show_text(render_status(view, tz, wide=self.size.width >= 100 or self.size.width == 0))

    def on_resize(self) -> None:
        self.show(self.view, self.tz)
