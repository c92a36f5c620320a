"""Sales Connect client for the contract in docs/salesconnect-api.md.

The one adapter between reminder-sync and Sales Connect: a real endpoint with other paths or
names is fitted here, and the engine keeps receiving task dicts shaped as the contract's task.

- Auth: OAuth client credentials at the token URL; the access token is cached (in memory and, when
  a secret store is given, in it) and fetched again when it expires or a call gets 401, once per
  stale token however many calls are in flight.
- Reads: `GET /tasks` with `include_deleted=true`, following `next_cursor` to the end.
- Writes: `POST /tasks/batch` in chunks of 200: creates carry their idempotency key (so a batch of
  creates is safe to resend after a timeout), updates and deletes their `if_match` version.
- Every request goes through `sync.connectors.http.send`: timeouts, retries with backoff,
  Retry-After, redaction. Text from the server is cleaned before it reaches an error message.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from sync.config import SC_ACCESS_TOKEN, SC_CLIENT_SECRET, default_token_url
from sync.connectors.http import (
    CATEGORIES,
    RetryPolicy,
    ServiceError,
    make_client,
    read_ahead,
    response_json,
    send,
)

SERVICE = "salesconnect"
BATCH_SIZE = 200  # the contract's batch limit
PAGE_SIZE = 200  # the contract's largest page
TOMBSTONE_RETENTION = timedelta(days=15)  # older deletes are gone from the change feed
_EXPIRY_MARGIN = 30.0  # seconds: get a new token a little before the old one runs out
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


class SecretStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one write of a batch: `task` as the server holds it now when `ok`."""

    id: str | None
    ok: bool
    task: dict[str, Any] | None
    error: ServiceError | None


# ---------------------------------------------------------------------------------------------
# Errors


def clean_text(value: Any, limit: int = 300) -> str:
    """Server text made safe for a message: control and bidi characters dropped, cut short."""
    text = _CONTROL.sub("", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_HINTS = {
    "auth": " Check the Sales Connect connection (reminder-sync connect salesconnect).",
    "rate_limit": " The next sync tries again.",
    "transient": " The next sync tries again.",
    "conflict": " The task changed meanwhile; the next sync reads it again.",
}


def error_from_envelope(body: Any, status: int | None) -> ServiceError | None:
    """A ServiceError from the contract's error envelope, or None if `body` is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    category = body.get("category")
    if category not in CATEGORIES:
        category = "internal" if (status or 500) >= 500 else "validation"
    message = clean_text(body.get("message") or body["code"])
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    field = details.get("field")
    where = f" (field {clean_text(field, 60)})" if isinstance(field, str) and field else ""
    return ServiceError(
        f"Sales Connect: {message}{where}.{_HINTS.get(category, '')}",
        service=SERVICE,
        category=category,
        retryable=body.get("retryable") is True,
        status=status,
        code=clean_text(body["code"], 60),
    )


def classify(response: httpx.Response) -> ServiceError | None:
    try:
        body = response_json(response)
    except ValueError:
        return None
    return error_from_envelope(body, response.status_code)


def _malformed(what: str) -> ServiceError:
    return ServiceError(
        f"Sales Connect sent an answer reminder-sync cannot read: {what}. Nothing was changed "
        "locally; if this keeps happening, the endpoint does not speak the documented contract.",
        service=SERVICE,
        category="internal",
        code="MALFORMED_RESPONSE",
    )


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response_json(response)
    except ValueError:
        raise _malformed(f"{what} is not JSON") from None


def _task_problem(task: Any) -> str:
    """What is wrong with a task object, after its name in the message ("" if nothing)."""
    if not isinstance(task, dict):
        return "is not an object"
    if not isinstance(task.get("id"), str) or not task["id"]:
        return "has no id"
    version = task.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return f"({clean_text(task['id'], 40)}) has no integer version"
    return ""


def _check_task(task: Any, what: str) -> dict[str, Any]:
    if problem := _task_problem(task):
        raise _malformed(f"{what} {problem}")
    return task


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the contract writes times."""
    if moment.tzinfo is None:
        raise ValueError("updated_since must carry a time zone")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _store_failure(exc: Exception, what: str) -> ServiceError:
    # The store's own message says what to do (unlock the keyring...) and never holds a value.
    return ServiceError(
        f"Could not {what} the Sales Connect login in the keyring: {clean_text(exc, 400)}",
        service=SERVICE,
        category="auth",
        retryable=True,
        code="SECRET_STORE",
    )


async def _from_store(call: Awaitable[Any], what: str) -> Any:
    """A secret-store call whose failure (locked, hanging or missing keyring) becomes a
    ServiceError, so the run ends with the store's advice instead of an internal error."""
    try:
        return await call
    except ServiceError:
        raise
    except Exception as exc:
        raise _store_failure(exc, what) from None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# Tokens


class TokenSource:
    """Client-credentials tokens: cached, renewed before expiry, single-flight on 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str,
        client_id: str,
        secret: Callable[[], Awaitable[str | None]],
        store: SecretStore | None,
        policy: RetryPolicy,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._secret = secret
        self._store = store
        self._policy = policy
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at: float | None = None  # time.monotonic(); None = unknown
        self._loaded = False
        self.grants = 0  # tokens obtained by this source

    def __repr__(self) -> str:
        return f"TokenSource(token_url={self._token_url!r}, client_id={self._client_id!r})"

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or time.monotonic() < self._expires_at - _EXPIRY_MARGIN

    async def token(self) -> str:
        if not self._fresh():
            async with self._lock:
                if not self._loaded:
                    if self._store is not None:
                        self._token = await _from_store(self._store.get(SC_ACCESS_TOKEN), "read")
                    self._loaded = True  # only once read: a failed read is tried again
                if not self._fresh():
                    await self._obtain()
        assert self._token is not None
        return self._token

    def hooks(
        self,
    ) -> tuple[Callable[[], Awaitable[dict[str, str]]], Callable[[], Awaitable[None]]]:
        """(headers_factory, on_unauthorized) for one `send`: a 401 renews the token only if no
        other request has renewed it since this one was sent."""
        used: list[str | None] = [None]

        async def headers_factory() -> dict[str, str]:
            used[0] = await self.token()
            return {"Authorization": f"Bearer {used[0]}"}

        async def on_unauthorized() -> None:
            async with self._lock:
                if self._token is None or self._token == used[0]:
                    await self._obtain()

        return headers_factory, on_unauthorized

    async def _obtain(self) -> None:
        secret = await self._secret()
        if not secret:
            raise ServiceError(
                "No Sales Connect client secret is saved. Connect first: "
                "reminder-sync connect salesconnect --base-url URL --client-id ID --secret-stdin",
                service=SERVICE,
                category="auth",
                code="NOT_CONNECTED",
            )
        response = await send(
            self._http,
            "POST",
            self._token_url,
            policy=self._policy,
            idempotent=True,
            classify=classify,
            service=SERVICE,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": secret,
            },
        )
        body = _json(response, "the token answer")
        token = body.get("access_token") if isinstance(body, dict) else None
        kind = body.get("token_type") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or str(kind).lower() != "bearer":
            raise _malformed("the token answer has no bearer access_token")
        lifetime = body.get("expires_in")
        valid_lifetime = isinstance(lifetime, int | float) and not isinstance(lifetime, bool)
        self._expires_at = time.monotonic() + lifetime if valid_lifetime else None
        self._token = token
        self.grants += 1
        if self._store is not None:
            await _from_store(self._store.set(SC_ACCESS_TOKEN, token), "save")


# ---------------------------------------------------------------------------------------------
# The client


class SalesConnectClient:
    """Async client of the Sales Connect contract; returns the contract's task dicts.

    `base_url` is the API root (e.g. https://host/api/v1); `token_url` defaults to
    `{base_url}/oauth/token`. The client secret comes from `client_secret` or, when absent, from
    `secrets` (the keyring) under `salesconnect.client_secret`; the access token is cached in
    `secrets` under `salesconnect.access_token` when a store is given.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str | None = None,
        token_url: str | None = None,
        secrets: SecretStore | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {PAGE_SIZE}")
        self.base_url = base_url.rstrip("/")
        self._policy = policy or RetryPolicy()
        self._page_size = page_size
        self._http = make_client(
            self.base_url + "/", transport=transport, timeout=self._policy.request_timeout
        )
        self._http.event_hooks["response"].append(self._count)
        self.calls = 0

        async def secret() -> str | None:
            if client_secret is not None:
                return client_secret
            if secrets is None:
                return None
            return await _from_store(secrets.get(SC_CLIENT_SECRET), "read")

        self.tokens = TokenSource(
            self._http,
            token_url=token_url or default_token_url(self.base_url),
            client_id=client_id,
            secret=secret,
            store=secrets,
            policy=self._policy,
        )

    @classmethod
    def from_connection(
        cls,
        *,
        base_url: str,
        token_url: str | None,
        client_id: str,
        secrets: SecretStore,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> SalesConnectClient:
        """The client for a saved connection: secret and token live in `secrets`."""
        return cls(
            base_url,
            client_id=client_id,
            token_url=token_url,
            secrets=secrets,
            transport=transport,
            policy=policy,
        )

    def __repr__(self) -> str:
        return f"SalesConnectClient({self.base_url!r})"

    async def __aenter__(self) -> SalesConnectClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _count(self, response: httpx.Response) -> None:
        self.calls += 1

    async def _call(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        headers_factory, on_unauthorized = self.tokens.hooks()
        return await send(
            self._http,
            method,
            path,
            policy=self._policy,
            idempotent=idempotent,
            headers_factory=headers_factory,
            on_unauthorized=on_unauthorized,
            classify=classify,
            service=SERVICE,
            **kwargs,
        )

    # -- reads --------------------------------------------------------------------------------

    async def me(self) -> str:
        """The calling user's id (what `assignee_id` holds for the user's own tasks)."""
        body = _json(await self._call("GET", "me", idempotent=True), "GET /me")
        user_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise _malformed("GET /me has no user id")
        return user_id

    async def changed_tasks(self, updated_since: datetime | None) -> list[dict[str, Any]]:
        """Every task (tombstones included) with `updated_at >= updated_since`, all pages.

        A task seen twice while paging (it changed meanwhile) is returned once, at its highest
        version. Deletes older than TOMBSTONE_RETENTION are no longer in the feed.
        """
        found: dict[str, dict[str, Any]] = {}
        async with aclosing(self.changed_task_pages(updated_since)) as pages:
            async for tasks in pages:
                for task in tasks:
                    known = found.get(task["id"])
                    if known is None or task["version"] >= known["version"]:
                        found[task["id"]] = task
        return list(found.values())

    async def changed_task_pages(
        self, updated_since: datetime | None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The pages of `changed_tasks` as they come (each task checked), so that a caller that
        converts each page never holds every raw task of a big read at once. A task that
        changed while paging may be in two pages: keep the highest version, as
        `changed_tasks` does."""
        params = {"include_deleted": "true", "limit": str(self._page_size)}
        if updated_since is not None:
            params["updated_since"] = format_time(updated_since)
        seen_cursors: set[str] = set()

        async def page_at(number: int, cursor: str | None) -> tuple[int, dict[str, Any]]:
            at = {**params, "cursor": cursor} if cursor else params
            response = await self._call("GET", "tasks", idempotent=True, params=at)
            body = _json(response, f"page {number} of GET /tasks")
            if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
                raise _malformed(f"page {number} of GET /tasks has no task list")
            return number, body

        def call_after(
            page: tuple[int, dict[str, Any]],
        ) -> Awaitable[tuple[int, dict[str, Any]]] | None:
            number, body = page
            cursor = body.get("next_cursor")
            if cursor is None:
                return None
            if not isinstance(cursor, str) or not cursor or cursor in seen_cursors:
                raise _malformed(f"page {number} of GET /tasks has a bad or repeated next_cursor")
            seen_cursors.add(cursor)
            return page_at(number + 1, cursor)

        async with aclosing(read_ahead(page_at(1, None), call_after)) as pages:
            async for number, body in pages:
                tasks = body["tasks"]
                for index, raw in enumerate(tasks):  # the message is made only when needed
                    if problem := _task_problem(raw):
                        raise _malformed(f"task {index + 1} of page {number} {problem}")
                yield tasks

    async def get_task(self, task_id: str, include_deleted: bool = False) -> dict[str, Any] | None:
        """The task, or None when it does not exist or was deleted (a 404)."""
        params = {"include_deleted": "true"} if include_deleted else {}
        try:
            response = await self._call(
                "GET", f"tasks/{quote(task_id, safe='')}", idempotent=True, params=params
            )
        except ServiceError as error:
            if error.status == 404:
                return None
            raise
        return _check_task(_json(response, "GET /tasks/{id}"), "the task")

    async def get_settings(self) -> dict[str, Any]:
        return self._settings(await self._call("GET", "settings", idempotent=True))

    async def put_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return self._settings(await self._call("PUT", "settings", idempotent=True, json=settings))

    @staticmethod
    def _settings(response: httpx.Response) -> dict[str, Any]:
        body = _json(response, "the settings")
        if not isinstance(body, dict) or not isinstance(body.get("salesforce_sync_enabled"), bool):
            raise _malformed("the settings have no salesforce_sync_enabled")
        return body

    # -- writes -------------------------------------------------------------------------------

    async def create(self, items: list[tuple[str, dict[str, Any]]]) -> list[ItemResult]:
        """Create each (idempotency key, task body). Resending a key returns the task it made,
        so the whole batch is retried after timeouts and lost connections."""
        operations = [{"op": "create", "idempotency_key": key, "task": body} for key, body in items]
        return await self._batch(operations, idempotent=True)

    async def update(self, items: list[tuple[str, int | None, dict[str, Any]]]) -> list[ItemResult]:
        """Apply each (id, expected version, changes). A stale version comes back as an error
        of category "conflict" (`ServiceError.code == "version_mismatch"`).

        Not resent after an ambiguous failure (timeout, 5xx other than 503): the first attempt
        may have applied it, and its replay would report a false conflict."""
        operations = []
        for task_id, version, changes in items:
            operation: dict[str, Any] = {"op": "update", "id": task_id, "changes": changes}
            if version is not None:
                operation["if_match"] = version
            operations.append(operation)
        return await self._batch(operations, idempotent=False)

    async def delete(self, items: list[tuple[str, int | None]]) -> list[ItemResult]:
        """Delete each (id, expected version or None). A task already gone is an error of
        category "not_found"; resending is safe (a replayed delete finds it gone)."""
        operations = []
        for task_id, version in items:
            operation: dict[str, Any] = {"op": "delete", "id": task_id}
            if version is not None:
                operation["if_match"] = version
            operations.append(operation)
        return await self._batch(operations, idempotent=True)

    async def _batch(
        self, operations: list[dict[str, Any]], *, idempotent: bool
    ) -> list[ItemResult]:
        results: list[ItemResult] = []
        for chunk in _chunks(operations, BATCH_SIZE):
            response = await self._call(
                "POST", "tasks/batch", idempotent=idempotent, json={"operations": list(chunk)}
            )
            body = _json(response, "the batch answer")
            entries = body.get("results") if isinstance(body, dict) else None
            if not isinstance(entries, list) or len(entries) != len(chunk):
                raise _malformed(f"the batch answer does not hold {len(chunk)} results")
            results.extend(
                _item_result(entry, op) for entry, op in zip(entries, chunk, strict=True)
            )
        return results


def _item_result(entry: Any, operation: dict[str, Any]) -> ItemResult:
    if not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
        raise _malformed("a batch result has no ok flag")
    status = entry.get("status") if isinstance(entry.get("status"), int) else None
    if entry["ok"]:
        task = _check_task(entry.get("task"), "a batch result's task")
        return ItemResult(id=task["id"], ok=True, task=task, error=None)
    error = error_from_envelope(entry.get("error"), status) or ServiceError(
        f"Sales Connect refused a {operation['op']} without saying why (status {status}).",
        service=SERVICE,
        category="internal",
        status=status,
        code="UNKNOWN",
    )
    return ItemResult(id=operation.get("id"), ok=False, task=None, error=error)
