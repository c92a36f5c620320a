"""A Salesforce org on loopback: OAuth, the REST data API subset, limits, faults.

Start one::

    from emulators.salesforce import create_app, default_config
    from emulators.server import serve_in_thread

    app = create_app()                      # or create_app(SalesforceEmulatorConfig(...))
    emulator = app.state.emulator           # seeding and inspection from Python
    emulator.add_task(Subject="Call Jane", ActivityDate="2026-12-01")
    with serve_in_thread(app) as server:    # server.base_url is both login host and instance
        token = emulator.issue_access_token()   # or log in through /services/oauth2/

Credentials of ``default_config()`` (printed by ``reminder-sync emulators``): client_id
``reminder-sync-emulator``, client_secret ``emulator-client-secret``, username
``rep@reminder-sync.example``, password ``emulator-password``.

HTTP surface (see the sf_* modules for details):

- ``/services/oauth2/{authorize,token,revoke,userinfo}``, ``/id/{org}/{user}`` (sf_oauth)
- ``/services/data/`` versions; ``/services/data/vNN.N/``: ``query``, ``queryAll`` (soql,
  sf_query_api), ``sobjects/...`` incl. ``Task/describe``, ``Task/updated``,
  ``Task/deleted``, upsert by external id (sf_rest), ``composite/sobjects`` (sf_collections),
  ``limits``
- test-only ``/__emulator__/``: ``POST clock`` ``{"offset_seconds": N}`` (absolute offset from
  real time), ``POST faults`` (JSON in sf_faults; ``{}`` clears), ``POST reset`` (empties
  tasks, tokens, cursors, usage, faults, clock), ``GET state``.

Every response's ``Date`` header is the emulator's (shiftable) clock, as a real org's is its own.

Third-party clients: simple-salesforce works unmodified with
``Salesforce(instance_url=base_url, session_id=token, version="62.0", session=s)`` when the
emulator is served over TLS (simple-salesforce always builds https:// URLs): see
``emulators.server.self_signed_certificate`` and ``serve_in_thread(..., tls=...)``.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators import soql
from emulators.sf_config import (
    PriorityValue,
    SalesforceEmulatorConfig,
    StatusValue,
    default_config,
)
from emulators.sf_errors import DmlError
from emulators.sf_faults import FaultMiddleware, FaultPlan, FaultSwitch, install_log_filter
from emulators.sf_http import DateHeaderMiddleware
from emulators.sf_ids import make_id, normalize_id
from emulators.sf_limits import ApiCounter
from emulators.sf_oauth import OAuthServer
from emulators.sf_rest import DataApi
from emulators.sf_schema import SObjectDef, all_objects
from emulators.sf_store import SYSTEM_FIELDS, TaskStore, to_wire
from emulators.soql import parse_datetime

__all__ = [
    "PriorityValue",
    "SalesforceEmulator",
    "SalesforceEmulatorConfig",
    "StatusValue",
    "create_app",
    "default_config",
]

ALL_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
# Fields a test may seed directly although no API client may write them.
SEEDABLE_SYSTEM_FIELDS = {"RecurrenceActivityId", "IsArchived", "AccountId"}


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_datetime(value)
    if value.tzinfo is None:
        raise ValueError("use an aware datetime (UTC) for emulator times")
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


class SalesforceEmulator:
    """State of one emulated org plus the Python API tests use to seed and inspect it."""

    def __init__(self, config: SalesforceEmulatorConfig | None = None, callback_urls=()):
        self.config = config or default_config()
        self.lock = threading.RLock()
        self.clock_offset = timedelta()
        self.tz = ZoneInfo(self.config.user_time_zone)
        self.objects: dict[str, SObjectDef] = all_objects(self.config)
        self.users = self._user_rows()
        self.store = TaskStore(self.config, self.objects["Task"], {u["Id"] for u in self.users})
        self.reference_rows = {
            "TaskStatus": self._status_rows(),
            "TaskPriority": self._priority_rows(),
            "User": self.users,
        }
        self.oauth = OAuthServer(self.config, self.now, tuple(callback_urls))
        self.api = ApiCounter(self.config.daily_api_limit)
        self.faults = FaultSwitch()
        self.data = DataApi(self)

    # ------------------------------------------------------------------ clock

    def now(self) -> datetime:
        """The emulator's time: real UTC time shifted by the clock offset, to the millisecond."""
        moment = datetime.now(UTC) + self.clock_offset
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def set_clock_offset(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset = timedelta(seconds=seconds)

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)

    # ------------------------------------------------------------------ seeding & inspection

    def add_task(
        self,
        created_at: datetime | str | None = None,
        modified_at: datetime | str | None = None,
        **fields: Any,
    ) -> dict:
        """Create a Task as if a user had, at ``created_at`` (default now); returns its fields.

        Field values use the wire format ("2026-12-01" for dates). Validation is the API's
        (lengths, picklists, owner), so a bad seed fails loudly with ValueError.
        """
        with self.lock:
            created = _as_datetime(created_at) or self.now()
            modified = _as_datetime(modified_at) or created
            if modified < created:
                raise ValueError("modified_at cannot be before created_at")
            values, _ = self._seed_values(fields, creating=True)
            record = self.store.insert(
                values, now=created, actor_id=self.config.user_id, created_at=created
            )
            if modified != created:
                self.store.update(record, {}, now=modified, actor_id=self.config.user_id)
            return self._plain(record)

    def update_task(self, task_id: str, at: datetime | str | None = None, **fields: Any) -> dict:
        """Edit a Task as a Salesforce user would (bumps LastModifiedDate/SystemModstamp)."""
        with self.lock:
            record = self._live_record(task_id)
            values, _ = self._seed_values(fields, creating=False)
            when = _as_datetime(at) or self.now()
            self.store.update(record, values, now=when, actor_id=self.config.user_id)
            return self._plain(record)

    def delete_task(self, task_id: str, at: datetime | str | None = None) -> None:
        """Move a Task to the recycle bin (IsDeleted, listed by deleted/ for 15 days)."""
        with self.lock:
            record = self._live_record(task_id)
            self.store.delete(record, now=_as_datetime(at) or self.now())

    def empty_recycle_bin(self) -> int:
        """Hard-delete every deleted Task now: deleted/ can no longer cover earlier times."""
        with self.lock:
            return self.store.empty_recycle_bin(self.now())

    def task(self, task_id: str) -> dict | None:
        """One Task (also when deleted, until purged), or None."""
        with self.lock:
            rid = normalize_id(task_id)
            record = self.store.records.get(rid or "")
            return self._plain(record) if record else None

    def tasks(self, include_deleted: bool = False) -> list[dict]:
        """All Tasks in creation order, wire-format values."""
        with self.lock:
            self.store.purge_expired(self.now())
            rows = self.store.rows(include_deleted=include_deleted)
            return [self._plain(r) for r in sorted(rows, key=lambda r: r["CreatedDate"])]

    def issue_access_token(self) -> str:
        """A valid access token for the configured user, without an OAuth round trip."""
        with self.lock:
            return self.oauth.issue_access_token()

    def set_auto_approve(self, on: bool) -> None:
        """When on, ``GET /services/oauth2/authorize`` redirects at once (no approval page)."""
        self.oauth.auto_approve = on

    def api_usage(self) -> tuple[int, int]:
        with self.lock:
            return self.api.used(self.now()), self.config.daily_api_limit

    def set_api_usage(self, used: int) -> None:
        with self.lock:
            self.api.set_used(used, self.now())

    def set_fault(self, **plan: Any) -> None:
        """Same keys as ``POST /__emulator__/faults`` (see sf_faults); no keys clears."""
        self.faults.set(FaultPlan.from_json(plan) if plan else None)

    def clear_faults(self) -> None:
        self.faults.set(None)

    def release_hangs(self) -> None:
        """Requests held by a "hang" fault go on now (see ``sf_faults``)."""
        self.faults.release_hangs()

    def reset(self) -> None:
        """Empty the org: tasks, tokens, cursors, API usage, faults and clock offset."""
        with self.lock:
            self.store.clear()
            self.oauth.reset()
            self.data.queries.reset()
            self.api.reset()
            self.faults.set(None)
            self.clock_offset = timedelta()

    def limit_info(self) -> str:
        with self.lock:
            used, maximum = self.api.used(self.now()), self.config.daily_api_limit
        return f"api-usage={used}/{maximum}"

    # ------------------------------------------------------------------ used by the handlers

    def object_name(self, name: str) -> str | None:
        return next((n for n in self.objects if n.lower() == name.lower()), None)

    def soql_tables(self, include_deleted: bool) -> dict[str, soql.Table]:
        self.store.purge_expired(self.now())
        rows = {
            "Task": self.store.rows(include_deleted=include_deleted),
            **self.reference_rows,
        }
        return {
            name: soql.Table(name, obj.field_types, rows[name])
            for name, obj in self.objects.items()
        }

    def find_row(self, object_name: str, raw_id: str) -> dict | None:
        rid = normalize_id(raw_id)
        if rid is None:
            return None
        if object_name == "Task":
            return self.store.live(rid)
        return next((r for r in self.reference_rows[object_name] if r["Id"] == rid), None)

    def record_json(
        self, object_name: str, row: dict, version: str, fields: list[str] | None = None
    ) -> dict:
        if object_name == "Task":
            return self.store.to_json(row, version, fields)
        names = fields if fields is not None else [f.name for f in self.objects[object_name].fields]
        url = f"/services/data/v{version}/sobjects/{object_name}/{row['Id']}"
        out: dict = {"attributes": {"type": object_name, "url": url}}
        out.update({name: to_wire(row.get(name)) for name in names})
        return out

    # ------------------------------------------------------------------ internals

    def _live_record(self, task_id: str) -> dict:
        record = self.store.live(normalize_id(task_id) or "")
        if record is None:
            raise KeyError(f"no live Task with id {task_id}")
        return record

    def _seed_values(self, fields: dict, *, creating: bool) -> tuple[dict, list[DmlError]]:
        seeded = {k: v for k, v in fields.items() if k in SEEDABLE_SYSTEM_FIELDS}
        rest = {k: v for k, v in fields.items() if k not in SEEDABLE_SYSTEM_FIELDS}
        blocked = sorted(k for k in rest if k in SYSTEM_FIELDS)
        if blocked:
            raise ValueError(
                f"{', '.join(blocked)} are set by the server; use created_at/modified_at/"
                "delete_task instead"
            )
        # Seeding may write fields an API client cannot update later (TaskSubtype, IsRecurrence).
        values, errors = self.store.coerce(rest, creating=True)
        if errors:
            raise ValueError("; ".join(f"{e.code}: {e.message}" for e in errors))
        for key, value in seeded.items():
            fdef = self.objects["Task"].field(key)
            assert fdef is not None
            values[fdef.name] = normalize_id(value) if fdef.type == "reference" and value else value
        return values, errors

    def _plain(self, record: dict) -> dict:
        return {name: to_wire(value) for name, value in record.items()}

    def _user_rows(self) -> list[dict]:
        cfg = self.config
        created = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
        people = [(cfg.user_id, cfg.user_full_name, cfg.username, cfg.user_email)]
        for user_id, name in cfg.other_users:
            handle = name.lower().replace(" ", ".")
            people.append((user_id, name, f"{handle}@reminder-sync.example", f"{handle}@example"))
        rows = []
        for user_id, name, username, email in people:
            first, _, last = name.partition(" ")
            rows.append(
                {
                    "Id": user_id,
                    "Username": username,
                    "Name": name,
                    "FirstName": first if last else None,
                    "LastName": last or first,
                    "Email": email,
                    "IsActive": True,
                    "TimeZoneSidKey": cfg.user_time_zone,
                    **_system_values(created, cfg.user_id),
                }
            )
        return rows

    def _status_rows(self) -> list[dict]:
        created = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
        return [
            {
                "Id": make_id("01J", 100 + index),
                "MasterLabel": status.label,
                "ApiName": status.label,
                "SortOrder": index + 1,
                "IsClosed": status.is_closed,
                "IsDefault": status.is_default,
                **_system_values(created, self.config.user_id),
            }
            for index, status in enumerate(self.config.task_statuses)
        ]

    def _priority_rows(self) -> list[dict]:
        created = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
        return [
            {
                "Id": make_id("01J", 200 + index),
                "MasterLabel": priority.label,
                "ApiName": priority.label,
                "SortOrder": index + 1,
                "IsHighPriority": priority.is_high,
                "IsDefault": priority.is_default,
                **_system_values(created, self.config.user_id),
            }
            for index, priority in enumerate(self.config.task_priorities)
        ]


def _system_values(created: datetime, user_id: str) -> dict:
    return {
        "CreatedDate": created,
        "CreatedById": user_id,
        "LastModifiedDate": created,
        "LastModifiedById": user_id,
        "SystemModstamp": created,
    }


# ----------------------------------------------------------------------------- test namespace


def _control_routes(emulator: SalesforceEmulator) -> list[Route]:
    async def body_of(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else {}

    def bad(message: str) -> JSONResponse:
        return JSONResponse({"error": "bad_request", "message": message}, status_code=400)

    async def clock(request: Request) -> JSONResponse:
        try:
            body = await body_of(request)
            offset = body["offset_seconds"]
            if isinstance(offset, bool) or not isinstance(offset, int | float):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return bad('send {"offset_seconds": <number>}')
        emulator.set_clock_offset(offset)
        return JSONResponse({"offset_seconds": offset, "now": to_wire(emulator.now())})

    async def faults(request: Request) -> JSONResponse:
        try:
            body = await body_of(request)
            plan = None if body == {} else FaultPlan.from_json(body)
        except ValueError as error:
            return bad(str(error))
        emulator.faults.set(plan)
        return JSONResponse({"faults": plan.describe() if plan and plan.kinds else None})

    async def reset(request: Request) -> JSONResponse:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def state(request: Request) -> JSONResponse:
        used, maximum = emulator.api_usage()
        plan = emulator.faults.plan
        return JSONResponse(
            {
                "now": to_wire(emulator.now()),
                "offset_seconds": emulator.clock_offset.total_seconds(),
                "api_usage": {"used": used, "max": maximum},
                "tasks": len(emulator.store.rows(include_deleted=False)),
                "deleted_tasks": len(emulator.store.deleted_at),
                "faults": plan.describe() if plan else None,
            }
        )

    return [
        Route("/__emulator__/clock", clock, methods=["POST"]),
        Route("/__emulator__/faults", faults, methods=["POST"]),
        Route("/__emulator__/reset", reset, methods=["POST"]),
        Route("/__emulator__/state", state, methods=["GET"]),
    ]


def create_app(
    config: SalesforceEmulatorConfig | None = None, *, callback_urls: tuple[str, ...] = ()
) -> Starlette:
    """The emulator as an ASGI app; its state and Python API are ``app.state.emulator``."""
    emulator = SalesforceEmulator(config, callback_urls)
    oauth, data = emulator.oauth, emulator.data
    install_log_filter()
    routes = [
        Route("/services/oauth2/authorize", oauth.authorize, methods=["GET", "POST"]),
        Route("/services/oauth2/token", oauth.token, methods=["POST"]),
        Route("/services/oauth2/revoke", oauth.revoke, methods=["GET", "POST"]),
        Route("/services/oauth2/userinfo", oauth.userinfo, methods=["GET", "POST"]),
        Route("/id/{org_id}/{user_id}", oauth.identity_url, methods=["GET", "POST"]),
        Route("/services/data", data.versions, methods=["GET"]),
        Route("/services/data/", data.versions, methods=["GET"]),
        Route("/services/data/v{version}", data.handle, methods=ALL_METHODS),
        Route("/services/data/v{version}/", data.handle, methods=ALL_METHODS),
        Route("/services/data/v{version}/{rest:path}", data.handle, methods=ALL_METHODS),
        *_control_routes(emulator),
    ]
    middleware = [
        # Outermost, so fault responses and errors carry the emulator's time too.
        Middleware(DateHeaderMiddleware, clock=emulator.now),
        Middleware(FaultMiddleware, switch=emulator.faults),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.router.redirect_slashes = False
    app.state.emulator = emulator
    return app
