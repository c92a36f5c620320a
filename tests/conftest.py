"""Shared fixtures: both emulators over loopback, a state home in tmp_path, secrets in memory.

    async def test_x(sf, sc, clock, engine): ...

- `sf` / `sc`: an emulator on a free 127.0.0.1 port, with a small client (`SalesforceHandle`,
  `SalesConnectHandle`) that seeds and inspects it over its own wire API, as a user's other
  tools would (create/update/delete/list tasks, clock, faults).
- `clock`: one clock for both emulators and the engine; `clock.shift(hours=-30)` moves all three,
  `with clock.at(hours=-30): ...` does so for a block ("created 30 hours ago").
- `home`, `secrets`: a state directory in tmp_path and a MemoryStore.
- `connected_home`: `home` after `connect salesforce` and `connect salesconnect` against the
  emulators (client credentials), as a user would do once.
- `engine`: `build_engine(connected_home, secrets, clock=clock.now)`, closed after the test.
- `make_engine()`: build more engines on the same home (restarts); each is closed at the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.server import RunningServer, serve_in_thread

SF_API = "/services/data/v62.0"
# httpx builds a TLS context (loading the CA bundle) for every Client it makes, even for plain
# http: ~0.05-0.1 s of CPU each. The handles open a client per call, so every test client shares
# this one, made as httpx makes its default.
TLS_CONTEXT = httpx.create_ssl_context()
SF_TASK_FIELDS = (
    "Id, Subject, Status, Priority, ActivityDate, Description, OwnerId, IsDeleted, "
    "SystemModstamp, CreatedDate"
)


# --- the Salesforce emulator, seen through its wire API -----------------------------------


@dataclass
class SalesforceHandle:
    server: RunningServer
    app: Any
    client_id: str
    client_secret: str
    username: str
    user_id: str = ""
    _token: str | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def token_url(self) -> str:
        return self.base_url + "/services/oauth2/token"

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, verify=TLS_CONTEXT)

    def token(self) -> str:
        if self._token is None:
            with self._http() as http:
                response = http.post(
                    "/services/oauth2/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                    },
                )
                response.raise_for_status()
                body = response.json()
                self._token = body["access_token"]
                self.user_id = body["id"].rstrip("/").rsplit("/", 1)[-1]
        return self._token

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._http() as http:
            headers = {"Authorization": f"Bearer {self.token()}"}
            response = http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 401:  # our own test token expired: get another
                self._token = None
                headers = {"Authorization": f"Bearer {self.token()}"}
                response = http.request(method, path, headers=headers, **kwargs)
            return response

    def create_task(self, **fields: Any) -> str:
        """Create a Task (Salesforce field names); Subject/Status/Priority/OwnerId default."""
        body = {
            "Subject": "task",
            "Status": "Not Started",
            "Priority": "Normal",
            "OwnerId": self.user_id or self._owner(),
            **fields,
        }
        response = self._call("POST", f"{SF_API}/sobjects/Task/", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def _owner(self) -> str:
        self.token()
        return self.user_id

    def update_task(self, task_id: str, **fields: Any) -> None:
        response = self._call("PATCH", f"{SF_API}/sobjects/Task/{task_id}", json=fields)
        assert response.status_code == 204, response.text

    def delete_task(self, task_id: str) -> None:
        response = self._call("DELETE", f"{SF_API}/sobjects/Task/{task_id}")
        assert response.status_code == 204, response.text

    def get_task(self, task_id: str) -> dict | None:
        response = self._call("GET", f"{SF_API}/sobjects/Task/{task_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    def query(self, soql: str) -> list[dict]:
        records: list[dict] = []
        response = self._call("GET", f"{SF_API}/query", params={"q": soql})
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            records.extend(body["records"])
            if body.get("done", True):
                return records
            response = self._call("GET", body["nextRecordsUrl"])

    def tasks(self) -> list[dict]:
        """Every live task (any owner), oldest first."""
        return self.query(f"SELECT {SF_TASK_FIELDS} FROM Task ORDER BY CreatedDate, Id")

    def stored_tasks(self) -> list[dict]:
        """Every live task straight from the emulator's memory (works when the API refuses)."""
        return self.app.state.emulator.tasks()

    def by_subject(self) -> dict[str, dict]:
        return {t["Subject"]: t for t in self.tasks()}

    def set_clock(self, offset_seconds: float) -> None:
        with self._http() as http:
            response = http.post("/__emulator__/clock", json={"offset_seconds": offset_seconds})
            response.raise_for_status()

    def faults(self, **plan: Any) -> None:
        """POST /__emulator__/faults (see emulators/sf_faults.py); no arguments = off."""
        with self._http() as http:
            http.post("/__emulator__/faults", json=plan).raise_for_status()


# --- the Sales Connect emulator, seen through its wire API --------------------------------


@dataclass
class SalesConnectHandle:
    server: RunningServer
    app: Any
    client_id: str
    client_secret: str
    username: str
    user_id: str
    _token: str | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """The API root (what `connect salesconnect --base-url` takes)."""
        return self.server.base_url + "/api/v1"

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, timeout=10, verify=TLS_CONTEXT)

    def token(self) -> str:
        if self._token is None:
            with self._http() as http:
                response = http.post(
                    "/api/v1/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                    },
                )
                response.raise_for_status()
                self._token = response.json()["access_token"]
        return self._token

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._http() as http:
            headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
            response = http.request(method, "/api/v1" + path, headers=headers, **kwargs)
            if response.status_code == 401:
                self._token = None
                headers["Authorization"] = f"Bearer {self.token()}"
                response = http.request(method, "/api/v1" + path, headers=headers, **kwargs)
            return response

    def create_task(self, **fields: Any) -> str:
        body = {"name": "task", "status": "open", "priority": "normal", **fields}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        response = self._call("POST", "/tasks", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def get_task(self, task_id: str, include_deleted: bool = False) -> dict | None:
        params = {"include_deleted": "true"} if include_deleted else {}
        response = self._call("GET", f"/tasks/{task_id}", params=params)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    def update_task(self, task_id: str, **changes: Any) -> dict:
        current = self.get_task(task_id)
        assert current is not None, f"no task {task_id}"
        response = self._call(
            "PATCH",
            f"/tasks/{task_id}",
            json=changes,
            headers={"If-Match": str(current["version"])},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def delete_task(self, task_id: str) -> None:
        response = self._call("DELETE", f"/tasks/{task_id}")
        assert response.status_code in (200, 204), response.text

    def tasks(self, include_deleted: bool = False) -> list[dict]:
        out: list[dict] = []
        params: dict[str, Any] = {"limit": 200}
        if include_deleted:
            params["include_deleted"] = "true"
        while True:
            response = self._call("GET", "/tasks", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            out.extend(body["tasks"])
            if not body.get("next_cursor"):
                return out
            params["cursor"] = body["next_cursor"]

    def by_name(self) -> dict[str, dict]:
        return {t["name"]: t for t in self.tasks()}

    def set_clock(self, offset_seconds: float) -> None:
        with self._http() as http:
            response = http.post("/__emulator__/clock", json={"offset_seconds": offset_seconds})
            response.raise_for_status()

    def faults(self, **plan: Any) -> None:
        with self._http() as http:
            http.post("/__emulator__/faults", json=plan).raise_for_status()


# --- one clock for everything ---------------------------------------------------------------


class SharedClock:
    """Real time shifted by an offset, applied to both emulators and the engine alike."""

    def __init__(self, *emulators: Any) -> None:
        self.offset = timedelta()
        self._emulators = emulators

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set(self, offset: timedelta) -> None:
        self.offset = offset
        for emulator in self._emulators:
            emulator.set_clock(offset.total_seconds())

    def shift(self, **delta: float) -> None:
        self.set(self.offset + timedelta(**delta))

    @contextlib.contextmanager
    def at(self, **delta: float) -> Iterator[None]:
        """Run a block `delta` away from the current offset (e.g. hours=-30), then come back."""
        before = self.offset
        self.set(before + timedelta(**delta))
        try:
            yield
        finally:
            self.set(before)


# --- fixtures -----------------------------------------------------------------------------


def _salesforce_app(**config: Any) -> Any:
    from emulators.salesforce import SalesforceEmulatorConfig, create_app

    return create_app(SalesforceEmulatorConfig(**config))


def _salesconnect_app(**config: Any) -> Any:
    from emulators.salesconnect import SalesConnectConfig, create_app

    return create_app(SalesConnectConfig(**config))


@pytest.fixture
def sf_config() -> dict[str, Any]:
    """Override in a test module to change the emulated org (e.g. no external-id field)."""
    return {}


@pytest.fixture
def sf(sf_config: dict[str, Any]) -> Iterator[SalesforceHandle]:
    app = _salesforce_app(**sf_config)
    config = app.state.emulator.config
    with serve_in_thread(app) as server:
        handle = SalesforceHandle(
            server=server,
            app=app,
            client_id=config.client_id,
            client_secret=config.client_secret,
            username=config.username,
            user_id=config.user_id,
        )
        yield handle


@pytest.fixture
def sc() -> Iterator[SalesConnectHandle]:
    app = _salesconnect_app()
    config = app.state.emulator.config
    with serve_in_thread(app) as server:
        yield SalesConnectHandle(
            server=server,
            app=app,
            client_id=config.client_id,
            client_secret=config.client_secret,
            username=config.username,
            user_id=config.user_id,
        )


@pytest.fixture
def clock(sf: SalesforceHandle, sc: SalesConnectHandle) -> SharedClock:
    return SharedClock(sf, sc)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def secrets() -> Any:
    from sync.secrets import MemoryStore

    return MemoryStore()


def sc_task_json(
    task_id: str, version: int, name: str, *, assignee: str = "user-1", deleted: bool = False
) -> dict[str, Any]:
    """A Sales Connect task as `GET /tasks` returns it (open, normal priority), at `version`,
    changed at 09:<version> on 2025-03-04; `deleted`: a tombstone."""
    return {
        "id": task_id,
        "version": version,
        "name": name,
        "status": "open",
        "priority": "normal",
        "assignee_id": assignee,
        "updated_at": f"2025-03-04T09:{version:02d}:00.000Z",
        **({"deleted_at": "2025-03-04T09:30:00.000Z"} if deleted else {}),
    }


async def connect_both(
    home: Path, secrets: Any, sf: SalesforceHandle, sc: SalesConnectHandle
) -> None:
    """`connect salesforce` (client credentials) and `connect salesconnect` on the emulators."""
    from sync.connections import connect_salesconnect, connect_salesforce

    await connect_salesforce(
        secrets,
        login_url=sf.base_url,
        client_id=sf.client_id,
        auth="client-credentials",
        secret=sf.client_secret,
        home=home,
    )
    await connect_salesconnect(
        secrets,
        base_url=sc.base_url,
        client_id=sc.client_id,
        token_url=None,
        secret=sc.client_secret,
        home=home,
    )


async def enable_sync(home: Path, secrets: Any, clock: SharedClock | None = None) -> None:
    """`reminder-sync enable` on a connected home, without a first run; with `clock`, on its
    time, then a second later (what is made afterwards is new since sync was on)."""
    from sync.engine import build_engine

    engine = build_engine(home, secrets, **({"clock": clock.now} if clock else {}))
    try:
        await engine.set_enabled(True, start=False)
    finally:
        await engine.aclose()
    if clock is not None:
        clock.shift(seconds=1)


async def enabled_home(
    home: Path, secrets: Any, sf: SalesforceHandle, sc: SalesConnectHandle
) -> None:
    """`connect_both`, then `enable`, in this process (setup for a process under test)."""
    await connect_both(home, secrets, sf, sc)
    await enable_sync(home, secrets)


@pytest.fixture
async def connected_home(
    home: Path, secrets: Any, sf: SalesforceHandle, sc: SalesConnectHandle
) -> Path:
    await connect_both(home, secrets, sf, sc)
    return home


@pytest.fixture
async def make_engine(
    connected_home: Path, secrets: Any, clock: SharedClock
) -> AsyncIterator[Callable[..., Any]]:
    from sync.engine import build_engine

    built: list[Any] = []

    def make(**kwargs: Any) -> Any:
        engine = build_engine(connected_home, secrets, clock=clock.now, **kwargs)
        built.append(engine)
        return engine

    yield make
    for engine in built:
        await engine.aclose()


@pytest.fixture
async def engine(make_engine: Callable[..., Any]) -> Any:
    return make_engine()
