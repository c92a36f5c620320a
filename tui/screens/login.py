"""Logging in and out from the app.

Salesforce: the PKCE web-server flow. The screen shows the authorize URL (also for a remote
shell, where no browser opens) and waits for the loopback redirect; escape cancels the wait.
Sales Connect: client credentials (the secret goes straight to the keyring, never the state).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from sync.model import Side
from tui.widgets.text import sanitize

if TYPE_CHECKING:
    from tui.app import ReminderSyncApp

DEFAULT_SF_LOGIN = "https://login.salesforce.com"


class Accounts:
    """What the screens need to connect and disconnect; wraps `sync.connections`.

    After a change the engine re-reads its connections, so the next run uses them.
    """

    def __init__(self, engine: Any, secrets: Any, *, redirect_port: int | None = None) -> None:
        self.engine = engine
        self.secrets = secrets
        # None: the flow's default port (the connected app's callback URL names it); 0: any.
        self.redirect_port = redirect_port

    def describe(self, side: Side) -> str:
        store = getattr(self.engine, "store", None)
        info = store.connection(side) if store is not None else None
        if not info:
            return ""
        parts = [info.get("username") or info.get("user_id") or "", info.get("base_url") or ""]
        return sanitize(" · ".join(p for p in parts if p))

    async def login_salesforce(
        self, *, login_url: str, client_id: str, announce: Callable[[str], None]
    ) -> str:
        from sync.config import check_url
        from sync.connections import connect_salesforce

        check_url(login_url, what="login URL")
        async with self._store() as store:
            info = await connect_salesforce(
                self.secrets,
                login_url=login_url,
                client_id=client_id,
                auth="pkce",
                announce=announce,
                redirect_port=self.redirect_port,
                **store,
            )
        await self._reload()
        return str(info)

    async def login_salesconnect(
        self, *, base_url: str, client_id: str, token_url: str | None, secret: str
    ) -> str:
        from sync.config import check_url
        from sync.connections import connect_salesconnect

        check_url(base_url, what="API root")
        if token_url:
            check_url(token_url, what="token URL")
        async with self._store() as store:
            info = await connect_salesconnect(
                self.secrets,
                base_url=base_url,
                client_id=client_id,
                token_url=token_url or None,
                secret=secret,
                **store,
            )
        await self._reload()
        return str(info)

    async def logout(self, side: Side) -> None:
        from sync.connections import logout

        async with self._store() as store:
            await logout(self.secrets, [side.value], **store)
        await self._reload()

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[dict[str, Any]]:
        """The running engine holds the state file's lock: the connect functions get its open
        store, while no save of a run is in progress (an engine without one: none)."""
        changing = getattr(self.engine, "changing_store", None)
        if changing is None:
            store = getattr(self.engine, "store", None)
            yield {} if store is None else {"store": store}
            return
        async with changing() as store:
            yield {"store": store}

    async def _reload(self) -> None:
        reload = getattr(self.engine, "reload_connections", None)
        if reload is not None:
            await reload()


class LoginScreen(ModalScreen[bool]):
    """Log in to one side. Dismisses True once connected."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="login_cancel")
    ]

    def __init__(self, side: Side) -> None:
        super().__init__(classes="dialog-screen")
        self.side = side
        self._worker: Worker | None = None
        self.authorize_url = ""

    @property
    def rs_app(self) -> ReminderSyncApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Log in to {self.side.label}", classes="dialog-title")
            if self.side is Side.SALESFORCE:
                yield Label("Login URL (your My Domain, or login.salesforce.com)")
                yield Input(DEFAULT_SF_LOGIN, id="login_url", compact=True)
                yield Label("Connected app consumer key (client id)")
                yield Input(id="client_id", compact=True)
            else:
                yield Label("API root")
                yield Input(id="base_url", placeholder="https://api.toutapp.com/v1", compact=True)
                yield Label("Client id")
                yield Input(id="client_id", compact=True)
                yield Label("Client secret (kept in the keyring only)")
                yield Input(id="secret", password=True, compact=True)
                yield Label("Token URL (optional)")
                yield Input(
                    id="token_url", placeholder="default: the contract's /oauth/token", compact=True
                )
            yield Static(id="login-url")
            with Horizontal(classes="buttons"):
                yield Button("Log in", id="go", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _say(self, text: Text | str) -> None:
        self.query_one("#login-url", Static).update(text)

    def show_url(self, url: str) -> None:
        self.authorize_url = url
        text = Text()
        text.append("Open this URL in a browser to log in; waiting for the redirect…\n", "bold")
        text.append(sanitize(url), "underline")
        text.append("\nescape cancels.", "dim")
        self._say(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        accounts = self.rs_app.accounts
        if accounts is None:
            self._say(Text("Logging in is not available here.", style="red"))
            return
        if self._worker is not None and self._worker.state is WorkerState.RUNNING:
            return
        if self.side is Side.SALESFORCE:
            login_url, client_id = self._value("login_url"), self._value("client_id")
            if not client_id:
                self._say(Text("Enter the connected app's consumer key.", style="red"))
                return

            async def work() -> str:
                return await accounts.login_salesforce(
                    login_url=login_url, client_id=client_id, announce=self.show_url
                )
        else:
            base_url, client_id = self._value("base_url"), self._value("client_id")
            secret, token_url = self._value("secret"), self._value("token_url")
            if not (base_url and client_id and secret):
                self._say(Text("API root, client id and client secret are needed.", style="red"))
                return

            async def work() -> str:
                return await accounts.login_salesconnect(
                    base_url=base_url, client_id=client_id, token_url=token_url, secret=secret
                )

        self._say(Text("Connecting…", style="dim"))
        self._worker = self.run_worker(work(), exit_on_error=False, group="login")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker:
            return
        if event.state is WorkerState.SUCCESS:
            self.app.notify(f"Connected to {self.side.label} as {sanitize(event.worker.result)}.")
            self.dismiss(True)
            self.app.call_later(self.rs_app.refresh_screens)
        elif event.state is WorkerState.ERROR:
            error = event.worker.error
            message = sanitize(getattr(error, "message", None) or str(error))
            self._say(Text(f"Could not log in: {message}", style="bold red"))
        event.stop()  # handled here; the App's handler is for the engine's workers

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self._worker is not None and self._worker.state is WorkerState.RUNNING:
            self._worker.cancel()  # closes the loopback listener of the PKCE flow
        self.dismiss(False)
