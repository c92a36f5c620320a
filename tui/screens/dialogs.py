"""Small modal dialogs: confirm, edit a task, edit one value."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from sync.model import (
    PRIORITY_HIGH,
    PRIORITY_NORMAL,
    STATUS_COMPLETE,
    STATUS_OPEN,
    Side,
    Task,
)
from tui.widgets.text import sanitize

STATUS_LABELS = {
    Side.SALESCONNECT: {STATUS_OPEN: "open", STATUS_COMPLETE: "complete"},
    Side.SALESFORCE: {STATUS_OPEN: "Not Started", STATUS_COMPLETE: "Completed"},
}
PRIORITY_LABELS = {
    Side.SALESCONNECT: {PRIORITY_NORMAL: "normal", PRIORITY_HIGH: "high"},
    Side.SALESFORCE: {PRIORITY_NORMAL: "Normal", PRIORITY_HIGH: "High"},
}
KEEP = "__keep__"  # Select value: leave an unmapped Salesforce value as it is


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no. `y`/enter confirm, `n`/escape cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, question: str | Text, *, confirm: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self._question = question
        self._confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, markup=False, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self._confirm} (y)", id="yes", variant="error", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def parse_due(text: str) -> date | None:
    """'' -> None; 'YYYY-MM-DD' -> date; anything else raises ValueError with a clear message."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD, or leave empty") from None


class EditTaskDialog(ModalScreen[dict | None]):
    """Edit (or create) one task's five fields, in the words of its side.

    Dismisses with the changed fields in canonical form, or None when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="edit_save", priority=True),
        Binding("escape", "cancel", "Cancel", id="edit_cancel"),
    ]

    def __init__(
        self,
        side: Side,
        task: Task,
        *,
        raw: Mapping[str, Any] | None = None,
        new: bool = False,
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.side = side
        self.original = task
        self.raw = dict(raw or {})
        self.new = new

    def compose(self) -> ComposeResult:
        verb = "New task in" if self.new else "Edit task in"
        statuses = [(label, value) for value, label in STATUS_LABELS[self.side].items()]
        priorities = [(label, value) for value, label in PRIORITY_LABELS[self.side].items()]
        status = self.original.status
        priority = self.original.priority
        if status is None:
            statuses.insert(0, (f"{sanitize(self.raw.get('status', '?'))} (keep)", KEEP))
            status = KEEP
        if priority is None:
            priorities.insert(0, (f"{sanitize(self.raw.get('priority', '?'))} (keep)", KEEP))
            priority = KEEP
        with Vertical(classes="dialog wide"):
            yield Label(f"{verb} {self.side.label}", classes="dialog-title")
            yield Label("Name")
            yield Input(sanitize(self.original.name), id="name", max_length=1000, compact=True)
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Status")
                    yield Select(
                        statuses, value=status, allow_blank=False, id="status", compact=True
                    )
                with Vertical():
                    yield Label("Priority")
                    yield Select(
                        priorities, value=priority, allow_blank=False, id="priority", compact=True
                    )
                with Vertical():
                    yield Label("Due (YYYY-MM-DD)")
                    due = self.original.due_date.isoformat() if self.original.due_date else ""
                    yield Input(due, id="due_date", placeholder="none", compact=True)
            yield Label("Comments" if self.side is Side.SALESFORCE else "Details")
            yield TextArea(sanitize(self.original.details, single_line=False), id="details")
            yield Static("", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def collect(self) -> dict[str, Any]:
        """The fields that changed, in canonical form; raises ValueError on bad input."""
        name = self.query_one("#name", Input).value.strip()
        if not name:
            raise ValueError("A task needs a name.")
        values: dict[str, Any] = {
            "name": name,
            "due_date": parse_due(self.query_one("#due_date", Input).value),
            "details": self.query_one("#details", TextArea).text,
        }
        for field_name in ("status", "priority"):
            value = self.query_one(f"#{field_name}", Select).value
            if value != KEEP:
                values[field_name] = value
        if self.new:
            return values
        return {k: v for k, v in values.items() if self.original.get(k) != v}

    def action_save(self) -> None:
        try:
            changes = self.collect()
        except ValueError as error:
            self.query_one("#error", Static).update(Text(str(error), style="bold red"))
            return
        self.dismiss(changes)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()


class ValueDialog(ModalScreen[Any]):
    """Type one field's value (the conflict screen's `e`). Dismisses with the canonical value,
    or the sentinel `CANCELLED`."""

    CANCELLED = object()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="value_cancel")
    ]

    def __init__(self, field_name: str, current: Any) -> None:
        super().__init__(classes="dialog-screen")
        self.field_name = field_name
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Value for {self.field_name}", classes="dialog-title")
            if self.field_name == "status":
                yield Select(
                    [("open", STATUS_OPEN), ("complete", STATUS_COMPLETE)],
                    value=self.current
                    if self.current in (STATUS_OPEN, STATUS_COMPLETE)
                    else STATUS_OPEN,
                    allow_blank=False,
                    id="value",
                    compact=True,
                )
            elif self.field_name == "priority":
                yield Select(
                    [("normal", PRIORITY_NORMAL), ("high", PRIORITY_HIGH)],
                    value=self.current
                    if self.current in (PRIORITY_NORMAL, PRIORITY_HIGH)
                    else PRIORITY_NORMAL,
                    allow_blank=False,
                    id="value",
                    compact=True,
                )
            elif self.field_name == "details":
                yield TextArea(sanitize(self.current, single_line=False), id="value")
            else:
                shown = self.current.isoformat() if isinstance(self.current, date) else self.current
                yield Input(sanitize(shown), id="value", compact=True)
            yield Static("", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Use this value", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#value").focus()

    def value(self) -> Any:
        widget = self.query_one("#value")
        if isinstance(widget, Select):
            return widget.value
        if isinstance(widget, TextArea):
            return widget.text
        text = widget.value if isinstance(widget, Input) else ""
        if self.field_name == "due_date":
            return parse_due(text)
        if not text.strip():
            raise ValueError("A task needs a name.")
        return text.strip()

    def _ok(self) -> None:
        try:
            value = self.value()
        except ValueError as error:
            self.query_one("#error", Static).update(Text(str(error), style="bold red"))
            return
        self.dismiss(value)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._ok()

    @on(Button.Pressed, "#ok")
    def _pressed_ok(self) -> None:
        self._ok()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)
