"""First run: no connection set up yet. Three lines, then the demo and the two log-ins."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Button, Static

from sync.model import Side
from tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

WELCOME_LINES = (
    "reminder-sync keeps your reminder tasks the same in Sales Connect and Salesforce.",
    "It syncs both ways in the background and shows both lists side by side.",
    "When the same task changed on both sides, you decide, from the keyboard.",
)


class WelcomeScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "demo", "Try the demo", id="welcome_demo"),
        Binding("f", "login('salesforce')", "Log in to Salesforce", id="welcome_login_sf"),
        Binding("c", "login('salesconnect')", "Log in to Sales Connect", id="welcome_login_sc"),
    ]

    def __init__(self) -> None:
        super().__init__(id="welcome")

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="welcome-box"):
            yield Static(Text("Welcome to reminder-sync", style="bold"), classes="dialog-title")
            for line in WELCOME_LINES:
                yield Static(line)
            yield Static("")
            yield Button("Try the demo (d): no account needed", id="demo", variant="primary")
            yield Button("Log in to Salesforce (f)", id="login-salesforce")
            yield Button("Log in to Sales Connect (c)", id="login-salesconnect")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#demo", Button).focus()
        self._ready = True
        self.refresh_from_engine()

    def refresh_from_engine(self, *, rows: bool = True, keys: frozenset[str] | None = None) -> None:
        """Show which side is connected; once both are, make way for the dashboard."""
        if not getattr(self, "_ready", False):
            return
        connections = self.rs_app.engine_status().connections
        for side in (Side.SALESFORCE, Side.SALESCONNECT):
            button = self.query_one(f"#login-{side.value}", Button)
            key = "f" if side is Side.SALESFORCE else "c"
            if connections.get(side.value):
                button.label = f"{side.label}: connected ✓"
                button.disabled = True
            else:
                button.label = f"Log in to {side.label} ({key})"
        if all(connections.values()) and self.is_current:
            self.dismiss()

    def on_screen_resume(self) -> None:
        self.refresh_from_engine()

    @on(Button.Pressed, "#demo")
    def action_demo(self) -> None:
        self.app.exit("demo")

    @on(Button.Pressed, "#login-salesforce")
    def _sf(self) -> None:
        self.action_login("salesforce")

    @on(Button.Pressed, "#login-salesconnect")
    def _sc(self) -> None:
        self.action_login("salesconnect")

    def action_login(self, side: str) -> None:
        self.rs_app.log_in(Side(side))
