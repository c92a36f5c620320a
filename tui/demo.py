"""`reminder-sync demo`: the real app against both emulators, seeded, with nothing to set up.

Both emulators run in this process on free loopback ports; the state lives in a throwaway
directory, the secrets in memory. The app connects the way a user would (the emulators' client
credentials), turns sync on, syncs once so the seeded tasks get linked, makes two conflicts,
and opens the dashboard. `c` switches "chaos" on and off: a random task on either side is
edited now and then, so the sync can be watched at work.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from tui.app import ReminderSyncApp

DEMO_POLL_SECONDS = 10  # the shortest interval the settings allow: the demo should feel alive
CHAOS_SECONDS = 12.0


@dataclass
class Demo:
    """A running demo backend: the engine and both emulators (for tests and screenshots)."""

    engine: Any
    sc: Any  # the Sales Connect emulator's seeding object
    sf: Any  # the Salesforce emulator's seeding object
    sc_server: Any
    sf_server: Any
    home: Path
    chaos: Any


@contextlib.asynccontextmanager
async def demo_backend(
    home: Path,
    *,
    now: datetime | None = None,
    clock: Callable[[], datetime] | None = None,
    chaos_seed: int | None = None,
) -> AsyncIterator[Demo]:
    """Start, seed and connect everything; sync once; make the two conflicts.

    `now` fixes the emulators' and the engine's clock (snapshot tests and screenshots).
    """
    from emulators.salesconnect import create_app as salesconnect_app
    from emulators.salesforce import create_app as salesforce_app
    from emulators.seed import Chaos, after_first_sync, seed_demo
    from emulators.server import serving
    from sync.connections import connect_salesconnect, connect_salesforce
    from sync.engine import build_engine
    from sync.secrets import MemoryStore

    sf_app, sc_app = salesforce_app(), salesconnect_app()
    sf, sc = sf_app.state.emulator, sc_app.state.emulator
    if now is not None:
        sf.set_clock_offset((now - datetime.now(UTC)).total_seconds())
        sc.freeze_clock(now)
        clock = clock or (lambda: now)
    engine_clock = clock or (lambda: datetime.now(UTC))
    secrets = MemoryStore()
    async with serving(sf_app) as sf_server, serving(sc_app) as sc_server:
        seeded = seed_demo(sc, sf, now=engine_clock(), tz=_local_zone())
        await connect_salesforce(
            secrets,
            login_url=sf_server.base_url,
            client_id=sf.config.client_id,
            auth="client-credentials",
            secret=sf.config.client_secret,
            home=home,
        )
        await connect_salesconnect(
            secrets,
            base_url=sc_server.base_url + "/api/v1",
            client_id=sc.config.client_id,
            token_url=None,
            secret=sc.config.client_secret,
            home=home,
        )
        engine = build_engine(home, secrets, clock=engine_clock)
        try:
            await engine.update_settings(poll_interval=DEMO_POLL_SECONDS)
            await engine.set_enabled(True, start=False)
            await engine.run_once(reason="first sync")
            after_first_sync(sc, sf, seeded, now=engine_clock())
            await engine.run_once(reason="demo")
            yield Demo(
                engine=engine,
                sc=sc,
                sf=sf,
                sc_server=sc_server,
                sf_server=sf_server,
                home=home,
                chaos=Chaos(sc, sf, seed=chaos_seed),
            )
        finally:
            await engine.aclose()


def _local_zone() -> Any:
    return datetime.now().astimezone().tzinfo


class DemoApp(ReminderSyncApp):
    """The dashboard plus the demo's chaos switch."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "toggle_chaos", "Chaos", id="demo_chaos", tooltip="Random edits on/off"),
    ]

    def __init__(self, demo: Demo, *, chaos: bool = True, **kwargs: Any) -> None:
        super().__init__(demo.engine, **kwargs)
        self.demo = demo
        self.chaos_on = chaos
        self._chaos_timer: Any = None
        self._update_label()

    def on_mount(self) -> None:
        super().on_mount()
        self._chaos_timer = self.set_interval(
            CHAOS_SECONDS, self._chaos_step, pause=not self.chaos_on
        )

    def _update_label(self) -> None:
        self.demo_label = "demo · chaos " + ("on" if self.chaos_on else "off") + " (c)"

    def _chaos_step(self) -> None:
        message = self.demo.chaos.step()
        if message:
            self.notify(message, title="Someone edited a task", timeout=4, markup=False)

    def action_toggle_chaos(self) -> None:
        self.chaos_on = not self.chaos_on
        if self._chaos_timer is not None:
            if self.chaos_on:
                self._chaos_timer.resume()
            else:
                self._chaos_timer.pause()
        self._update_label()
        self.notify(
            "Chaos on: a random task changes every few seconds." if self.chaos_on else "Chaos off."
        )
        self.refresh_screens(rows=False)


def run_demo(*, chaos: bool = True) -> None:
    """Run the demo until the user quits; everything it made is thrown away."""

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="reminder-sync-demo-") as tmp:
            async with demo_backend(Path(tmp) / "home") as demo:
                await DemoApp(demo, chaos=chaos).run_async()

    asyncio.run(main())
