"""Settle conflicts from the keyboard: base, Sales Connect and Salesforce values field by field.

Keys (after Unison): `<` take Sales Connect, `>` take Salesforce, `e` type a value, `/` skip
to the next conflict, `A` apply this field's choice to every conflict on the same field,
`enter` save. Edit-vs-delete: `r` restore the deleted task, `d` delete the edited one too.
Saved resolutions are applied by the next run, which saving starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from sync.model import FIELDS, Choice, Conflict, ConflictKind, Resolution, Side
from tui.screens.task import FIELD_LABELS
from tui.widgets.key_bar import KeyBar
from tui.widgets.text import clip, plain, sanitize

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

CHOICE_LABEL = {
    Choice.TAKE_SALESCONNECT: "◀ Sales Connect",
    Choice.TAKE_SALESFORCE: "Salesforce ▶",
    Choice.CUSTOM: "✎ typed value",
    Choice.RESTORE: "restore",
    Choice.DELETE: "delete",
}


def show_value(value: Any, width: int = 30) -> Text:
    """The whole value (names differ at the end as often as at the start), wrapped to at most
    six lines of the column."""
    if value is None:
        return Text("—", style="dim")
    if hasattr(value, "isoformat"):
        value = value.isoformat()
    if value == "":
        return Text("(empty)", style="dim")
    return Text(clip(sanitize(value), width * 5))


class FieldTable(DataTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "screen.save", "Save", id="conflict_save")
    ]


class ConflictScreen(Screen):
    """One conflict at a time, stepping through all that wait."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("less_than_sign", "take('salesconnect')", "Take SC", id="take_salesconnect"),
        Binding("greater_than_sign", "take('salesforce')", "Take SF", id="take_salesforce"),
        Binding("e", "edit_value", "Edit value", id="conflict_edit"),
        Binding("slash", "skip", "Skip", id="conflict_skip"),
        Binding("A", "apply_all", "Apply to all", id="conflict_apply_all"),
        Binding("r", "record('restore')", "Restore", id="conflict_restore"),
        Binding("d", "record('delete')", "Delete", id="conflict_delete"),
        Binding("n", "step(1)", "Next", id="conflict_next", show=False),
        Binding("p", "step(-1)", "Prev", id="conflict_previous", show=False),
        Binding("escape,q", "close", "Back", id="conflict_back"),
    ]

    def __init__(self, conflict_id: str | None = None) -> None:
        super().__init__(id="conflict")
        self._start_id = conflict_id
        self.conflicts: list[Conflict] = []
        self.index = 0
        # conflict id -> field (or "record") -> (choice, typed value)
        self.decisions: dict[str, dict[str, tuple[Choice, Any]]] = {}
        self.saved: set[str] = set()

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="conflict-title")
        yield Static(id="conflict-help")
        yield FieldTable(id="fields", cursor_type="row", zebra_stripes=False)
        yield Static(id="conflict-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(FieldTable)
        narrow = self.app.size.width < 100
        field_width, decision_width = (8, 13) if narrow else (12, 16)
        fixed = 2 + field_width + decision_width + 2 * 6 + 4  # cell padding, scrollbar, margin
        width = max(12, (self.app.size.width - fixed) // 3)
        table.add_column("", key="mark", width=2)
        table.add_column("Field", key="field", width=field_width)
        table.add_column("Base" if narrow else "Base (last synced)", key="base", width=width)
        table.add_column("Sales Connect", key="sc", width=width)
        table.add_column("Salesforce", key="sf", width=width)
        table.add_column("Decision", key="decision", width=decision_width)
        self._value_width = width
        self.conflicts = list(self.rs_app.engine.conflicts())
        ids = [c.id for c in self.conflicts]
        if self._start_id in ids:
            self.index = ids.index(self._start_id)
        self.show_conflict()
        table.focus()

    # -- rendering ---------------------------------------------------------------------------

    @property
    def conflict(self) -> Conflict | None:
        if not self.conflicts:
            return None
        return self.conflicts[self.index % len(self.conflicts)]

    def disputed(self, conflict: Conflict) -> tuple[str, ...]:
        if conflict.kind is ConflictKind.EDIT_VS_DELETE:
            return ("record",)
        return conflict.fields or tuple(FIELDS)

    def show_conflict(self) -> None:
        conflict = self.conflict
        table = self.query_one(FieldTable)
        table.clear()
        title = Text()
        if conflict is None:
            title.append("No conflicts waiting.", "bold")
            self.query_one("#conflict-title", Static).update(title)
            self.query_one("#conflict-help", Static).update("")
            return
        title.append(f" Conflict {self.index + 1} of {len(self.conflicts)} ", "bold reverse")
        name = next((t.name for t in (conflict.sc, conflict.sf, conflict.base) if t), "")
        title.append("  ")
        title.append_text(plain(name, width=60, style="bold"))
        if conflict.id in self.saved:
            title.append("  ✓ saved, applied by the next run", "green")
        self.query_one("#conflict-title", Static).update(title)
        help_text = Text(style="dim")
        if conflict.kind is ConflictKind.EDIT_VS_DELETE:
            deleted = conflict.deleted_side or Side.SALESFORCE
            help_text.append(
                f"Deleted in {deleted.label} but edited in {deleted.other.label} since the last "
                f"sync. r restores it in {deleted.label}; d deletes it in {deleted.other.label}."
            )
        else:
            help_text.append(
                "Changed on both sides. < takes Sales Connect, > takes Salesforce, e types a "
                "value, A applies the choice to every conflict on this field, enter saves."
            )
        if conflict.message and not conflict.message.startswith("Changed on both sides"):
            help_text.append("\n")
            help_text.append_text(plain(conflict.message))
        self.query_one("#conflict-help", Static).update(help_text)
        decided = self.decisions.get(conflict.id, {})
        disputed = self.disputed(conflict)
        width = self._value_width
        for field_name in FIELDS:
            in_dispute = field_name in disputed or conflict.kind is ConflictKind.EDIT_VS_DELETE
            table.add_row(
                Text("!", style="bold red") if in_dispute else Text(""),
                Text(FIELD_LABELS[field_name].split(" /")[0], style="bold" if in_dispute else ""),
                show_value(conflict.base.get(field_name) if conflict.base else None, width),
                self._side_value(conflict.sc, field_name, width, decided, Side.SALESCONNECT),
                self._side_value(conflict.sf, field_name, width, decided, Side.SALESFORCE),
                self._decision_text(decided.get(field_name) or decided.get("record")),
                key=field_name,
                height=None,
            )
        self._first_open_field()
        self.refresh_detail()
        self.refresh_bindings()

    def _side_value(
        self, task: Any, field_name: str, width: int, decided: dict, side: Side
    ) -> Text:
        if task is None:
            return Text("(deleted)", style="italic red")
        text = show_value(task.get(field_name), width)
        choice = decided.get(field_name, (None, None))[0]
        if (choice is Choice.TAKE_SALESCONNECT and side is Side.SALESCONNECT) or (
            choice is Choice.TAKE_SALESFORCE and side is Side.SALESFORCE
        ):
            text.stylize("bold reverse")
        return text

    def _decision_text(self, decision: tuple[Choice, Any] | None) -> Text:
        if decision is None:
            return Text("")
        return Text(CHOICE_LABEL[decision[0]], style="bold green")

    def _first_open_field(self) -> None:
        conflict = self.conflict
        if conflict is None:
            return
        decided = self.decisions.get(conflict.id, {})
        for index, field_name in enumerate(FIELDS):
            if field_name in self.disputed(conflict) and field_name not in decided:
                self.query_one(FieldTable).move_cursor(row=index)
                return

    def current_field(self) -> str:
        table = self.query_one(FieldTable)
        return FIELDS[min(max(table.cursor_row, 0), len(FIELDS) - 1)]

    def refresh_detail(self) -> None:
        conflict = self.conflict
        detail = Text()
        if conflict is not None:
            field_name = self.current_field()
            if field_name == "details":
                for label, task in (
                    ("Sales Connect", conflict.sc),
                    ("Salesforce", conflict.sf),
                ):
                    detail.append(f"{label}: ", "bold")
                    detail.append_text(plain(task.details if task else "(deleted)", width=200))
                    detail.append("\n")
            missing = [f for f in self.disputed(conflict) if f not in self._decided(conflict)]
            if missing and conflict.kind is not ConflictKind.EDIT_VS_DELETE:
                detail.append("Still to decide: " + ", ".join(missing), "yellow")
            elif not missing:
                detail.append("All decided: enter saves.", "green")
        self.query_one("#conflict-detail", Static).update(detail)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_detail()

    def refresh_from_engine(self, *, rows: bool = True, keys: frozenset[str] | None = None) -> None:
        """A run finished or conflicts changed: keep our place, drop what was settled."""
        if not rows:
            return
        current = self.conflict.id if self.conflict else None
        fresh = list(self.rs_app.engine.conflicts())
        if [c.id for c in fresh] == [c.id for c in self.conflicts]:
            return
        self.conflicts = fresh
        ids = [c.id for c in fresh]
        self.index = ids.index(current) if current in ids else 0
        self.show_conflict()

    # -- decisions ---------------------------------------------------------------------------

    def _decided(self, conflict: Conflict) -> dict[str, tuple[Choice, Any]]:
        return self.decisions.setdefault(conflict.id, {})

    def _decide(self, field_name: str, choice: Choice, value: Any = None) -> None:
        conflict = self.conflict
        if conflict is None:
            return
        if field_name not in self.disputed(conflict):
            self.notify(f"{field_name} is not in dispute: it syncs on its own.")
            return
        self._decided(conflict)[field_name] = (choice, value)
        row = self.query_one(FieldTable).cursor_row
        self.show_conflict()
        self.query_one(FieldTable).move_cursor(row=row)
        self._first_open_field()

    def action_take(self, side: str) -> None:
        conflict = self.conflict
        if conflict is None:
            return
        if conflict.kind is ConflictKind.EDIT_VS_DELETE:
            # Taking the side that still has the task restores it; the deleted side, deletes.
            deleted = conflict.deleted_side
            self.action_record("delete" if Side(side) is deleted else "restore")
            return
        choice = Choice.TAKE_SALESCONNECT if side == "salesconnect" else Choice.TAKE_SALESFORCE
        self._decide(self.current_field(), choice)

    def action_record(self, what: str) -> None:
        conflict = self.conflict
        if conflict is None:
            return
        if conflict.kind is not ConflictKind.EDIT_VS_DELETE:
            self.notify("Restore and delete are for a task deleted on one side only.")
            return
        choice = Choice.RESTORE if what == "restore" else Choice.DELETE
        self._decided(conflict)["record"] = (choice, None)
        self.show_conflict()

    def action_edit_value(self) -> None:
        conflict = self.conflict
        if conflict is None or conflict.kind is ConflictKind.EDIT_VS_DELETE:
            self.notify("Nothing to type here: r restores, d deletes.")
            return
        field_name = self.current_field()
        if field_name not in self.disputed(conflict):
            self.notify(f"{field_name} is not in dispute: it syncs on its own.")
            return
        from tui.screens.dialogs import ValueDialog

        current = (conflict.sc or conflict.sf or conflict.base).get(field_name)

        def done(value: Any) -> None:
            if value is not ValueDialog.CANCELLED:
                self._decide(field_name, Choice.CUSTOM, value)

        self.app.push_screen(ValueDialog(field_name, current), done)

    def action_skip(self) -> None:
        self.action_step(1)

    def action_step(self, step: int) -> None:
        if not self.conflicts:
            return
        self.index = (self.index + step) % len(self.conflicts)
        self.show_conflict()

    def resolution_for(self, conflict: Conflict) -> Resolution | None:
        decided = self.decisions.get(conflict.id, {})
        disputed = self.disputed(conflict)
        if any(field_name not in decided for field_name in disputed):
            return None
        choices = {name: decided[name][0] for name in disputed}
        values = {name: decided[name][1] for name in disputed if decided[name][0] is Choice.CUSTOM}
        return Resolution(conflict.id, choices, values)

    def action_apply_all(self) -> None:
        conflict = self.conflict
        if conflict is None or conflict.kind is ConflictKind.EDIT_VS_DELETE:
            self.notify("Apply to all works on a field's choice (< or >).")
            return
        field_name = self.current_field()
        decision = self._decided(conflict).get(field_name)
        if decision is None or decision[0] not in (
            Choice.TAKE_SALESCONNECT,
            Choice.TAKE_SALESFORCE,
        ):
            self.notify(f"First take a side for {field_name} with < or >.")
            return
        alike = [
            other
            for other in self.conflicts
            if other.kind is not ConflictKind.EDIT_VS_DELETE and field_name in self.disputed(other)
        ]
        for other in alike:
            self._decided(other)[field_name] = decision
        ready = [r for r in (self.resolution_for(c) for c in alike) if r is not None]
        self.notify(
            f"{CHOICE_LABEL[decision[0]]} for {field_name} on {len(alike)} conflict(s); "
            f"{len(ready)} fully decided and saved.",
            markup=False,
        )
        self._save(ready)
        self.show_conflict()

    def action_save(self) -> None:
        conflict = self.conflict
        if conflict is None:
            return
        resolution = self.resolution_for(conflict)
        if resolution is None:
            missing = [f for f in self.disputed(conflict) if f not in self._decided(conflict)]
            self.notify("Decide first: " + ", ".join(missing), severity="warning")
            return
        self._save([resolution])
        later = [c for c in self.conflicts if c.id not in self.saved]
        if later:
            self.index = self.conflicts.index(later[0])
            self.show_conflict()
        else:
            self.dismiss()

    def _save(self, resolutions: list[Resolution]) -> None:
        if not resolutions:
            return
        self.saved.update(r.conflict_id for r in resolutions)
        engine = self.rs_app.engine

        async def save_all() -> None:
            for resolution in resolutions:
                await engine.resolve(resolution.conflict_id, resolution)

        self.rs_app.run_engine_call(
            save_all,
            description="Saving the resolution",
            success=f"Saved {len(resolutions)} resolution(s); syncing to apply.",
        )

    def action_close(self) -> None:
        self.dismiss()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        conflict = self.conflict
        if conflict is None:
            return action == "close"
        edit_vs_delete = conflict.kind is ConflictKind.EDIT_VS_DELETE
        if action == "record":
            return edit_vs_delete
        if action in ("apply_all", "edit_value"):
            return not edit_vs_delete
        return True
