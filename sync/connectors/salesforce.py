"""The Salesforce REST client the engine uses (pinned API version, raw record dicts).

Reads: SOQL `query`/`queryAll` pages (following `nextRecordsUrl`, only on the instance host),
Task changes by `SystemModstamp` watermark, deleted ids from `/sobjects/Task/deleted/`.
Writes: sObject Collections (`/composite/sobjects`) in batches of 200 with `allOrNone=false`, one
`RecordResult` per record. Errors: Salesforce's error array becomes a `ServiceError` with a
category the engine can act on.

Decisions worth knowing:

- `REQUEST_LIMIT_EXCEEDED` (the org's daily API allocation) is never retried. Salesforce counts
  calls over a rolling 24 hours, so no exact reset time exists; `retry_at` is one hour ahead
  (`LIMIT_RETRY_AFTER`), when enough calls may have aged out. One call an hour cannot spin.
- `UNABLE_TO_LOCK_ROW` on a whole request is transient (retried by `send` for idempotent calls);
  inside a collection result it is retried for just those records, for update and delete only (a
  create is never replayed blindly).
- `deleted_ids` works at Salesforce's minute granularity: the start is floored to the minute.
- `find_by_external_id` uses `query` (live rows only): a task created and then deleted is gone.
- `calls` counts every HTTP response received (retries included), for benchmarks.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from sync.connectors.http import (
    RetryPolicy,
    ServiceError,
    make_client,
    read_ahead,
    response_json,
    safe_url,
    send,
)
from sync.connectors.salesforce_auth import SalesforceSession, clean_text
from sync.model import quick_init, remember_last

log = logging.getLogger(__name__)

SERVICE = "salesforce"
API_VERSION = "v62.0"
BATCH_SIZE = 200  # sObject Collections limit
QUERY_IN_BATCH = 200  # values per IN (...) clause, far below SOQL's 100k-character limit
WATERMARK_OVERLAP = timedelta(minutes=2)
DELETED_WINDOW = timedelta(days=15)
LIMIT_RETRY_AFTER = timedelta(hours=1)
LOCK_RETRIES = 3
TASK_FIELDS: tuple[str, ...] = (
    "Id",
    "Subject",
    "Status",
    "Priority",
    "ActivityDate",
    "Description",
    "OwnerId",
    "TaskSubtype",
    "IsRecurrence",
    "RecurrenceActivityId",
    "IsDeleted",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
)

# Records handed over at a time by `changed_task_pages` (a query page's default size).
# Records handed to the caller at a time by `changed_task_pages` (the API's own pages stay at
# 2,000 records: the query's calls do not change). Small, so that handing over a page (each
# record's stamp is parsed first) is one short step of the event loop the dashboard shares.
CHANGES_PAGE = 250

_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")

_VALIDATION_CODES = frozenset(
    {
        "STRING_TOO_LONG",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "MALFORMED_QUERY",
        "MALFORMED_ID",
        "INVALID_ID_FIELD",
        "INVALID_TYPE",
        "INVALID_CROSS_REFERENCE_KEY",
        "REQUIRED_FIELD_MISSING",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "FIELD_INTEGRITY_EXCEPTION",
        "JSON_PARSER_ERROR",
        "INVALID_REPLICATION_DATE",
        "DUPLICATE_VALUE",
        "INVALID_QUERY_FILTER_OPERATOR",
        "EXCEEDED_ID_LIMIT",
    }
)
_AUTH_CODES = frozenset(
    {
        "INVALID_SESSION_ID",
        "INVALID_AUTH_HEADER",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
    }
)
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})
_TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})


@dataclass(frozen=True)
class LimitInfo:
    """The org's daily API usage as the last response's `Sforce-Limit-Info` told it."""

    used: int | None = None
    max: int | None = None


@quick_init
@dataclass(frozen=True)
class RecordResult:
    """One record's outcome in a collection call; `errors` are Salesforce's error dicts."""

    id: str | None
    success: bool
    errors: tuple[dict[str, Any], ...] = field(default=())

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(str(e.get("statusCode") or e.get("errorCode") or "") for e in self.errors)


# ---------------------------------------------------------------------------------------------
# Errors


def _hint(category: str) -> str:
    return {
        "auth": " Log in to Salesforce again: reminder-sync connect salesforce.",
        "not_found": "",
        "validation": "",
        "transient": " The next sync retries.",
        "rate_limit": " The next sync retries.",
    }.get(category, "")


def error_from_salesforce(
    code: str, message: str, status: int | None, fields: Iterable[str] = ()
) -> ServiceError:
    """A ServiceError for one Salesforce error code (category, retryability, retry_at)."""
    code = clean_text(code, 80) or f"HTTP_{status}"
    message = clean_text(message, 400)
    names = ", ".join(clean_text(f, 80) for f in fields)
    detail = f"Salesforce {code}: {message}" + (f" (fields: {names})" if names else "")
    if code == "REQUEST_LIMIT_EXCEEDED":
        retry_at = datetime.now(UTC) + LIMIT_RETRY_AFTER
        return ServiceError(
            f"{detail}. The org's daily API limit is used up; syncing stops until "
            f"{retry_at:%H:%M} UTC (Salesforce counts the last 24 hours, calls free up as they "
            "age).",
            service=SERVICE,
            category="limit",
            retryable=False,
            status=status,
            code=code,
            retry_at=retry_at,
        )
    if code in _AUTH_CODES:
        category, retryable = "auth", False
    elif code in _NOT_FOUND_CODES:
        category, retryable = "not_found", False
    elif code in _TRANSIENT_CODES:
        category, retryable = "transient", True
    elif code in _VALIDATION_CODES:
        category, retryable = "validation", False
    elif status == 429:
        category, retryable = "rate_limit", True
    elif status is not None and status >= 500:
        category, retryable = "transient", True
    elif status == 404:
        category, retryable = "not_found", False
    elif status in (401, 403):
        category, retryable = "auth", False
    else:
        category, retryable = "validation", False
    return ServiceError(
        detail + "." + _hint(category),
        service=SERVICE,
        category=category,
        retryable=retryable,
        status=status,
        code=code,
    )


def classify_response(response: httpx.Response) -> ServiceError | None:
    """Salesforce's error array (or a lone error object) -> ServiceError; None if no such body."""
    try:
        body = response_json(response)
    except ValueError:
        return None
    if response.status_code == 300 and isinstance(body, list):
        # An external-id lookup or upsert matched several records: body lists their URLs.
        return ServiceError(
            f"Salesforce found {len(body)} records for one external id; "
            "resolve the duplicates in Salesforce.",
            service=SERVICE,
            category="conflict",
            status=300,
            code="MULTIPLE_CHOICES",
        )
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
    elif isinstance(body, dict) and ("errorCode" in body or "error" in body):
        first = body
    else:
        return None
    code = first.get("errorCode") or first.get("statusCode") or first.get("error") or ""
    message = first.get("message") or first.get("error_description") or ""
    fields = first.get("fields") if isinstance(first.get("fields"), list) else ()
    return error_from_salesforce(str(code), str(message), response.status_code, fields)


def _malformed(what: str, *, retryable: bool) -> ServiceError:
    return ServiceError(
        f"Salesforce sent a response that could not be read ({what})."
        + (" Nothing was changed; the next sync retries." if retryable else ""),
        service=SERVICE,
        category="transient" if retryable else "internal",
        retryable=retryable,
        code="MALFORMED_RESPONSE",
    )


# ---------------------------------------------------------------------------------------------
# SOQL helpers


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal in UTC, e.g. 2026-03-02T12:00:00Z."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    escaped = (
        str(value)
        .replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def check_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ServiceError(
            f"{clean_text(value, 40)!r} is not a Salesforce id.",
            service=SERVICE,
            category="validation",
            code="MALFORMED_ID",
        )
    return value


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce's '2026-03-02T12:00:00.000+0000' (or ...Z) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# The client


class SalesforceClient:
    """Async Salesforce REST client over one httpx client; see the module docstring."""

    def __init__(
        self,
        session: SalesforceSession,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        self._session = session
        self._policy = policy or RetryPolicy()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.api_version = api_version
        self.calls = 0
        self.limits = LimitInfo()
        self.deleted_coverage: dict[str, str] = {}  # earliest/latest dates of the last read
        # After `changed_tasks`: the SystemModstamp a caller may store as its watermark for the
        # records it was given (see `changed_tasks`); None when nothing safe is known.
        self.changes_watermark: str | None = None

    async def __aenter__(self) -> SalesforceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- plumbing -----------------------------------------------------------------------------

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            await self._session.start()
            self._http = make_client(
                self._session.instance_url,
                transport=self._transport,
                timeout=self._policy.request_timeout,
            )
            self._http.event_hooks["response"].append(self._observe)
        return self._http

    async def _observe(self, response: httpx.Response) -> None:
        """Every response: count the call, read Sforce-Limit-Info."""
        self.calls += 1
        match = _LIMIT_INFO.search(response.headers.get("sforce-limit-info", ""))
        if match:
            self.limits = LimitInfo(used=int(match.group(1)), max=int(match.group(2)))

    def _url(self, path: str) -> str:
        base = self._session.instance_url
        if path.startswith("/services/"):
            return base + path
        return f"{base}/services/data/{self.api_version}/{path.lstrip('/')}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """Send under the policy and return the decoded JSON body (None for 204)."""
        return _json_body(
            await self._send(method, path, idempotent=idempotent, params=params, json=json),
            method,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send under the policy; the response (its headers too) for `_json_body`."""
        client = await self._client()
        headers_factory, on_unauthorized = self._session.auth_hooks()
        kwargs: dict[str, Any] = {}
        if params is not None:
            kwargs["params"] = params
        if json is not None:
            kwargs["json"] = json
        response = await send(
            client,
            method,
            self._url(path),
            policy=self._policy,
            idempotent=idempotent,
            headers_factory=headers_factory,
            on_unauthorized=on_unauthorized,
            classify=classify_response,
            service=SERVICE,
            **kwargs,
        )
        return response

    # -- identity and picklists ---------------------------------------------------------------

    async def user_id(self) -> str:
        """The connected user's id (from the login's identity URL, else from userinfo)."""
        await self._client()
        if self._session.user_id:
            return self._session.user_id
        body = await self._request("GET", "/services/oauth2/userinfo", idempotent=True)
        if not isinstance(body, dict) or not isinstance(body.get("user_id"), str):
            raise _malformed("userinfo without user_id", retryable=True)
        return check_id(body["user_id"])

    async def picklists(self) -> dict[str, list[dict[str, Any]]]:
        """The org's Task Status and Priority values, in the org's order."""
        statuses = [
            {
                "value": row.get("ApiName") or row.get("MasterLabel"),
                "label": row.get("MasterLabel"),
                "isClosed": bool(row.get("IsClosed")),
                "isDefault": bool(row.get("IsDefault")),
            }
            for row in await self._records(
                "SELECT ApiName, MasterLabel, IsClosed, IsDefault, SortOrder FROM TaskStatus "
                "ORDER BY SortOrder"
            )
        ]
        priorities = [
            {
                "value": row.get("ApiName") or row.get("MasterLabel"),
                "label": row.get("MasterLabel"),
                "isDefault": bool(row.get("IsDefault")),
                "isHighPriority": bool(row.get("IsHighPriority")),
            }
            for row in await self._records(
                "SELECT ApiName, MasterLabel, IsDefault, IsHighPriority, SortOrder "
                "FROM TaskPriority ORDER BY SortOrder"
            )
        ]
        return {"Status": statuses, "Priority": priorities}

    # -- queries ------------------------------------------------------------------------------

    def query(self, soql: str) -> AsyncGenerator[dict[str, Any], None]:
        """Records of a SOQL query, page after page."""
        return self._pages("query", soql)

    def query_all(self, soql: str) -> AsyncGenerator[dict[str, Any], None]:
        """Like `query`, including deleted (recycle bin) and archived rows."""
        return self._pages("queryAll", soql)

    async def _records(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a `query`; a read-ahead request is not left behind on a failure."""
        async with aclosing(self._pages("query", soql)) as records:
            return [record async for record in records]

    async def _pages(
        self,
        resource: str,
        soql: str,
        on_first_page: Callable[[httpx.Response], None] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        seen: set[str] = set()

        async def first_page() -> Any:
            response = await self._send("GET", resource, idempotent=True, params={"q": soql})
            if on_first_page is not None:
                on_first_page(response)
            return _json_body(response, "GET")

        def call_after(body: Any) -> Awaitable[Any] | None:
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise _malformed(f"{resource} result without records", retryable=True)
            if body.get("done") is True:
                return None
            next_url = body.get("nextRecordsUrl")
            if not isinstance(next_url, str) or not next_url:
                raise _malformed(
                    f"{resource} page says done=false but has no nextRecordsUrl", retryable=True
                )
            if next_url in seen:
                raise _malformed(
                    f"{resource} repeats the page {safe_url(next_url)}", retryable=True
                )
            seen.add(next_url)
            return self._request("GET", self._next_page_path(next_url), idempotent=True)

        async with aclosing(read_ahead(first_page(), call_after)) as bodies:
            async for body in bodies:
                for record in body["records"]:
                    if not isinstance(record, dict):
                        raise _malformed(f"{resource} record is not an object", retryable=True)
                    yield record

    def _next_page_path(self, next_url: str) -> str:
        """Only follow a next page on our own instance, under /services/data/."""
        parts = urlsplit(next_url)
        instance = urlsplit(self._session.instance_url)
        if next_url.startswith("//") or (
            parts.netloc and (parts.scheme, parts.netloc) != (instance.scheme, instance.netloc)
        ):
            raise ServiceError(
                "Salesforce pointed the next page of a query at another host "
                f"({clean_text(parts.hostname or '', 100)}); refusing to follow it.",
                service=SERVICE,
                category="internal",
                code="UNTRUSTED_NEXT_PAGE",
            )
        if not parts.path.startswith("/services/data/") or ".." in parts.path:
            raise ServiceError(
                "Salesforce pointed the next page of a query outside the REST API; "
                "refusing to follow it.",
                service=SERVICE,
                category="internal",
                code="UNTRUSTED_NEXT_PAGE",
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # -- change detection ---------------------------------------------------------------------

    async def changed_tasks(self, owner_id: str, since: datetime | None) -> list[dict[str, Any]]:
        """The user's tasks whose SystemModstamp >= since - overlap, deleted rows included
        (all of `changed_task_pages` in one list).

        Also sets `changes_watermark`: what the caller may store as its next `since` once it
        has dealt with these records. That is the newest SystemModstamp returned, moved up to
        the org's time when the query ran minus the overlap, if Salesforce said that time
        (the `Date` header of the first page).

        Why that is safe: the overlap exists because a record's SystemModstamp is taken inside
        its transaction, which may commit (become visible) a little later, so a record can
        appear with a stamp earlier than a query that did not see it. We assume, as the
        overlap always has, that a transaction commits within WATERMARK_OVERLAP of its stamp.
        Then when the query ran at org time T, every record stamped before T - overlap was
        already visible and is in this answer (or older than `since`, or seen before), and a
        record still to appear has a stamp after T - overlap. The next read starts at
        watermark - overlap = T - 2 x overlap at the latest, so such a record, whatever stamp
        it lands with inside the overlap, is read. Without this, the watermark stays at the
        last change: after a bulk import, every later run re-reads the whole import (all of
        it is stamped within two minutes of its newest record) until something else changes.
        The query's time comes from Salesforce, never from this machine's clock (which may be
        off); a `Date` that is missing, unreadable, or more than a day ahead of this machine's
        clock (no org is; a broken proxy might be) is not used, and the watermark then stays
        at the newest stamp, as before.
        """
        records: list[dict[str, Any]] = []
        async with aclosing(self.changed_task_pages(owner_id, since)) as pages:
            async for page in pages:
                records.extend(page)
        return records

    async def changed_task_pages(
        self, owner_id: str, since: datetime | None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """`changed_tasks` a page (CHANGES_PAGE records) at a time, so that a caller that
        converts each page as it comes never holds every raw record of a big read at once (the
        50,000 records of a first import would be about 60 MB). `changes_watermark` is set
        once the last page has been taken."""
        soql = f"SELECT {', '.join(TASK_FIELDS)} FROM Task WHERE OwnerId = '{check_id(owner_id)}'"
        if since is not None:
            soql += f" AND SystemModstamp >= {soql_datetime(since - WATERMARK_OVERLAP)}"
        soql += " ORDER BY SystemModstamp ASC, Id ASC"
        self.changes_watermark = None
        queried_at: list[datetime] = []

        def note_time(response: httpx.Response) -> None:
            when = _server_time(response)
            if when is not None:
                queried_at.append(when)

        newest: datetime | None = None
        newest_stamp: str | None = None
        page: list[dict[str, Any]] = []
        async with aclosing(self._pages("queryAll", soql, note_time)) as records:
            async for record in records:
                stamp = record.get("SystemModstamp")
                when = _parse_stamp(stamp)
                if when is not None and (newest is None or when > newest):
                    newest, newest_stamp = when, stamp
                page.append(record)
                if len(page) >= CHANGES_PAGE:
                    yield page
                    page = []
        if page:
            yield page
        floor = queried_at[0] - WATERMARK_OVERLAP if queried_at else None
        if floor is not None and (newest is None or floor > newest):
            self.changes_watermark = _format_stamp(floor)
        else:
            self.changes_watermark = newest_stamp

    async def deleted_ids(self, start: datetime, end: datetime) -> list[dict[str, str]]:
        """Tasks deleted between start and end: [{"id", "deletedDate"}].

        Raises ServiceError(code="INVALID_REPLICATION_DATE") when `start` is older than
        Salesforce keeps deletion records (15 days): the caller must then reconcile directly.
        """
        start = start.astimezone(UTC).replace(second=0, microsecond=0)
        end = end.astimezone(UTC).replace(second=0, microsecond=0)
        if end <= start:
            end = start + timedelta(minutes=1)
        params = {"start": _replication_date(start), "end": _replication_date(end)}
        body = await self._request("GET", "sobjects/Task/deleted/", idempotent=True, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("deletedRecords"), list):
            raise _malformed("deleted result without deletedRecords", retryable=True)
        earliest = body.get("earliestDateAvailable")
        self.deleted_coverage = {
            "earliestDateAvailable": str(earliest or ""),
            "latestDateCovered": str(body.get("latestDateCovered") or ""),
        }
        if isinstance(earliest, str):
            try:
                if parse_sf_datetime(earliest) > start:
                    raise error_from_salesforce(
                        "INVALID_REPLICATION_DATE",
                        f"start {soql_datetime(start)} is before the earliest date available "
                        f"{clean_text(earliest, 40)}",
                        400,
                    )
            except ValueError:
                raise _malformed("earliestDateAvailable is not a date", retryable=True) from None
        result = []
        for entry in body["deletedRecords"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise _malformed("deleted record without id", retryable=True)
            result.append({"id": entry["id"], "deletedDate": str(entry.get("deletedDate") or "")})
        return result

    async def updated_ids(self, start: datetime, end: datetime) -> list[str]:
        """Ids of tasks updated between start and end (30-day window, minute granularity)."""
        start = start.astimezone(UTC).replace(second=0, microsecond=0)
        end = end.astimezone(UTC).replace(second=0, microsecond=0)
        if end <= start:
            end = start + timedelta(minutes=1)
        params = {"start": _replication_date(start), "end": _replication_date(end)}
        body = await self._request("GET", "sobjects/Task/updated/", idempotent=True, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise _malformed("updated result without ids", retryable=True)
        if not all(isinstance(i, str) for i in body["ids"]):
            raise _malformed("updated result with a non-string id", retryable=True)
        return list(body["ids"])

    # -- reads by id --------------------------------------------------------------------------

    async def get_task(
        self, task_id: str, fields: Sequence[str] = TASK_FIELDS
    ) -> dict[str, Any] | None:
        """One task by id; None when Salesforce answers 404 (it does not exist or is deleted)."""
        path = f"sobjects/Task/{check_id(task_id)}"
        try:
            body = await self._request(
                "GET", path, idempotent=True, params={"fields": ",".join(fields)}
            )
        except ServiceError as exc:
            if exc.category == "not_found" and exc.status == 404:
                return None
            raise
        if not isinstance(body, dict):
            raise _malformed("task record is not an object", retryable=True)
        return body

    async def retrieve(
        self, ids: list[str], fields: Sequence[str] = TASK_FIELDS
    ) -> dict[str, dict[str, Any] | None]:
        """Tasks by id; None for an id that does not exist or is deleted."""
        found: dict[str, dict[str, Any] | None] = {}
        for batch in _chunks([check_id(i) for i in ids], BATCH_SIZE):
            params = {"ids": ",".join(batch), "fields": ",".join(fields)}
            body = await self._request(
                "GET", "composite/sobjects/Task", idempotent=True, params=params
            )
            if not isinstance(body, list) or len(body) != len(batch):
                raise _malformed("retrieve result does not match the ids asked", retryable=True)
            for task_id, record in zip(batch, body, strict=True):
                found[task_id] = record if isinstance(record, dict) else None
        return found

    async def find_by_external_id(self, field_name: str, values: list[str]) -> dict[str, str]:
        """value -> Id of live tasks whose external-id field holds one of `values`."""
        if not _FIELD_NAME.match(field_name):
            raise ServiceError(
                f"{clean_text(field_name, 80)!r} is not a field name.",
                service=SERVICE,
                category="validation",
                code="INVALID_FIELD",
            )
        result: dict[str, str] = {}
        for batch in _chunks(list(dict.fromkeys(values)), QUERY_IN_BATCH):
            in_list = ", ".join(soql_string(v) for v in batch)
            soql = f"SELECT Id, {field_name} FROM Task WHERE {field_name} IN ({in_list})"
            for record in await self._records(soql):
                value = record.get(field_name)
                if isinstance(value, str) and isinstance(record.get("Id"), str):
                    result[value] = record["Id"]
        return result

    # -- writes -------------------------------------------------------------------------------

    async def create(self, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Insert tasks, 200 a call, allOrNone=false. Never replayed blindly."""
        results: list[RecordResult] = []
        for batch in _chunks(records, BATCH_SIZE):
            body = {"allOrNone": False, "records": [_with_type(r) for r in batch]}
            response = await self._request(
                "POST", "composite/sobjects", idempotent=False, json=body
            )
            results.extend(_record_results(response, len(batch), retryable=False))
        return results

    async def update(self, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Update tasks (each has "Id"), 200 a call; rows locked by another job are retried."""
        for record in records:
            check_id(record.get("Id", ""))

        async def one_batch(batch: Sequence[dict[str, Any]]) -> list[RecordResult]:
            body = {"allOrNone": False, "records": [_with_type(r) for r in batch]}
            response = await self._request(
                "PATCH", "composite/sobjects", idempotent=True, json=body
            )
            return _record_results(response, len(batch), retryable=True)

        return await self._write_with_lock_retry(records, one_batch)

    async def delete(self, ids: list[str]) -> list[RecordResult]:
        """Delete tasks, 200 a call; rows locked by another job are retried."""
        checked = [check_id(i) for i in ids]

        async def one_batch(batch: Sequence[str]) -> list[RecordResult]:
            params = {"ids": ",".join(batch), "allOrNone": "false"}
            response = await self._request(
                "DELETE", "composite/sobjects", idempotent=True, params=params
            )
            return _record_results(response, len(batch), retryable=True)

        return await self._write_with_lock_retry(checked, one_batch)

    async def _write_with_lock_retry(
        self,
        items: Sequence[Any],
        one_batch: Callable[[Sequence[Any]], Awaitable[list[RecordResult]]],
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        for batch in _chunks(items, BATCH_SIZE):
            batch_results = await one_batch(batch)
            for retry in range(LOCK_RETRIES):
                locked = [i for i, r in enumerate(batch_results) if _only_lock_errors(r)]
                if not locked:
                    break
                delay = min(self._policy.max_delay, self._policy.base_delay * 2**retry)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                log.info("retrying %d locked rows (attempt %d)", len(locked), retry + 2)
                again = await one_batch([batch[i] for i in locked])
                for index, result in zip(locked, again, strict=True):
                    batch_results[index] = result
            results.extend(batch_results)
        return results


def _json_body(response: httpx.Response, method: str) -> Any:
    """The decoded JSON body (None for 204); a clear error for anything else."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response_json(response)
    except ValueError:
        where = f"{method} {safe_url(response.request.url)}"
        raise _malformed(f"{where} is not JSON", retryable=method == "GET") from None


# No org's clock is this far ahead of ours; a Date header that is must not move a watermark.
SERVER_TIME_MAX_AHEAD = timedelta(days=1)


def _server_time(response: httpx.Response) -> datetime | None:
    """The org's time from the response `Date` header (whole seconds, rounded down by the
    server, so never later than the moment it answered); None if absent or not believable."""
    text = response.headers.get("date")
    if not text or "," in text.split(",", 1)[-1]:  # missing, or several Date headers
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    when = when.astimezone(UTC)
    if when - datetime.now(UTC) > SERVER_TIME_MAX_AHEAD:
        log.warning("Salesforce's Date header %s is more than a day ahead; not used", text[:40])
        return None
    return when


@remember_last(equal=True)  # in stamp order, a write's records share one stamp: parsed once
def _parse_stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_sf_datetime(value)
    except ValueError:
        return None


def _format_stamp(moment: datetime) -> str:
    """A datetime in Salesforce's own form (2026-11-30T10:00:00.000+0000)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}+0000"
    )


def _replication_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


_TASK_ATTRIBUTES = {"type": "Task"}


def _with_type(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("attributes") == _TASK_ATTRIBUTES:
        return record  # typed by the caller already (`SalesforceSide.create`): no copy
    return {
        "attributes": {"type": "Task"},
        **{k: v for k, v in record.items() if k != "attributes"},
    }


def _only_lock_errors(result: RecordResult) -> bool:
    return (
        not result.success
        and bool(result.errors)
        and all(code == "UNABLE_TO_LOCK_ROW" for code in result.codes)
    )


def _record_results(body: Any, expected: int, *, retryable: bool) -> list[RecordResult]:
    if not isinstance(body, list) or len(body) != expected:
        raise _malformed("collection result does not match the records sent", retryable=retryable)
    return [parse_record_result(entry, retryable=retryable) for entry in body]


def parse_record_result(entry: Any, *, retryable: bool = False) -> RecordResult:
    """One SaveResult/DeleteResult ({"id", "success", "errors": [...]}) as a RecordResult."""
    if not isinstance(entry, dict) or not isinstance(entry.get("success"), bool):
        raise _malformed("record result without success flag", retryable=retryable)
    errors = entry.get("errors") or []
    if not isinstance(errors, list):
        raise _malformed("record result errors are not a list", retryable=retryable)
    cleaned = tuple(
        {
            "statusCode": clean_text(e.get("statusCode") or e.get("errorCode") or "", 80),
            "message": clean_text(e.get("message") or "", 400),
            "fields": [clean_text(f, 80) for f in e.get("fields") or [] if isinstance(f, str)],
        }
        for e in errors
        if isinstance(e, dict)
    )
    record_id = entry.get("id")
    return RecordResult(
        id=record_id if isinstance(record_id, str) else None,
        success=entry["success"],
        errors=cleaned,
    )
