"""The dashboard: Sales Connect and Salesforce side by side, one row per link.

The table always shows what `engine.rows()` says, filtered by the view (Command Center: due
today or tomorrow in the configured time zone; All) and the `/` text filter, applied as a keyed
diff. The engine is read once per refresh (the app coalesces its events); switching the view,
filtering and resizing work from the rows already held (`RowIndex`), and only rows that changed
are rendered again. ←/→ choose the side that e/x/a/d act on.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Input

from sync.dashboard import ids_of_key
from sync.model import STATUS_COMPLETE, STATUS_OPEN, Side, Task
from tui.widgets.key_bar import KeyBar
from tui.widgets.line import Line
from tui.widgets.row_index import RowIndex
from tui.widgets.status_bar import StatusBar
from tui.widgets.task_rows import Layout, sf_priority, sf_status, state_of
from tui.widgets.task_table import RowView, TaskTable
from tui.widgets.text import plain

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

COMMAND_CENTER = "Command Center"
ALL = "All"
SHOW_PAUSE = 0.001  # not 0: what is due meanwhile (a key, a timer) goes first


class SideBySideTable(TaskTable):
    """The dashboard's table: ←/→ pick a side instead of scrolling sideways."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "screen.open", "Open", id="open", tooltip="Open the task or conflict"),
        Binding(
            "left",
            "screen.focus_side('salesconnect')",
            "Sales Connect side",
            id="side_salesconnect",
            show=False,
        ),
        Binding(
            "right",
            "screen.focus_side('salesforce')",
            "Salesforce side",
            id="side_salesforce",
            show=False,
        ),
    ]


class DashboardScreen(Screen):
    """Both task lists, side by side, with the status line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sync_now", "Sync", id="sync_now", tooltip="Sync now (queues one more run)"),
        Binding("n", "next_conflict", "Next", id="next_conflict", tooltip="Next conflict"),
        Binding(
            "p", "previous_conflict", "Prev", id="previous_conflict", tooltip="Previous conflict"
        ),
        Binding("e", "edit", "Edit", id="edit", tooltip="Edit the task on the focused side"),
        Binding("x", "toggle_complete", "Done", id="toggle_complete", tooltip="Complete/reopen"),
        Binding("a", "add", "Add", id="add", tooltip="Add a task on the focused side"),
        Binding("d", "delete", "Del", id="delete", tooltip="Delete the task on the focused side"),
        Binding("v", "toggle_view", "View", id="toggle_view", tooltip="Command Center / All"),
        Binding("slash", "filter", "Filter", id="filter", tooltip="Filter by text"),
        Binding("escape", "clear_filter", "Clear filter", id="clear_filter", show=False),
    ]

    view: reactive[str] = reactive(COMMAND_CENTER)
    side: reactive[Side] = reactive(Side.SALESCONNECT)
    filter_text: reactive[str] = reactive("")

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self._index = RowIndex()
        self._shown_count = 0
        self._layout: Layout | None = None
        self._composed = False  # set in on_mount (is_mounted is still False there)
        self._unshown = False  # the table lags the rows taken from the engine
        self._show_pending = False  # ... and a loop turn from now shows them
        self.rows_shown = False  # the engine's rows have been put in the table once
        # Changes that came while another screen was on top (applied when we are back):
        # `_stale_keys` None means any row may have changed.
        self._stale = False
        self._stale_keys: set[str] | None = set()

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Line(id="title-bar")
        yield Input(
            placeholder="filter: type to match names and comments, enter to keep",
            id="filter",
            compact=True,
        )
        yield SideBySideTable(id="tasks")
        yield Line(id="detail")
        yield StatusBar(id="status")
        yield KeyBar()

    def on_mount(self) -> None:
        self._composed = True
        self.query_one("#filter", Input).display = False
        self.refresh_rows()
        self.query_one(SideBySideTable).focus()

    def _visible(self) -> bool:
        """On top, or under dialogs only (they show the dashboard dimmed around them)."""
        stack = self.app.screen_stack
        if self not in stack:
            return False
        above = stack[stack.index(self) + 1 :]
        return all(isinstance(screen, ModalScreen) for screen in above)

    def on_screen_resume(self) -> None:
        if not self._composed:
            return
        if self._unshown:
            self._show_later()
        keys = self._stale_keys if self._stale else set()
        self._stale, self._stale_keys = False, set()
        # Through the app's coalesced refresh, so the screen we return to paints first; with
        # no rows to apply it still redraws the status line.
        self.rs_app.changed(rows=keys is None, keys=keys or ())

    def on_resize(self) -> None:
        self.show_rows()  # a new width may mean a new layout; the rows are the same

    # -- data ----------------------------------------------------------------------------------

    @property
    def table(self) -> SideBySideTable:
        return self.query_one(SideBySideTable)

    @property
    def _rows_by_key(self) -> dict[str, Any]:
        """Every row the engine gave on the last refresh, by key (shown or not)."""
        return self._index.rows

    def refresh_from_engine(self, *, rows: bool = True, keys: frozenset[str] | None = None) -> None:
        """The app's refresh: `keys` are the rows the engine said changed (None: any row)."""
        if not self._visible():
            # Hidden by another screen: remember what changed; work it in on return.
            if rows:
                self._stale = True
                if keys is None:
                    self._stale_keys = None
                elif self._stale_keys is not None:
                    self._stale_keys |= keys
            return
        if rows:
            self.refresh_rows(keys, show_later=True)
        else:
            self.refresh_status()

    def refresh_rows(self, keys: frozenset[str] | None = None, *, show_later: bool = False) -> None:
        """Re-read the rows from the engine (once) and apply the difference to the table.

        `show_later`: the table shows them a loop turn later. Taking an import's ~800 new rows
        and showing them are each ~5-15 ms: in one loop step, with an engine step or a paint
        beside them, the loop stalls past 50 ms; apart, a key or a timer runs in between."""
        if not self._composed:
            return
        self._index.update(self.rs_app.engine.rows_so_far(), keys)
        if show_later:
            self._show_later()
        else:
            self.show_rows()

    def _show_later(self) -> None:
        self._unshown = True
        if not self._show_pending:
            self._show_pending = True
            asyncio.get_running_loop().call_later(SHOW_PAUSE, self._show_taken_rows)

    def _show_taken_rows(self) -> None:
        self._show_pending = False
        if not (self._unshown and self.is_attached and self._visible()):
            return  # hidden meanwhile: shown when the screen is back
        with contextlib.suppress(NoMatches):  # its widgets are gone: the app is closing
            self.show_rows()

    def show_rows(self) -> None:
        """Show the rows held for the current view, filter and width, as a keyed diff."""
        if not self._composed:
            return
        table = self.table
        width = table.size.width or self.app.size.width
        layout = Layout.for_width(width)
        if layout != self._layout:
            self._layout = layout
            table.set_columns(layout.columns(self.side))
        self._index.set_basis(layout, self.rs_app.today())
        shown = self._index.visible(
            command_center=self.view == COMMAND_CENTER, needle=self.filter_text
        )
        before = table.cursor_key
        table.show(shown)
        if before is not None and table.index_of(before) is None:
            self._follow(before, shown)
        self._shown_count = len(shown)
        self.rows_shown, self._unshown = True, False
        self.refresh_title()
        self.refresh_status()
        self.refresh_detail()

    def _follow(self, gone: str, shown: list[RowView]) -> None:
        """The cursor's row left; if its task is on another row now (a new link replaced its
        unlinked row), the cursor goes there instead of staying at the old position."""
        sc_id, sf_id = ids_of_key(gone)
        for row in shown:
            row_sc, row_sf = ids_of_key(row.key)
            if (sc_id and row_sc == sc_id) or (sf_id and row_sf == sf_id):
                self.table.move_to_key(row.key)
                return

    def refresh_title(self) -> None:
        title = Text()
        title.append(" reminder-sync ", "bold reverse")
        title.append(f"  {self.view}", "bold")
        other = ALL if self.view == COMMAND_CENTER else COMMAND_CENTER
        title.append(f"  (v: {other})", "dim")
        if self.view == COMMAND_CENTER:
            today = self.rs_app.today()
            title.append(f"  due today & tomorrow · {today:%a %d %b}", "dim")
        if self.rs_app.demo_label:
            title.append(f"  {self.rs_app.demo_label}", "italic magenta")
        self.query_one("#title-bar", Line).show_text(title)

    def refresh_status(self) -> None:
        self.query_one(StatusBar).show(
            self.rs_app.status_view(
                shown=self._shown_count,
                total_rows=len(self._rows_by_key),
                view=self.view,
                filter_text=self.filter_text,
            ),
            self.rs_app.time_zone(),
        )

    def refresh_detail(self) -> None:
        row = self.current_row()
        detail = Text(no_wrap=True, overflow="ellipsis")
        if row is None:
            if self._shown_count == 0:
                detail.append(self._empty_hint(), "dim")
        else:
            for side, task in ((Side.SALESCONNECT, row.sc), (Side.SALESFORCE, row.sf)):
                focused = side is self.side
                detail.append("▶ " if focused else "  ", "bold")
                detail.append(f"{side.label:<14}", "bold" if focused else "dim")
                if task is None:
                    detail.append("— no task on this side", "dim")
                else:
                    detail.append_text(plain(task.fields.name, width=60))
                    detail.append("  " + describe_fields(side, task), "dim")
                detail.append("\n")
            state_word = state_of(row).replace("_", " ")
            reason = plain(row.reason or "")
            if not reason.plain.startswith(state_word):
                detail.append(f"  {state_word}", "bold")
                if reason.plain:
                    detail.append(": ")
            else:
                detail.append("  ")
            detail.append_text(reason)
        self.query_one("#detail", Line).show_text(detail)

    def _empty_hint(self) -> str:
        if self.filter_text:
            return f"  nothing matches {self.filter_text!r} (escape clears the filter)"
        if self.view == COMMAND_CENTER and self._rows_by_key:
            return "  nothing due today or tomorrow · v shows all tasks"
        return "  no tasks yet · s syncs now · a adds a task"

    def current_row(self) -> Any | None:
        key = self.table.cursor_key
        return self._rows_by_key.get(key) if key is not None else None

    @on(TaskTable.RowHighlighted)
    def _on_highlight(self, event: TaskTable.RowHighlighted) -> None:
        self.refresh_detail()

    # -- reactive changes --------------------------------------------------------------------

    def watch_view(self) -> None:
        self.show_rows()

    def watch_filter_text(self) -> None:
        self.show_rows()

    def watch_side(self, side: Side) -> None:
        if self._layout is not None and self.is_mounted:
            columns = self._layout.columns(side)
            by_key = {column.key: column for column in columns}
            self.table.set_column_label("sc_name", by_key["sc_name"].label)
            self.table.set_column_label("sf_name", by_key["sf_name"].label)
            self.refresh_detail()

    # -- actions -----------------------------------------------------------------------------

    def action_sync_now(self) -> None:
        self.rs_app.sync_now()

    def action_focus_side(self, side: str) -> None:
        self.side = Side(side)

    def action_toggle_view(self) -> None:
        self.view = ALL if self.view == COMMAND_CENTER else COMMAND_CENTER

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.table.focus()

    def _conflict_keys(self) -> list[str]:
        return [key for key in self.table.keys if state_of(self._rows_by_key[key]) == "conflict"]

    def _jump_conflict(self, step: int) -> None:
        keys = self._conflict_keys()
        if not keys:
            if self.view == COMMAND_CENTER and any(
                state_of(row) == "conflict" for row in self._rows_by_key.values()
            ):
                self.notify("The conflicts are outside Command Center: showing All.")
                self.view = ALL
                keys = self._conflict_keys()
            if not keys:
                self.notify("No conflicts. Everything that changed on both sides agrees.")
                return
        position = {key: index for index, key in enumerate(self.table.keys)}
        cursor = self.table.cursor_row
        positions = [position[key] for key in keys]
        if step > 0:
            after = [p for p in positions if p > cursor]
            target = after[0] if after else positions[0]
        else:
            before = [p for p in positions if p < cursor]
            target = before[-1] if before else positions[-1]
        self.table.move_cursor(row=target)

    def action_next_conflict(self) -> None:
        self._jump_conflict(+1)

    def action_previous_conflict(self) -> None:
        self._jump_conflict(-1)

    def action_open(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if row.conflict_id:
            self.rs_app.open_conflict(row.conflict_id)
        else:
            from tui.screens.task import TaskScreen

            self.app.push_screen(TaskScreen(row))

    def _target(self) -> tuple[Side, Any] | None:
        """The task the row actions apply to: the focused side's, or the only one there is."""
        row = self.current_row()
        if row is None:
            self.notify("No task selected.")
            return None
        task = row.sc if self.side is Side.SALESCONNECT else row.sf
        if task is not None and not task.deleted:
            return self.side, task
        other = row.sf if self.side is Side.SALESCONNECT else row.sc
        if other is not None and not other.deleted and (row.sc is None or row.sf is None):
            return other.side, other
        self.notify(f"No {self.side.label} task on this row (←/→ switch sides).")
        return None

    def action_edit(self) -> None:
        target = self._target()
        if target is None:
            return
        side, task = target
        from tui.screens.dialogs import EditTaskDialog

        def done(changes: dict | None) -> None:
            if changes:
                self.rs_app.edit_task(side, task.id, changes)

        self.app.push_screen(EditTaskDialog(side, task.fields, raw=task.raw), done)

    def action_toggle_complete(self) -> None:
        target = self._target()
        if target is None:
            return
        side, task = target
        new = STATUS_OPEN if task.fields.status == STATUS_COMPLETE else STATUS_COMPLETE
        self.rs_app.edit_task(side, task.id, {"status": new})

    def action_add(self) -> None:
        from tui.screens.dialogs import EditTaskDialog

        side = self.side
        today = self.rs_app.today()

        def done(changes: dict | None) -> None:
            if changes:
                self.rs_app.create_task(side, Task(**{**Task(name="").as_dict(), **changes}))

        self.app.push_screen(EditTaskDialog(side, Task(name="", due_date=today), new=True), done)

    def action_delete(self) -> None:
        target = self._target()
        if target is None:
            return
        side, task = target
        from tui.screens.dialogs import ConfirmDialog

        question = Text("Delete ")
        question.append_text(plain(task.fields.name, width=60, style="bold"))
        question.append(f" in {side.label}?\nThe next sync deletes its partner too.")

        def done(yes: bool | None) -> None:
            if yes:
                self.rs_app.delete_task(side, task.id)

        self.app.push_screen(ConfirmDialog(question, confirm="Delete"), done)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the filter box has focus, printable keys belong to it.
        return not (isinstance(self.focused, Input) and action != "clear_filter")


def describe_fields(side: Side, task: Any) -> str:
    """ "open · high · due 2025-03-14" in the side's own words."""
    fields = task.fields
    if side is Side.SALESFORCE:
        parts = [sf_status(task), sf_priority(task)]
    else:
        parts = [fields.status or "", fields.priority or ""]
    if fields.due_date is not None:
        parts.append(f"due {fields.due_date:%a %d %b %Y}")
    else:
        parts.append("no due date")
    if getattr(task, "deleted", False):
        parts.append("deleted")
    return " · ".join(p for p in parts if p)
