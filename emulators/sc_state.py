"""The Sales Connect emulator's state: tasks, tombstones, idempotency keys, tokens, settings, clock.

`SalesConnectEmulator` is both what the HTTP layer calls and the Python API tests use to seed
data (`add_task`, `delete_task`, `tasks`, `set_clock_offset`, `reset`). The server runs on its own
thread, so every public method takes the lock.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import heapq
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.sc_faults import FaultSet
from emulators.sc_rules import (
    CURSOR_MAX,
    IDEMPOTENCY_TTL_HOURS,
    TOMBSTONE_DAYS,
    ApiError,
    format_time,
    invalid,
    parse_time,
    truncate_ms,
    validate_changes,
    validate_create,
)


@dataclass(frozen=True)
class SalesConnectConfig:
    """Who may log in and how the emulator behaves. `rate_limit_per_minute=None` = unlimited."""

    client_id: str = "reminder-sync-demo"
    client_secret: str = "demo-secret"
    user_id: str = "usr_demo"
    username: str = "rep@example.com"
    display_name: str = "Demo Rep"
    token_lifetime: int = 3600
    rate_limit_per_minute: int | None = None
    seed: int = 0


@dataclass
class RequestRecord:
    """One request as the emulator saw it (for tests: what reached the server, and when)."""

    method: str
    path: str
    status: int
    at: float  # time.monotonic() when the request arrived


@dataclass
class _Token:
    user_id: str
    expires_at: float  # time.time(); tokens live on real time, not the shifted clock
    revoked: bool = False


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    task_id: str
    created: datetime


@dataclass
class _RateWindow:
    started: float = 0.0
    count: int = 0


@dataclass
class _State:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[tuple[str, str], _IdempotencyEntry] = field(default_factory=dict)
    # Min-heaps of (time, id) in the order things expire, so a purge only looks at what has
    # expired: (deleted_at, task id) of every tombstone, (created, key) of every key.
    tombstone_times: list[tuple[datetime, str]] = field(default_factory=list)
    key_times: list[tuple[datetime, tuple[str, str]]] = field(default_factory=list)
    sync_enabled: bool = False
    enabled_at: datetime | None = None
    settings_updated: datetime | None = None


def task_json(task: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a stored task (times as RFC 3339 strings)."""
    out = dict(task)
    for name in ("created_at", "updated_at", "deleted_at"):
        out[name] = format_time(task[name]) if task[name] is not None else None
    out["person"] = dict(task["person"]) if task["person"] else None
    return out


def encode_cursor(position: tuple[datetime, str], filters: dict[str, Any]) -> str:
    payload = {"after": [format_time(position[0]), position[1]], **filters}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[tuple[datetime, str], dict[str, Any]]:
    bad = invalid(
        "cursor is not one this server issued; start again without a cursor",
        field="cursor",
        code="invalid_cursor",
    )
    if len(cursor) > CURSOR_MAX:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        stamp, task_id = payload.pop("after")
        position = (parse_time(stamp, "cursor"), task_id)
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, ApiError):
        raise bad from None
    if not isinstance(task_id, str) or set(payload) != {"updated_since", "include_deleted"}:
        raise bad
    return position, payload


class SalesConnectEmulator:
    """All state of one emulated Sales Connect tenant."""

    def __init__(self, config: SalesConnectConfig | None = None) -> None:
        self.config = config or SalesConnectConfig()
        self._lock = threading.RLock()
        self._tokens: dict[str, _Token] = {}
        self._rate: dict[str, _RateWindow] = {}
        self.faults = FaultSet()
        self.requests: list[RequestRecord] = []
        self.generation = 0  # bumped by reset(); a hanging request gives up when it changes
        self.reset()

    # -- clock --------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's clock: real UTC time shifted by the offset (or frozen), to the ms."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return truncate_ms(datetime.now(UTC) + timedelta(seconds=self._offset))

    def set_clock_offset(self, seconds: float) -> None:
        with self._lock:
            self._offset = float(seconds)
            self._frozen_at = None

    def freeze_clock(self, at: datetime | None) -> None:
        """Stop the clock at `at` (None: run again, keeping the current offset)."""
        with self._lock:
            self._frozen_at = truncate_ms(at.astimezone(UTC)) if at else None

    def clock_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "now": format_time(self.now()),
                "offset_seconds": self._offset,
                "frozen_at": format_time(self._frozen_at) if self._frozen_at else None,
            }

    # -- lifecycle ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the tenant: tasks, tombstones, keys, settings, faults, clock and the request
        log and counters. Issued tokens stay valid."""
        with self._lock:
            self._state = _State()
            self._changed()
            self._ids = random.Random(self.config.seed)
            self._offset = 0.0
            self._frozen_at: datetime | None = None
            self._rate.clear()
            self.faults.clear()
            self.requests.clear()
            self.token_grants = 0
            self.generation += 1

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str) -> dict[str, Any]:
        ok_id = secrets.compare_digest(client_id.encode(), self.config.client_id.encode())
        ok_secret = secrets.compare_digest(
            client_secret.encode(), self.config.client_secret.encode()
        )
        if not (ok_id and ok_secret):
            raise ApiError(401, "invalid_client", "unknown client or wrong secret", "auth")
        token = "scat_" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Token(
                self.config.user_id, time.time() + self.config.token_lifetime
            )
            self.token_grants += 1
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.config.token_lifetime,
        }

    def user_for_token(self, token: str) -> str:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None:
            raise _auth_error("invalid_token", "the access token is not valid")
        if entry.revoked or time.time() >= entry.expires_at:
            raise _auth_error("token_expired", "the access token has expired; get a new one")
        return entry.user_id

    def expire_tokens(self) -> int:
        """Expire every token issued so far (the next call with one gets 401 token_expired)."""
        with self._lock:
            for entry in self._tokens.values():
                entry.revoked = True
            return len(self._tokens)

    def check_rate(self, user_id: str) -> None:
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return
        with self._lock:
            window = self._rate.setdefault(user_id, _RateWindow())
            now = time.monotonic()
            if now - window.started >= 60:
                window.started, window.count = now, 0
            window.count += 1
            if window.count > limit:
                wait = max(1, int(60 - (now - window.started) + 0.999))
                raise rate_limited(wait)

    def record(self, method: str, path: str, status: int, arrived: float) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status, arrived))

    # -- tasks: seeding API -------------------------------------------------------------------

    def add_task(
        self,
        *,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        assignee_id: str | None = None,
        id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a task as if created at `created_at` (default: now). Raises ValueError on bad
        fields, with the same rules as the API."""
        try:
            clean = validate_create(fields)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        with self._lock:
            created = truncate_ms(created_at.astimezone(UTC)) if created_at else self.now()
            updated = truncate_ms(updated_at.astimezone(UTC)) if updated_at else created
            task_id = id or self._new_id()
            if task_id in self._state.tasks:
                raise ValueError(f"task {task_id} exists")
            task = self._store(task_id, clean, assignee_id or self.config.user_id, created)
            task["updated_at"] = updated
            self._changed()
            return task_json(task)

    def tasks(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            self._purge()
            rows = sorted(self._state.tasks.values(), key=_position)
            return [task_json(t) for t in rows if include_deleted or t["deleted_at"] is None]

    def delete_task(self, task_id: str) -> dict[str, Any]:
        return self.delete(task_id, None)

    # -- tasks: operations the API calls ------------------------------------------------------

    def create(self, user_id: str, body: Any, key: str | None) -> tuple[dict[str, Any], bool]:
        """Create a task; returns (task, replayed). A known key returns its task unchanged."""
        clean = validate_create(body)
        assignee = clean.pop("assignee_id", None) or user_id
        with self._lock:
            self._purge()
            if key is not None:
                fingerprint = hashlib.sha256(
                    json.dumps([clean, assignee], sort_keys=True).encode()
                ).hexdigest()
                known = self._state.keys.get((user_id, key))
                if known is not None:
                    if known.fingerprint != fingerprint:
                        raise ApiError(
                            422,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with a different task; "
                            "use a new key for a new task",
                            "validation",
                            details={"task_id": known.task_id},
                        )
                    stored = self._state.tasks.get(known.task_id)
                    if stored is not None:
                        return task_json(stored), True
            task = self._store(self._new_id(), clean, assignee, self.now())
            if key is not None:
                self._state.keys[(user_id, key)] = _IdempotencyEntry(
                    fingerprint, task["id"], task["created_at"]
                )
                heapq.heappush(self._state.key_times, (task["created_at"], (user_id, key)))
            return task_json(task), False

    def get(self, task_id: str, include_deleted: bool = False) -> dict[str, Any]:
        with self._lock:
            task = self._live(task_id, include_deleted=include_deleted)
            return task_json(task)

    def update(self, task_id: str, expected: int | None, body: Any) -> dict[str, Any]:
        changes = validate_changes(body)
        with self._lock:
            task = self._live(task_id)
            self._check_version(task, expected)
            if any(task[name] != value for name, value in changes.items()):
                task.update(changes)
                task["version"] += 1
                task["updated_at"] = self.now()
                self._changed()
            return task_json(task)

    def delete(self, task_id: str, expected: int | None) -> dict[str, Any]:
        with self._lock:
            task = self._live(task_id)
            self._check_version(task, expected)
            now = self.now()
            task["deleted_at"] = now
            task["updated_at"] = now
            task["version"] += 1
            self._changed()
            heapq.heappush(self._state.tombstone_times, (now, task_id))
            return task_json(task)

    def list_page(
        self,
        *,
        limit: int,
        cursor: str | None,
        updated_since: datetime | None,
        include_deleted: bool,
    ) -> dict[str, Any]:
        """One page ordered by (updated_at, id); the cursor holds the last position and filters."""
        filters = {
            "updated_since": format_time(updated_since) if updated_since else None,
            "include_deleted": include_deleted,
        }
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            after, carried = decode_cursor(cursor)
            if carried != filters:
                raise invalid(
                    "cursor was issued for other filters; repeat the same updated_since and "
                    "include_deleted (or none) with it",
                    field="cursor",
                    code="cursor_mismatch",
                )
        with self._lock:
            self._purge()
            # The tasks in order are sorted once per change of the tasks and filters, and each
            # page is found by bisection: a full listing of n tasks was n / limit sorts (or
            # scans) of every task.
            listing = (self._changes, include_deleted, updated_since)
            if self._listing is None or self._listing[0] != listing:
                rows = sorted(
                    (
                        t
                        for t in self._state.tasks.values()
                        if (include_deleted or t["deleted_at"] is None)
                        and (updated_since is None or t["updated_at"] >= updated_since)
                    ),
                    key=_position,
                )
                self._listing = (listing, rows, [_position(t) for t in rows])
            _, rows, positions = self._listing
            start = bisect.bisect_right(positions, after) if after is not None else 0
            page = rows[start : start + limit]
            more = len(rows) > start + limit
            return {
                "tasks": [task_json(t) for t in page],
                "next_cursor": encode_cursor(_position(page[-1]), filters) if more else None,
            }

    # -- settings -----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        with self._lock:
            state = self._state
            return {
                "salesforce_sync_enabled": state.sync_enabled,
                "enabled_at": format_time(state.enabled_at) if state.enabled_at else None,
                "updated_at": (
                    format_time(state.settings_updated) if state.settings_updated else None
                ),
            }

    def put_settings(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("settings must be a JSON object")
        unknown = sorted(set(body) - {"salesforce_sync_enabled", "enabled_at", "updated_at"})
        if unknown:
            raise invalid(f"unknown settings: {', '.join(unknown)}", field=unknown[0])
        enabled = body.get("salesforce_sync_enabled")
        if not isinstance(enabled, bool):
            raise invalid(
                "salesforce_sync_enabled (true or false) is required",
                field="salesforce_sync_enabled",
            )
        for name in ("enabled_at", "updated_at"):  # read-only: accepted and ignored
            if body.get(name) is not None:
                parse_time(body[name], name)
        with self._lock:
            state = self._state
            now = self.now()
            if enabled and not state.sync_enabled:
                state.enabled_at = now
            elif not enabled:
                state.enabled_at = None
            state.sync_enabled = enabled
            state.settings_updated = now
        return self.settings()

    # -- internals ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            task_id = f"tsk_{self._ids.getrandbits(48):012x}"
            if task_id not in self._state.tasks:
                return task_id

    def _store(
        self, task_id: str, clean: dict[str, Any], assignee: str, created: datetime
    ) -> dict[str, Any]:
        task = {
            "id": task_id,
            "name": clean["name"],
            "status": clean["status"],
            "priority": clean["priority"],
            "due_date": clean["due_date"],
            "details": clean["details"],
            "type": clean["type"],
            "person": clean["person"],
            "assignee_id": assignee,
            "created_at": created,
            "updated_at": created,
            "version": 1,
            "deleted_at": None,
        }
        self._state.tasks[task_id] = task
        self._changed()
        return task

    def _changed(self) -> None:
        """The tasks changed (call with the lock held): the next listing sorts them again."""
        self._changes = getattr(self, "_changes", 0) + 1
        self._listing: tuple[Any, list[dict[str, Any]], list[Any]] | None = None

    def _live(self, task_id: str, include_deleted: bool = False) -> dict[str, Any]:
        self._purge()
        task = self._state.tasks.get(task_id)
        if task is None or (task["deleted_at"] is not None and not include_deleted):
            details = {"id": task_id}
            if task is not None:
                details["deleted_at"] = format_time(task["deleted_at"])
            raise ApiError(
                404, "not_found", "no such task (or it was deleted)", "not_found", details=details
            )
        return task

    def _check_version(self, task: dict[str, Any], expected: int | None) -> None:
        if expected is not None and expected != task["version"]:
            raise ApiError(
                412,
                "version_mismatch",
                f"the task is at version {task['version']}, not {expected}; "
                "re-read it and apply the change again",
                "conflict",
                details={"current": task_json(task)},
            )

    def _purge(self) -> None:
        """Drop tombstones older than the retention window and idempotency keys past theirs.

        Runs before every read and write, so it must not scan everything (that made 10,000
        creates cost 20 s of CPU): the heaps hold every tombstone and key in expiry order,
        and only the expired ones are popped. Exactly what a full scan would drop is dropped
        (same comparisons, at every call); an entry whose task or key has changed since it
        was pushed is checked against the current one before anything is deleted. A clock
        set back later does not bring anything back, as before.
        """
        now = self.now()
        state = self._state
        tomb_limit = now - timedelta(days=TOMBSTONE_DAYS)
        while state.tombstone_times and state.tombstone_times[0][0] < tomb_limit:
            _deleted_at, task_id = heapq.heappop(state.tombstone_times)
            task = state.tasks.get(task_id)
            if task is not None and task["deleted_at"] and task["deleted_at"] < tomb_limit:
                del state.tasks[task_id]
                self._changed()
        key_limit = now - timedelta(hours=IDEMPOTENCY_TTL_HOURS)
        while state.key_times and state.key_times[0][0] < key_limit:
            _created, key = heapq.heappop(state.key_times)
            entry = state.keys.get(key)
            if entry is not None and entry.created < key_limit:
                del state.keys[key]


def _position(task: dict[str, Any]) -> tuple[datetime, str]:
    return (task["updated_at"], task["id"])


def _auth_error(code: str, message: str) -> ApiError:
    return ApiError(
        401,
        code,
        message,
        "auth",
        headers={"WWW-Authenticate": 'Bearer realm="salesconnect", error="invalid_token"'},
    )


def rate_limited(retry_after: int | None) -> ApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    details = {"retry_after": retry_after} if retry_after is not None else {}
    return ApiError(
        429,
        "rate_limited",
        "too many requests; wait before trying again",
        "rate_limit",
        retryable=True,
        details=details,
        headers=headers,
    )
