"""ReminderSyncApp: the dashboard App. It owns the engine worker and the bridge.

Rules (DESIGN, "Textual rules that bite"): the long-lived engine worker lives on the App, never
on a Screen, with `exit_on_error=False` and one `Worker.StateChanged` handler that turns any
worker error into a notification; engine events arrive as messages (see `tui/bridge.py`) and
are handled here, on the UI's loop, which then refreshes the screens.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from sync.model import Side, Task
from tui import messages
from tui.bridge import EngineBridge
from tui.heap import RUN_GC_THRESHOLD, Heap
from tui.widgets.status_bar import StatusView
from tui.widgets.text import sanitize

Clock = Callable[[], datetime]

# Engine events arrive in bursts (a 10,000-task run reports hundreds); the screens re-read the
# engine at most this often, so the UI loop stays free for keys and painting. A refresh that
# took long (a big state) spaces the next ones further: the UI spends at most about a quarter
# of its time refreshing, and never waits more than REFRESH_MAX_WAIT for news.
REFRESH_INTERVAL = 0.2
REFRESH_MAX_WAIT = 2.0
# Rows the engine builds again per slice after a burst (about 40 us each): ~4 ms a slice.
ROWS_PER_STEP = 100
SLICE_PAUSE = 0.005
SLICES_BEFORE_SHOWING = 8  # then the screens show the rows built so far (~800 rows a refresh)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def error_text(error: BaseException | None) -> str:
    """One safe line for a notification (ServiceError messages never hold a secret)."""
    if error is None:
        return "unknown error"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return sanitize(message)


class ScreenCommands(Provider):
    """Command palette: every key the current screen offers, by its description."""

    def _commands(self) -> Iterable[tuple[str, str, Callable[[], Any]]]:
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            # Ours all carry an id (remappable); widgets' own navigation keys do not.
            if binding.id is None or not binding.description or not active.enabled:
                continue
            if binding.action in seen or binding.action.startswith("app.command_palette"):
                continue
            seen.add(binding.action)
            shown_key = self.app.get_key_display(binding) or key
            callback = partial(self.app.run_action, binding.action, active.node)
            yield binding.tooltip or binding.description, f"key: {shown_key}", callback

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class ReminderSyncApp(App[str | None]):
    """The terminal app. `engine` follows the Engine interface of `sync/engine.py`."""

    CSS_PATH = "app.tcss"
    TITLE = "reminder-sync"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("comma", "settings", "Settings", id="settings", tooltip="Settings"),
        Binding("l", "activity", "Log", id="activity", tooltip="Activity log"),
        Binding("question_mark", "help", "Help", id="help", tooltip="Keys and what they do"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit (the sync stops with the app)"),
    ]

    def __init__(
        self,
        engine: Any,
        *,
        clock: Clock | None = None,
        accounts: Any | None = None,
        run_engine: bool = True,
        demo_label: str = "",
        demo_controls: Any | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.clock: Clock = clock or _utc_now
        self.accounts = accounts
        self.demo_label = demo_label
        self.demo_controls = demo_controls
        self._run_engine = run_engine
        self._bridge = EngineBridge(engine, self)
        self._engine_worker: Worker | None = None
        self.sync_running = False
        self.sync_queued = False
        self.progress: tuple[str, int, int] = ("", 0, 0)
        self.runs_seen = 0
        self._declined_guard: str | None = None
        self._asking_about_guard = False
        # One engine.status() per refresh, shared by every screen; None = read it again.
        self._status: Any | None = None
        # What the engine said changed since the screens last looked (see `_flush`).
        self._dirty_keys: set[str] = set()
        self._dirty_rows = False
        self._dirty_status = False
        self._flush_pending = False
        self._next_flush = 0.0  # time.monotonic() before which a burst waits
        self._heap = Heap()
        engine.run_gc_threshold = RUN_GC_THRESHOLD  # the heap is frozen here (tui/heap.py)
        self._slices = 0  # row slices since the screens last saw the rows

    # -- lifecycle ---------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        from tui.screens.dashboard import DashboardScreen

        return DashboardScreen()

    def on_mount(self) -> None:
        self._bridge.start()
        self.set_interval(60, self._tidy_heap, name="tidy the heap")
        if self._run_engine:
            self.start_engine()
        if self.needs_welcome():
            from tui.screens.welcome import WelcomeScreen

            self.push_screen(WelcomeScreen())

    def on_unmount(self) -> None:
        self._bridge.stop()
        self._heap.release()

    def _tidy_heap(self) -> None:
        self._heap.tidy(busy=self.sync_running)

    def needs_welcome(self) -> bool:
        connections = getattr(self.engine_status(), "connections", None) or {}
        return not any(connections.values())

    def start_engine(self) -> None:
        """Start the background sync loop (once); it lives as long as the App."""
        if self._engine_worker is not None and self._engine_worker.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        ):
            return
        self._engine_worker = self.run_worker(
            self.engine.run_forever(),
            name="engine",
            group="engine",
            description="background sync",
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR:
            return
        if worker.group == "engine":
            self.notify(
                f"The background sync stopped: {error_text(worker.error)}. "
                "It restarts in 30 seconds; s syncs now.",
                title="Sync stopped",
                severity="error",
                markup=False,
            )
            self.set_timer(30, self.start_engine)
        else:
            self.notify(
                f"{worker.description or 'That'} failed: {error_text(worker.error)}",
                severity="error",
                markup=False,
                timeout=10,
            )
        self.refresh_screens()

    # -- engine messages (on the UI loop) ----------------------------------------------------
    #
    # Handlers only note what changed; `_flush` applies it at most every REFRESH_INTERVAL, so a
    # burst of events costs one engine.rows() and one engine.status(), and a progress event
    # none at all (the status line shows the progress the app already holds).

    def on_sync_started(self, message: messages.SyncStarted) -> None:
        self.sync_running = True
        self.sync_queued = False
        self.progress = ("starting", 0, 0)
        self.changed(status=True)

    def on_sync_progress(self, message: messages.SyncProgress) -> None:
        event = message.event
        self.progress = (event.phase, event.done, event.total)
        self.changed()

    def on_tasks_changed(self, message: messages.TasksChanged) -> None:
        # Rows only: the counts in the status line are re-read when the run ends.
        self.changed(keys=message.event.keys)

    def on_conflict_found(self, message: messages.ConflictFound) -> None:
        self.changed(rows=True, status=True)

    def on_status_changed(self, message: messages.StatusChanged) -> None:
        self.changed(status=True)

    def on_sync_finished(self, message: messages.SyncFinished) -> None:
        self.sync_running = False
        self.runs_seen += 1
        summary = message.event.summary
        if summary.new_conflicts:
            self.notify(
                f"{summary.new_conflicts} new conflict(s): n jumps to the next one.",
                severity="warning",
            )
        if getattr(summary, "guard", None) is not None:
            self.ask_about_held_deletes(sanitize(summary.message or summary.guard.message))
        self._run_ended()

    def ask_about_held_deletes(self, message: str) -> None:
        """The mass-delete guard stopped a run: ask once whether the deletes are real.

        A "no" is remembered for the same message, so the poll does not ask again every few
        minutes; the rows keep showing the held deletes and `s` runs again without deleting.
        """
        if message == self._declined_guard or self._asking_about_guard:
            self.notify(message, severity="warning", markup=False)
            return
        from tui.screens.dialogs import ConfirmDialog

        def done(yes: bool | None) -> None:
            self._asking_about_guard = False
            if not yes:
                self._declined_guard = message
                self.notify("Nothing was deleted.", markup=False)
                return
            self._declined_guard = None
            self.run_engine_call(
                lambda: self.engine.run_once(allow_mass_delete=True, reason="deletes confirmed"),
                description="Deleting the confirmed tasks",
                then_sync=False,
            )

        self._asking_about_guard = True
        question = Text(message)
        question.append("\n\nAre these deletes real? Delete them on the other side too?")
        self.push_screen(ConfirmDialog(question, confirm="Delete them"), done)

    def on_sync_failed(self, message: messages.SyncFailed) -> None:
        self.sync_running = False
        event = message.event
        text = f"{event.category}: {sanitize(event.message)}"
        if event.retry_at:
            text += f" (retry after {event.retry_at.astimezone(self.time_zone()):%H:%M})"
        self.notify(text, title="Sync failed", severity="error", markup=False, timeout=10)
        self._run_ended()

    def _run_ended(self) -> None:
        """Show the end of a run at once (refreshes were spaced out while it ran)."""
        self._dirty_rows = self._dirty_status = True
        self._next_flush = 0.0
        self._flush()

    def changed(
        self, *, rows: bool = False, keys: Iterable[str] = (), status: bool = False
    ) -> None:
        """Note what the engine changed; the screens see it on the next flush.

        `keys` are the dashboard rows that changed (a keyed diff); `rows` asks for every row
        to be compared; `status` re-reads engine.status(). With none of them, only the status
        line is redrawn (from the progress the app holds).
        """
        self._dirty_rows |= rows
        self._dirty_keys.update(keys)
        self._dirty_status |= status
        if self._flush_pending:
            return
        self._flush_pending = True
        # The first event after a quiet spell is shown at once; the rest of a burst waits.
        wait = self._next_flush - time.monotonic()
        if wait > 0:
            self.set_timer(wait, self._flush, name="refresh screens")
        else:
            self.call_later(self._flush)

    def _flush(self) -> None:
        caught_up = self.engine.prepare_rows(ROWS_PER_STEP)
        if not caught_up and self._slices < SLICES_BEFORE_SHOWING:
            # A burst of changed tasks (an import changes thousands): the engine builds their
            # rows a slice at a time, with a short pause between slices in which a key travels
            # its few hops (app, screen, widget, paint) without a slice in each loop turn. Not
            # `call_later`: the app's message queue would run every slice back to back.
            self._slices += 1
            asyncio.get_running_loop().call_later(SLICE_PAUSE, self._flush)
            return
        if self._slices:
            # The slice that ended the chain ran in this loop turn: show in the next one.
            self._slices = 0
            asyncio.get_running_loop().call_later(SLICE_PAUSE, self._show)
            return
        self._show()

    def _show(self) -> None:
        """Refresh the screens. Caught up, or a run keeps changing tasks faster than a few
        slices build them: show the rows built so far, and keep the changed keys for the next
        refresh, which will find their rows built (a refresh never waits for a run to stop
        changing things)."""
        caught_up = self.engine.prepare_rows(0)  # builds nothing: are all changes built?
        self._flush_pending = False
        started = time.monotonic()
        keys = frozenset(self._dirty_keys)
        rows = self._dirty_rows
        if caught_up:
            self._dirty_keys, self._dirty_rows = set(), False
        else:
            # Kept for the next refresh: only keys of rows that exist (a row that appears
            # later is new to the dashboard anyway), so an import's kept keys do not pile up.
            self._dirty_keys.intersection_update(self.engine.rows_so_far())
        if self._dirty_status and caught_up:
            # Not before: engine.status() counts pending rows, which builds every changed row
            # at once; until then the status line keeps the counts it has.
            self._dirty_status = False
            self._status = None
        if rows or keys:
            self._refresh(rows=True, keys=None if rows else keys)
        else:
            self._refresh(rows=False)
        self._heap.freeze()  # no collector pauses over what is alive now (tui/heap.py)
        ended = time.monotonic()
        pause = min(max(REFRESH_INTERVAL, 3 * (ended - started)), REFRESH_MAX_WAIT)
        self._next_flush = ended + pause
        if not caught_up:
            self.changed()  # come back for the rows still being built

    def refresh_screens(self, *, rows: bool = True) -> None:
        """Let every open screen re-read what it shows from the engine, now."""
        self._status = None
        self._refresh(rows=rows)

    def _refresh(self, *, rows: bool, keys: frozenset[str] | None = None) -> None:
        # `keys` None with rows: compare every row; a set: only these rows changed.
        for screen in list(self.screen_stack):
            try:
                refresh = getattr(screen, "refresh_from_engine", None)
                if refresh is not None:
                    refresh(rows=rows, keys=keys)
            except NoMatches:
                continue  # a screen being torn down (the app is closing)

    # -- what the screens ask of the app ------------------------------------------------------

    def time_zone(self) -> tzinfo:
        try:
            return self.engine.settings.zone()
        except (AttributeError, ValueError):
            return UTC

    def today(self) -> date:
        return self.clock().astimezone(self.time_zone()).date()

    def engine_status(self) -> Any:
        """engine.status(), read once per refresh (it is shared by every screen)."""
        if self._status is None:
            self._status = self.engine.status()
        return self._status

    def status_view(
        self, *, shown: int, total_rows: int, view: str, filter_text: str
    ) -> StatusView:
        status = self.engine_status()
        state = status.state
        phase, done, total = self.progress
        message = ""
        if self.sync_running:
            state = "running"
        elif state == "running":
            phase, done, total = status.phase, status.progress_done, status.progress_total
        elif status.last_outcome == "failed":
            state, message = "failed", status.last_message
        return StatusView(
            state=state,
            phase=phase,
            done=done,
            total=total,
            queued=self.sync_queued,
            last_run=status.last_run,
            next_run=status.next_run,
            api_used=status.api_used,
            api_max=status.api_max,
            conflicts=status.conflicts,
            errors=status.errors,
            shown=shown,
            total_rows=total_rows,
            view=view,
            filter=filter_text,
            message=message,
        )

    def sync_now(self) -> None:
        """`s`: one run now; during a run, one more is queued (the engine never runs two)."""
        if not self.engine.settings.enabled:
            self.notify("Sync is off. Turn it on in Settings (,).", severity="warning")
            return
        self.engine.request_sync()
        if self.sync_running:
            self.sync_queued = True
            self.notify("A sync is running: one more run is queued.")
        else:
            self.notify("Syncing now.")
        self.refresh_screens(rows=False)

    def run_engine_call(
        self,
        call: Callable[[], Awaitable[Any]],
        *,
        description: str,
        success: str = "",
        then_sync: bool = True,
    ) -> Worker:
        """Run one engine call off the key handler; errors become a notification."""

        async def work() -> Any:
            result = await call()
            if success:
                self.notify(success, markup=False)
            if then_sync and self.engine.settings.enabled:
                self.engine.request_sync()
            self.refresh_screens()
            return result

        return self.run_worker(
            work(), group="engine-calls", description=description, exit_on_error=False
        )

    def edit_task(self, side: Side, task_id: str, changes: dict) -> Worker:
        fields = ", ".join(changes)
        return self.run_engine_call(
            lambda: self.engine.edit_task(side, task_id, changes),
            description=f"Saving {fields} in {side.label}",
            success=f"Saved in {side.label}; the next sync carries it across.",
        )

    def create_task(self, side: Side, task: Task) -> Worker:
        return self.run_engine_call(
            lambda: self.engine.create_task(side, task),
            description=f"Creating the task in {side.label}",
            success=f"Created in {side.label}.",
        )

    def delete_task(self, side: Side, task_id: str) -> Worker:
        return self.run_engine_call(
            lambda: self.engine.delete_task(side, task_id),
            description=f"Deleting the task in {side.label}",
            success=f"Deleted in {side.label}.",
        )

    def open_conflict(self, conflict_id: str | None = None) -> None:
        from tui.screens.conflict import ConflictScreen

        conflicts = self.engine.conflicts()
        if not conflicts:
            self.notify("No conflicts waiting.")
            return
        self.push_screen(ConflictScreen(conflict_id))

    def log_in(self, side: Side) -> None:
        from tui.screens.login import LoginScreen

        if self.accounts is None:
            self.notify(f"Logging in to {side.label} is not available here.")
            return
        self.push_screen(LoginScreen(side))

    def log_out(self, side: Side) -> None:
        from tui.screens.dialogs import ConfirmDialog

        accounts = self.accounts
        if accounts is None:
            self.notify(f"Logging out of {side.label} is not available here.")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_engine_call(
                    lambda: accounts.logout(side),
                    description=f"Logging out of {side.label}",
                    success=f"Logged out of {side.label}; its tokens are gone from the keyring.",
                    then_sync=False,
                )

        self.push_screen(
            ConfirmDialog(
                f"Log out of {side.label}? Sync pauses until you log in again.",
                confirm="Log out",
            ),
            done,
        )

    # -- app-wide keys -----------------------------------------------------------------------

    def _is_open(self, screen_type: type) -> bool:
        return isinstance(self.screen, screen_type)

    def action_settings(self) -> None:
        from tui.screens.settings import SettingsScreen

        if not self._is_open(SettingsScreen):
            self.push_screen(SettingsScreen())

    def action_activity(self) -> None:
        from tui.screens.activity import ActivityScreen

        if not self._is_open(ActivityScreen):
            self.push_screen(ActivityScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not self._is_open(HelpScreen):
            # Built once and kept: its text never changes, and composing and styling it again
            # on every press is most of what `?` costs.
            if not self.is_screen_installed("help"):
                self.install_screen(HelpScreen(), name="help")
            self.push_screen("help")


# -- entry points (called lazily by tui/cli.py) --------------------------------------------


def run_dashboard(home: str | Path | None = None) -> None:
    """`reminder-sync`: the dashboard on the user's real state and keyring."""
    from sync.engine import build_engine, default_secret_store

    secrets = default_secret_store()

    async def main() -> str | None:
        engine = build_engine(Path(home) if home is not None else None, secrets)
        if inspect.isawaitable(engine):
            engine = await engine
        try:
            app = ReminderSyncApp(engine, accounts=_accounts(engine, secrets))
            return await app.run_async()
        finally:
            await engine.aclose()

    if asyncio.run(main()) == "demo":
        run_demo()


def _accounts(engine: Any, secrets: Any) -> Any:
    from tui.screens.login import Accounts

    return Accounts(engine, secrets)


def run_demo(**options: Any) -> None:
    """`reminder-sync demo`: both emulators in-process, seeded, throwaway state."""
    from tui.demo import run_demo as demo

    demo(**options)
