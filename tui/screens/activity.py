"""Activity log: every run and every action with before/after values; failed tasks grouped by
category (auth, validation, transient, other) with retry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Label, Static

from sync.model import FIELDS
from tui.widgets.key_bar import KeyBar
from tui.widgets.text import plain, sanitize

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

ERROR_GROUPS = ("auth", "validation", "transient", "other")
GROUP_HINT = {
    "auth": "log in again in Settings (,)",
    "validation": "fix the task on its side, then retry",
    "transient": "the service was busy or unreachable; retry",
    "other": "see the message; retry once fixed",
}


def error_group(category: str) -> str:
    category = (category or "").lower()
    if category == "auth":
        return "auth"
    if category in ("validation", "not_found", "conflict"):
        return "validation"
    if category in ("transient", "rate_limit", "limit", "timeout", "network"):
        return "transient"
    return "other"


def _when(value: Any, tz: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return sanitize(value)[:16]
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz)
        return value.strftime("%m-%d %H:%M:%S")
    return ""


def describe_change(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> Text:
    """'due_date: 2025-03-14 → 2025-03-15; status: open → complete' for the fields that moved."""
    text = Text(no_wrap=True, overflow="ellipsis")
    before = before or {}
    after = after or {}
    if not before and after:
        text.append("new: ", "green")
        text.append_text(plain(after.get("name", ""), width=60))
        return text
    if before and not after:
        text.append("removed: ", "red")
        text.append_text(plain(before.get("name", ""), width=60))
        return text
    parts = 0
    for name in FIELDS:
        if before.get(name) == after.get(name):
            continue
        if parts:
            text.append("; ")
        text.append(f"{name}: ", "bold")
        text.append_text(plain(before.get(name), width=30))
        text.append(" → ")
        text.append_text(plain(after.get(name), width=30))
        parts += 1
    return text


class ActivityScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry failed", id="activity_retry"),
        Binding("tab", "app.focus_next", "Next list", id="activity_next_list", show=False),
        Binding("escape,q", "close", "Back", id="activity_back"),
    ]

    def __init__(self) -> None:
        super().__init__(id="activity")
        self._entries: list[dict] | None = None  # what the log shows

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Label("Activity", classes="screen-title")
        yield DataTable(id="log", cursor_type="row", zebra_stripes=True)
        yield Label("Failed tasks", classes="section")
        yield Static(id="error-summary")
        yield DataTable(id="errors", cursor_type="row")
        yield KeyBar()

    def on_mount(self) -> None:
        log = self.query_one("#log", DataTable)
        log.add_column("When", key="at", width=14)
        log.add_column("What", key="kind", width=12)
        log.add_column("Side", key="side", width=13)
        log.add_column("Change", key="change")
        errors = self.query_one("#errors", DataTable)
        errors.add_column("Group", key="group", width=10)
        errors.add_column("Side", key="side", width=13)
        errors.add_column("Task", key="task", width=20)
        errors.add_column("Message", key="message")
        self.refresh_from_engine()
        log.focus()

    def refresh_from_engine(self, *, rows: bool = True, keys: frozenset[str] | None = None) -> None:
        if not rows:
            return
        entries = self.rs_app.engine.activity(limit=500)
        if entries != self._entries:
            self._entries = entries
            self._show_log(entries)
        self._show_errors()

    def _show_log(self, entries: list[dict]) -> None:
        # Rebuilt only when the entries changed: a run's bursts of events leave it alone.
        tz = self.rs_app.time_zone()
        log = self.query_one("#log", DataTable)
        log.clear()
        for index, entry in enumerate(entries):
            kind = sanitize(entry.get("kind", ""))
            side = entry.get("side") or ""
            side_label = {"salesconnect": "Sales Connect", "salesforce": "Salesforce"}.get(
                side, sanitize(side)
            )
            change = describe_change(entry.get("before"), entry.get("after"))
            message = entry.get("message") or ""
            if message:
                if change.plain:
                    change.append("  ")
                change.append_text(plain(message, width=80, style="dim"))
            style = "red" if entry.get("category") else ""
            log.add_row(
                Text(_when(entry.get("at"), tz), style="dim"),
                Text(kind, style=style or "bold"),
                Text(side_label),
                change,
                key=str(index),
            )

    def _errors(self) -> list[Any]:
        """The tasks parked with an error (each is retried by the next run)."""
        engine = self.rs_app.engine
        errors = getattr(engine, "errors", None)
        if callable(errors):
            return list(errors())
        store = getattr(engine, "store", None)
        return list(store.errors()) if store is not None else []

    def _show_errors(self) -> None:
        table = self.query_one("#errors", DataTable)
        table.clear()
        errors = self._errors()
        grouped: dict[str, list[Any]] = {group: [] for group in ERROR_GROUPS}
        for error in errors:
            grouped[error_group(getattr(error, "category", ""))].append(error)
        summary = Text()
        if not errors:
            summary.append("No failed tasks.", "green")
        for group in ERROR_GROUPS:
            items = grouped[group]
            if not items:
                continue
            summary.append(f"{group}: {len(items)}", "bold red")
            summary.append(f" ({GROUP_HINT[group]})  ", "dim")
            for error in items:
                side = getattr(error, "side", "")
                table.add_row(
                    Text(group, style="red"),
                    Text(getattr(side, "label", str(side))),
                    plain(getattr(error, "task_id", ""), width=20),
                    plain(getattr(error, "message", ""), width=120),
                )
        self.query_one("#error-summary", Static).update(summary)

    def action_retry(self) -> None:
        errors = self._errors()
        if not errors:
            self.notify("Nothing to retry.")
            return
        engine = self.rs_app.engine
        retry = getattr(engine, "retry_errors", None)

        async def run() -> None:
            if retry is not None:
                await retry()
            engine.request_sync()

        self.rs_app.run_engine_call(
            run,
            description="Retrying the failed tasks",
            success=f"Retrying {len(errors)} failed task(s) in a sync now.",
            then_sync=False,
        )

    def action_close(self) -> None:
        self.dismiss()
