"""Each service seen as a "side": raw connector dicts in, canonical SideTasks out.

The engine speaks only canonical terms (SideTask, Task, field changes); this module turns them
into each connector's calls and wire shapes through `sync.mapping`, and turns every per-record
result into a `WriteResult`. Nothing here decides what to sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sync.connectors.http import ServiceError
from sync.mapping import (
    build_picklists,
    deleted_side_task,
    normalize_text,
    parse_timestamp,
    sc_to_side_task,
    sf_to_side_task,
    task_to_sc,
    task_to_sf,
)
from sync.model import SfPicklists, Side, SideTask, Task, frozen_map, quick_init

log = logging.getLogger(__name__)

# Concurrent single-record reads (direct reconcile of many linked ids on Sales Connect).
_READ_CONCURRENCY = 8
# How far before a journaled create the lookup for it starts (clock skew, slow request).
_LOOKUP_MARGIN = timedelta(minutes=10)
# Converting a page of records is CPU work on the event loop the dashboard shares: hand the
# loop back every this many records (~10 ms of work) so the screen stays responsive during a
# big read (docs/benchmarks.md, target 5: no stall over 50 ms).
YIELD_EVERY = 50


async def converted_pages(
    pages: AsyncGenerator[list[dict[str, Any]], None],
    convert: Callable[[Mapping[str, Any]], SideTask],
    *,
    replaces: Callable[[Mapping[str, Any], SideTask], bool] | None = None,
    seen: Callable[[SideTask], None] | None = None,
) -> list[SideTask]:
    """Each page's records converted as the page comes (yielding to the event loop every
    YIELD_EVERY records), so a big read never holds every raw record at once, only the tasks
    (a third of their size).

    `replaces(raw, task)`: given, each id is kept once, where it was first seen; a later record
    of it replaces the task there when `replaces` says so (Sales Connect: a higher version).

    `seen(task)`: given, called with each task as it is kept (placed, or replacing an older
    one), while the next page's request is in flight: the engine records the task then
    instead of in a pass of its own after the read. Of one id, the last call is the task kept."""
    out: list[SideTask] = []
    where: dict[str, int] = {}
    count = 0
    async with aclosing(pages):  # stopped early (cancelled): no read-ahead left running
        async for page in pages:
            for raw in page:
                count += 1
                task = convert(raw)
                kept = True
                if replaces is None:
                    out.append(task)
                elif (at := where.get(task.id)) is None:
                    where[task.id] = len(out)
                    out.append(task)
                elif replaces(raw, out[at]):
                    out[at] = task
                else:
                    kept = False  # an older copy than the one kept
                if kept and seen is not None:
                    seen(task)
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
    return out


@quick_init
@dataclass(frozen=True)
class WriteResult:
    """One record's outcome. `task` is the record as the service now holds it, when known."""

    ok: bool
    id: str | None = None
    task: SideTask | None = None
    error: ServiceError | None = None
    notes: Mapping[str, str] = field(default_factory=frozen_map)
    stamp: str = ""  # the service's change stamp after the write, if it said


def _failure(error: ServiceError) -> WriteResult:
    return WriteResult(ok=False, error=error)


def _record_error(service: str, errors: Sequence[Mapping[str, Any]]) -> ServiceError:
    """A ServiceError from one Salesforce per-record error array."""
    first = dict(errors[0]) if errors else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN")
    message = str(first.get("message") or "the record was not saved")
    fields = first.get("fields") or []
    where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
    category = {
        "ENTITY_IS_DELETED": "not_found",
        "NOT_FOUND": "not_found",
        "INVALID_CROSS_REFERENCE_KEY": "not_found",
        "UNABLE_TO_LOCK_ROW": "transient",
        "REQUEST_LIMIT_EXCEEDED": "limit",
        "INVALID_SESSION_ID": "auth",
    }.get(code, "validation")
    return ServiceError(
        f"Salesforce refused the record: {code}: {message}{where}",
        service=service,
        category=category,
        retryable=category == "transient",
        code=code,
    )


class SalesConnectApi(Protocol):
    async def me(self) -> str: ...
    async def changed_tasks(self, updated_since: datetime | None) -> list[dict]: ...
    def changed_task_pages(
        self, updated_since: datetime | None
    ) -> AsyncGenerator[list[dict], None]: ...
    async def get_task(self, task_id: str) -> dict | None: ...
    async def create(self, items: list[tuple[str, dict]]) -> list[Any]: ...
    async def update(self, items: list[tuple[str, int, dict]]) -> list[Any]: ...
    async def delete(self, items: list[tuple[str, int | None]]) -> list[Any]: ...


class SalesforceApi(Protocol):
    async def user_id(self) -> str: ...
    async def picklists(self) -> dict[str, list[dict]]: ...
    async def changed_tasks(self, owner_id: str, since: datetime | None) -> list[dict]: ...
    def changed_task_pages(
        self, owner_id: str, since: datetime | None
    ) -> AsyncGenerator[list[dict], None]: ...
    async def deleted_ids(self, start: datetime, end: datetime) -> list[dict]: ...
    async def retrieve(self, ids: list[str]) -> dict[str, dict | None]: ...
    async def create(self, records: list[dict]) -> list[Any]: ...
    async def update(self, records: list[dict]) -> list[Any]: ...
    async def delete(self, ids: list[str]) -> list[Any]: ...


def _sc_version(task: SideTask | None, fallback: str) -> int | None:
    value = task.version if task is not None and task.version else fallback
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SalesConnectSide:
    """Sales Connect through its client; versions guard every update (If-Match)."""

    side = Side.SALESCONNECT

    def __init__(self, client: SalesConnectApi) -> None:
        self.client = client
        self.user_id: str | None = None

    async def connect(self) -> None:
        if self.user_id is None:
            self.user_id = await self.client.me()

    def to_side_task(self, raw: Mapping[str, Any]) -> SideTask:
        return sc_to_side_task(raw, self.user_id)

    async def changed(
        self, since: datetime | None, *, seen: Callable[[SideTask], None] | None = None
    ) -> list[SideTask]:
        """Each changed task once, at the highest version read (a task that changed while
        the pages were read comes twice). `seen`: see `converted_pages`."""
        return await converted_pages(
            self.client.changed_task_pages(since),
            self.to_side_task,
            replaces=lambda raw, known: raw["version"] >= int(known.version),
            seen=seen,
        )

    async def fetch(self, ids: Sequence[str]) -> dict[str, SideTask | None]:
        """Direct reads; None = the task is gone (a 404 is positive evidence, rule 12)."""
        gate = asyncio.Semaphore(_READ_CONCURRENCY)

        async def one(task_id: str) -> tuple[str, SideTask | None]:
            async with gate:
                raw = await self.client.get_task(task_id)
            if raw is None:
                return task_id, None
            return task_id, self.to_side_task(raw)

        pairs = await asyncio.gather(*(one(i) for i in ids))
        return dict(pairs)

    def _result(self, item: Any) -> WriteResult:
        if not item.ok:
            return _failure(item.error)
        task = self.to_side_task(item.task) if item.task else None
        stamp = task.version if task else ""
        return WriteResult(
            ok=True, id=item.id or (task.id if task else None), task=task, stamp=stamp
        )

    async def create(self, items: Sequence[tuple[str, Task]]) -> list[WriteResult]:
        """Create each (correlation key, task); the key is the Idempotency-Key, so a replay
        after a crash returns the task the first attempt made instead of a second one."""
        bodies = []
        for key, task in items:
            body = task_to_sc(task.as_dict())
            body.setdefault("status", "open")
            body.setdefault("priority", "normal")
            if self.user_id:
                body["assignee_id"] = self.user_id
            bodies.append((key, body))
        results = await self.client.create(bodies)
        return [self._result(r) for r in results]

    async def update(
        self, items: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Update each (id, version as read, canonical changes)."""
        payload = []
        for task_id, version, changes in items:
            payload.append((task_id, _sc_version(None, version), task_to_sc(changes)))
        results = await self.client.update(payload)
        return [self._result(r) for r in results]

    async def delete(self, items: Sequence[tuple[str, str]]) -> list[WriteResult]:
        payload = [(task_id, _sc_version(None, version)) for task_id, version in items]
        results = await self.client.delete(payload)
        out = []
        for (task_id, _), item in zip(items, results, strict=True):
            if item.ok or (item.error is not None and item.error.category == "not_found"):
                out.append(WriteResult(ok=True, id=task_id))  # already gone is what we wanted
            else:
                out.append(_failure(item.error))
        return out


class SalesforceSide:
    """Salesforce through its client: SOQL change reads, collections writes, picklists.

    Correlation keys for creates: when the org has an external-id field on Task
    (`external_id_field`, e.g. `ReminderSyncKey__c`), every create carries its key there and a
    journaled intent is found again by `find_by_external_id`. Without such a field, a journaled
    intent is found by a query for tasks the user created since the intent was written whose
    five fields equal the intended ones (and that no link holds yet). See `find_created`.
    """

    side = Side.SALESFORCE

    def __init__(self, client: SalesforceApi, *, external_id_field: str | None = None) -> None:
        self.client = client
        self.external_id_field = external_id_field
        self.user_id: str | None = None
        self.picklists: SfPicklists = SfPicklists()
        # The org's Status/Priority values as read (two queries): None until read or given.
        self.picklists_raw: dict[str, list[dict]] | None = None
        self.picklists_read = False  # True once `connect` read them from the org

    async def connect(self) -> None:
        if self.user_id is None:
            self.user_id = await self.client.user_id()
        if self.picklists_raw is None:
            self.use_picklists(await self.client.picklists())
            self.picklists_read = True

    def use_picklists(self, raw: Mapping[str, Any]) -> None:
        """Take the picklists from a copy kept earlier (the engine keeps one for a while)."""
        self.picklists_raw = {name: [dict(row) for row in rows] for name, rows in raw.items()}
        self.picklists = build_picklists(self.picklists_raw)
        self.picklists_read = False

    def forget_picklists(self) -> None:
        """Read the picklists from the org again at the next `connect`."""
        self.picklists_raw = None

    def to_side_task(self, raw: Mapping[str, Any]) -> SideTask:
        return sf_to_side_task(raw, self.user_id, self.picklists)

    async def changed(
        self, since: datetime | None, *, seen: Callable[[SideTask], None] | None = None
    ) -> list[SideTask]:
        """Every changed record in the order read (`seen`: see `converted_pages`)."""
        assert self.user_id is not None, "connect() first"
        return await converted_pages(
            self.client.changed_task_pages(self.user_id, since), self.to_side_task, seen=seen
        )

    async def deleted(self, start: datetime, end: datetime) -> tuple[list[SideTask], datetime]:
        """Tombstones from the deleted-records resource (raises INVALID_REPLICATION_DATE),
        and how far Salesforce says the answer covers (`latestDateCovered`).

        The coverage, not the requested end, is where the next window may start: Salesforce
        covers whole minutes up to its own clock, so a delete in the current minute, or while
        this machine's clock runs ahead, is only in a later answer.
        """
        rows = await self.client.deleted_ids(start, end)
        coverage = getattr(self.client, "deleted_coverage", None) or {}
        covered = parse_timestamp(coverage.get("latestDateCovered"))
        if covered is None:  # not said: the whole minutes requested, as the client sent them
            covered = max(start, end).replace(second=0, microsecond=0)
        tombstones = [
            deleted_side_task(
                Side.SALESFORCE, str(row["id"]), parse_timestamp(row.get("deletedDate"))
            )
            for row in rows
            if row.get("id")
        ]
        return tombstones, covered

    async def fetch(self, ids: Sequence[str]) -> dict[str, SideTask | None]:
        if not ids:
            return {}
        found = await self.client.retrieve(list(ids))
        return {
            task_id: (self.to_side_task(raw) if raw else None)
            for task_id, raw in ((i, found.get(i)) for i in ids)
        }

    def _record(self, task_fields: Mapping[str, Any]) -> tuple[dict, Mapping[str, str]]:
        write = task_to_sf(task_fields, self.picklists)
        return write.record, write.notes  # a fresh dict per call: nobody else holds it

    async def create(self, items: Sequence[tuple[str, Task]]) -> list[WriteResult]:
        records, notes = [], []
        picklists = self.picklists
        defaults = {"Status": picklists.open_status, "Priority": picklists.normal_priority}
        defaults = {k: v for k, v in defaults.items() if v is not None}
        for key, task in items:
            fields, note = self._record(task.as_dict())
            # Typed here (the client sends a record that has its type as it is), over the
            # picklist defaults: one dict per record. `task_to_sf` writes no None but a cleared
            # ActivityDate, which a create sends as null, and leaves out a status or priority
            # the org cannot hold, so the default stays.
            record = {"attributes": {"type": "Task"}, **defaults, **fields}
            if self.external_id_field:
                record[self.external_id_field] = key
            if self.user_id:
                record["OwnerId"] = self.user_id
            records.append(record)
            notes.append(note)
        # No yield between building the records and sending them: the writer starts this call
        # and goes on to record the batch before; the call must be on its way by then.
        results = await self.client.create(records)
        return [self._from_record(r, n) for r, n in zip(results, notes, strict=True)]

    def _from_record(self, result: Any, notes: Mapping[str, str] = frozen_map()) -> WriteResult:
        if result.success:
            return WriteResult(ok=True, id=result.id, notes=notes)
        return _failure(_record_error("salesforce", result.errors))

    async def update(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        records, notes = [], []
        for task_id, changes in items:
            record, note = self._record(changes)
            record["Id"] = task_id
            records.append(record)
            notes.append(note)
        results = await self.client.update(records)
        return [self._from_record(r, n) for r, n in zip(results, notes, strict=True)]

    async def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        results = await self.client.delete(list(ids))
        out = []
        for task_id, result in zip(ids, results, strict=True):
            outcome = self._from_record(result)
            if outcome.ok or (outcome.error is not None and outcome.error.category == "not_found"):
                out.append(WriteResult(ok=True, id=task_id))
            else:
                out.append(outcome)
        return out

    async def find_created(
        self, intents: Sequence[tuple[str, Task, datetime]], exclude: set[str]
    ) -> dict[str, str]:
        """Correlation key -> SF id for journaled creates that did reach Salesforce."""
        if not intents:
            return {}
        if self.external_id_field:
            finder = getattr(self.client, "find_by_external_id", None)
            if finder is not None:
                return await finder(self.external_id_field, [key for key, _, _ in intents])
        return await self._find_by_fields(intents, exclude)

    async def _find_by_fields(
        self, intents: Sequence[tuple[str, Task, datetime]], exclude: set[str]
    ) -> dict[str, str]:
        assert self.user_id is not None, "connect() first"
        earliest = min(when for _, _, when in intents) - _LOOKUP_MARGIN
        candidates = [
            t
            for t in await self.changed(earliest)
            if not t.deleted
            and t.id not in exclude
            and t.created_at is not None
            and t.created_at >= earliest
        ]
        found: dict[str, str] = {}
        taken: set[str] = set()
        for key, task, when in intents:
            wanted = {name: value for name, value in task.as_dict().items()}
            wanted["name"] = normalize_text(self._record({"name": task.name})[0]["Subject"])
            for candidate in sorted(candidates, key=lambda t: t.created_at or when):
                if candidate.id in taken or (candidate.created_at or when) < when - _LOOKUP_MARGIN:
                    continue
                have = candidate.fields.as_dict()
                if all(have[name] == wanted[name] for name in ("name", "due_date")) and (
                    normalize_text(have["details"])[:100] == normalize_text(wanted["details"])[:100]
                ):
                    found[key] = candidate.id
                    taken.add(candidate.id)
                    break
        return found
