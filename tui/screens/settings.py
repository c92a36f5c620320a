"""Settings: the sync switch, both connections, poll interval, conflict policy, time zone.

The checkbox acts at once (turning it on records `enabled_at` and starts the first sync); the
other fields are saved together with ctrl+s, after the engine validated them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from sync.model import FIELDS, Policy, Side
from tui.screens.task import FIELD_LABELS
from tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

POLICY_LABELS = (
    ("ask me (manual)", Policy.MANUAL),
    ("Sales Connect wins", Policy.SALESCONNECT_WINS),
    ("Salesforce wins", Policy.SALESFORCE_WINS),
)
ENABLE_LABEL = "Sync reminder tasks with Salesforce"


class SettingsScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="settings_save", priority=True),
        Binding("escape", "close", "Back", id="settings_back"),
    ]

    def __init__(self) -> None:
        super().__init__(id="settings")

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        settings = self.rs_app.engine.settings
        with VerticalScroll(id="settings-body"):
            yield Label("Settings", classes="screen-title")
            yield Checkbox(ENABLE_LABEL, value=bool(settings.enabled), id="enabled", compact=True)
            yield Static(id="enabled-note", classes="note")
            yield Label("Connections", classes="section")
            for side in (Side.SALESCONNECT, Side.SALESFORCE):
                with Horizontal(classes="connection"):
                    yield Static(id=f"conn-{side.value}", classes="conn-state")
                    yield Button("Log in", id=f"login-{side.value}", classes="small", compact=True)
                    yield Button(
                        "Log out", id=f"logout-{side.value}", classes="small", compact=True
                    )
            yield Label("Schedule", classes="section")
            with Horizontal(classes="field"):
                yield Label("Poll every (seconds)", classes="field-label")
                yield Input(
                    str(settings.poll_interval), id="poll_interval", type="integer", compact=True
                )
            with Horizontal(classes="field"):
                yield Label("Time zone for “today”", classes="field-label")
                yield Input(
                    settings.timezone,
                    id="timezone",
                    placeholder="local or Europe/Paris",
                    compact=True,
                )
            yield Label("When the same field changed on both sides", classes="section")
            for field_name in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(FIELD_LABELS[field_name].split(" /")[0], classes="field-label")
                    yield Select(
                        POLICY_LABELS,
                        value=Policy(settings.policy(field_name)),
                        allow_blank=False,
                        id=f"policy-{field_name}",
                        compact=True,
                    )
            yield Static(id="settings-error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Back (esc)", id="back", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_from_engine()
        self.query_one("#enabled", Checkbox).focus()

    def refresh_from_engine(self, *, rows: bool = True, keys: frozenset[str] | None = None) -> None:
        engine = self.rs_app.engine
        settings = engine.settings
        status = self.rs_app.engine_status()
        checkbox = self.query_one("#enabled", Checkbox)
        if checkbox.value != bool(settings.enabled):
            with checkbox.prevent(Checkbox.Changed):
                checkbox.value = bool(settings.enabled)
        note = Text(style="dim")
        if settings.enabled and settings.enabled_at:
            since = settings.enabled_at.astimezone(self.rs_app.time_zone())
            note.append(f"On since {since:%Y-%m-%d %H:%M}. ")
            note.append("Only Sales Connect tasks created after that are sent to Salesforce.")
        else:
            note.append(
                "Off. Turning it on imports Salesforce tasks changed in the last 24 hours and "
                "keeps both sides in sync in the background."
            )
        self.query_one("#enabled-note", Static).update(note)
        connections = getattr(status, "connections", {}) or {}
        for side in (Side.SALESCONNECT, Side.SALESFORCE):
            connected = bool(connections.get(side.value) or connections.get(side))
            text = Text()
            text.append(f"{side.label:<14}", "bold")
            detail = self._connection_detail(side)
            if connected:
                text.append("● connected", "green")
                if detail:
                    text.append(f"  {detail}", "dim")
            else:
                text.append("○ not connected", "dim")
            self.query_one(f"#conn-{side.value}", Static).update(text)
            self.query_one(f"#login-{side.value}", Button).display = not connected
            self.query_one(f"#logout-{side.value}", Button).display = connected

    def _connection_detail(self, side: Side) -> str:
        accounts = self.rs_app.accounts
        if accounts is None:
            return ""
        try:
            return accounts.describe(side)
        except Exception:
            return ""

    # -- the switch acts at once -------------------------------------------------------------

    @on(Checkbox.Changed, "#enabled")
    def _toggle(self, event: Checkbox.Changed) -> None:
        on_now = event.value
        engine = self.rs_app.engine
        self.rs_app.run_engine_call(
            lambda: engine.set_enabled(on_now),
            description="Turning sync " + ("on" if on_now else "off"),
            success="Sync is on: the first sync starts now." if on_now else "Sync is off.",
            then_sync=False,
        )

    # -- connections -------------------------------------------------------------------------

    @on(Button.Pressed, ".small")
    def _connection_button(self, event: Button.Pressed) -> None:
        action, side_name = (event.button.id or "").split("-", 1)
        side = Side(side_name)
        if action == "login":
            self.rs_app.log_in(side)
        else:
            self.rs_app.log_out(side)

    # -- the rest is saved together ------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        raw_interval = self.query_one("#poll_interval", Input).value.strip()
        try:
            interval = int(raw_interval)
        except ValueError:
            raise ValueError(
                f"poll interval {raw_interval!r} is not a whole number of seconds"
            ) from None
        policies = {
            name: Policy(self.query_one(f"#policy-{name}", Select).value) for name in FIELDS
        }
        timezone = self.query_one("#timezone", Input).value.strip() or "local"
        changes = {"poll_interval": interval, "timezone": timezone, "policies": policies}
        self.rs_app.engine.settings.replace(**changes)  # validates; ValueError says what
        return changes

    def action_save(self) -> None:
        error = self.query_one("#settings-error", Static)
        try:
            changes = self.collect()
        except ValueError as exc:
            error.update(Text(str(exc), style="bold red"))
            return
        error.update("")
        engine = self.rs_app.engine
        self.rs_app.run_engine_call(
            lambda: engine.update_settings(**changes),
            description="Saving settings",
            success="Settings saved.",
            then_sync=False,
        )

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#back")
    def action_close(self) -> None:
        self.dismiss()
