"""Fixtures of the reliability tests: both emulators served once per session over loopback,
each behind a tampering proxy (see `tamper.py`), reset before every test.

    async def test_x(world):
        engine = world.make_engine()
        await world.enable(engine)
        world.sf.create_task(Subject="Call Jane")
        summary = await engine.run_once()

`world.sf` / `world.sc` seed and inspect the emulators directly over their wire API (as the
user's other tools would); the engine talks to them through `world.sf_proxy` / `world.sc_proxy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.server import RunningServer, serve_in_thread
from tests.conftest import SalesConnectHandle, SalesforceHandle, SharedClock
from tests.reliability.tamper import TamperProxy


class _Kept:
    """A context manager that hands out one long-lived client and leaves it open."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def __enter__(self) -> httpx.Client:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


class KeptSalesforceHandle(SalesforceHandle):
    """The shared handle, with one kept-alive client (a new client per call costs an SSL
    context, ~0.1 s of CPU, which adds up over hundreds of steps)."""

    def _http(self) -> Any:
        return _kept_client(self.base_url)


class KeptSalesConnectHandle(SalesConnectHandle):
    def _http(self) -> Any:
        return _kept_client(self.server.base_url)


_CLIENTS: dict[str, httpx.Client] = {}


def _kept_client(base_url: str) -> _Kept:
    client = _CLIENTS.get(base_url)
    if client is None:
        client = _CLIENTS[base_url] = httpx.Client(base_url=base_url, timeout=30, verify=False)
    return _Kept(client)


@dataclasses.dataclass
class Servers:
    sf_app: Any
    sc_app: Any
    sf_server: RunningServer
    sc_server: RunningServer
    sf_proxy: TamperProxy
    sc_proxy: TamperProxy
    sf_proxy_server: RunningServer
    sc_proxy_server: RunningServer

    def reset(self) -> None:
        for server in (self.sf_server, self.sc_server):
            with _kept_client(server.base_url) as http:
                http.post("/__emulator__/reset").raise_for_status()
        self.sf_proxy.clear()
        self.sc_proxy.clear()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    from emulators.salesconnect import SalesConnectConfig
    from emulators.salesconnect import create_app as sc_create
    from emulators.salesforce import SalesforceEmulatorConfig
    from emulators.salesforce import create_app as sf_create

    sf_app = sf_create(SalesforceEmulatorConfig())
    sc_app = sc_create(SalesConnectConfig())
    with serve_in_thread(sf_app) as sf_server, serve_in_thread(sc_app) as sc_server:
        sf_proxy = TamperProxy(sf_server.base_url)
        sc_proxy = TamperProxy(sc_server.base_url)
        with (
            serve_in_thread(sf_proxy.app()) as sf_proxy_server,
            serve_in_thread(sc_proxy.app()) as sc_proxy_server,
        ):
            yield Servers(
                sf_app,
                sc_app,
                sf_server,
                sc_server,
                sf_proxy,
                sc_proxy,
                sf_proxy_server,
                sc_proxy_server,
            )


@dataclasses.dataclass
class World:
    servers: Servers
    sf: KeptSalesforceHandle
    sc: KeptSalesConnectHandle
    clock: SharedClock
    home: Path
    secrets: Any
    engines: list[Any] = dataclasses.field(default_factory=list)

    @property
    def sf_proxy(self) -> TamperProxy:
        return self.servers.sf_proxy

    @property
    def sc_proxy(self) -> TamperProxy:
        return self.servers.sc_proxy

    @property
    def sf_login_url(self) -> str:
        return self.servers.sf_proxy_server.base_url

    @property
    def sc_base_url(self) -> str:
        return self.servers.sc_proxy_server.base_url + "/api/v1"

    async def connect(self, *, direct: bool = False) -> None:
        """`connect salesforce` and `connect salesconnect`, through the proxies (or, `direct`,
        straight to the emulators: a dropped connection then reaches the engine as one)."""
        from sync.connections import connect_salesconnect, connect_salesforce

        sf_url = self.servers.sf_server.base_url if direct else self.sf_login_url
        sc_url = self.servers.sc_server.base_url + "/api/v1" if direct else self.sc_base_url
        await connect_salesforce(
            self.secrets,
            login_url=sf_url,
            client_id=self.sf.client_id,
            auth="client-credentials",
            secret=self.sf.client_secret,
            home=self.home,
        )
        await connect_salesconnect(
            self.secrets,
            base_url=sc_url,
            client_id=self.sc.client_id,
            token_url=None,
            secret=self.sc.client_secret,
            home=self.home,
        )

    def make_engine(self, **kwargs: Any) -> Any:
        from sync.engine import build_engine

        kwargs.setdefault("clock", self.clock.now)
        engine = build_engine(self.home, kwargs.pop("secrets", self.secrets), **kwargs)
        self.engines.append(engine)
        return engine

    async def close(self, engine: Any) -> None:
        if engine in self.engines:
            self.engines.remove(engine)
        await engine.aclose()

    async def enable(self, engine: Any) -> None:
        """Turn sync on; tasks created from now on are "after enabling"."""
        await engine.set_enabled(True, start=False)
        self.clock.shift(seconds=1)

    # -- what each service holds -------------------------------------------------------------

    def sf_tasks(self) -> list[dict]:
        return self.sf.tasks()

    def sc_tasks(self) -> list[dict]:
        return self.sc.tasks()

    def snapshot(self) -> tuple[dict, dict]:
        """Every task with its change stamp: equal snapshots = nothing was written."""
        sf_state = {t["Id"]: (t["SystemModstamp"], t["Subject"]) for t in self.sf.tasks()}
        sc_state = {
            t["id"]: (t["version"], t["updated_at"]) for t in self.sc.tasks(include_deleted=True)
        }
        return sf_state, sc_state


def make_handles(servers: Servers) -> tuple[KeptSalesforceHandle, KeptSalesConnectHandle]:
    """Clients of both emulators' own wire APIs (seeding and inspection, as other tools)."""
    sf_config = servers.sf_app.state.emulator.config
    sc_config = servers.sc_app.state.emulator.config
    sf = KeptSalesforceHandle(
        server=servers.sf_server,
        app=servers.sf_app,
        client_id=sf_config.client_id,
        client_secret=sf_config.client_secret,
        username=sf_config.username,
        user_id=sf_config.user_id,
    )
    sc = KeptSalesConnectHandle(
        server=servers.sc_server,
        app=servers.sc_app,
        client_id=sc_config.client_id,
        client_secret=sc_config.client_secret,
        username=sc_config.username,
        user_id=sc_config.user_id,
    )
    return sf, sc


@pytest.fixture
async def world(servers: Servers, tmp_path: Path) -> AsyncIterator[World]:
    from sync.secrets import MemoryStore

    servers.reset()
    sf, sc = make_handles(servers)
    the_world = World(
        servers=servers,
        sf=sf,
        sc=sc,
        clock=SharedClock(sf, sc),
        home=tmp_path / "home",
        secrets=MemoryStore(),
    )
    await the_world.connect()
    yield the_world
    for engine in list(the_world.engines):
        await engine.aclose()
    servers.reset()
