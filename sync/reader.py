"""The read phase of a run: what changed on each side since its cursor.

Only changed records cross the wire. Deletions count only on positive evidence (rule 12): SC
tombstones, SF `IsDeleted` rows from queryAll, SF deleted records for the window since the last
run, and a "does not exist" from a direct read. When a side's last successful read is older than
its service keeps deletion evidence (15 days), the linked ids of that side are read directly
instead of trusting the window.

Watermarks are the servers' own stamps (SF SystemModstamp, SC updated_at) of the newest record
read, kept as the server wrote them; the engine stores them only once the run has recorded what
it did with those records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sync.connectors.http import ServiceError
from sync.mapping import deleted_side_task, parse_timestamp
from sync.model import Side, SideTask
from sync.sides import SalesConnectSide, SalesforceSide

log = logging.getLogger(__name__)

# Both services keep deletion evidence for 15 days; reconcile directly a little before that.
EVIDENCE_WINDOW = timedelta(days=15)
EVIDENCE_MARGIN = timedelta(hours=1)
# Re-read this much before the last deleted-records window ended (minute granularity, skew).
DELETED_OVERLAP = timedelta(minutes=5)
# First sync: SF tasks changed within the import window are candidates; read a bit more so the
# planner (which applies the exact window) sees every candidate despite clock skew.
FIRST_READ_MARGIN = timedelta(hours=1)


@dataclass
class SideRead:
    """What one side reported: the newest version of each changed task, and the watermark."""

    side: Side
    tasks: dict[str, SideTask] = field(default_factory=dict)
    watermark: str | None = None
    reconciled: bool = False  # linked ids were read directly (evidence window lost)
    deleted_until: datetime | None = None  # SF: latestDateCovered of the deleted records read

    def add(self, tasks: Iterable[SideTask], *, prefer_new: bool = True) -> None:
        for task in tasks:
            if not task.id:
                continue
            old = self.tasks.get(task.id)
            if old is None or prefer_new or (old.deleted and not task.deleted):
                self.tasks[task.id] = task

    def raise_watermark(self, stamps: Iterable[str]) -> None:
        best = self.watermark
        best_time = parse_timestamp(best) if best else None
        for stamp in stamps:
            when = parse_timestamp(stamp)
            if when is None:
                continue
            if best_time is None or when > best_time:
                best, best_time = stamp, when
        self.watermark = best


def _stale(last_success: datetime | None, now: datetime) -> bool:
    return last_success is not None and now - last_success > EVIDENCE_WINDOW - EVIDENCE_MARGIN


async def read_salesconnect(
    side: SalesConnectSide,
    *,
    watermark: str | None,
    last_success: datetime | None,
    linked_ids: Sequence[str],
    extra_ids: Iterable[str],
    now: datetime,
    seen: Callable[[SideTask], None] | None = None,
) -> SideRead:
    """`seen`: called with each changed task the read keeps, as its page is converted (see
    `converted_pages`); not with the tasks read directly afterwards."""
    read = SideRead(Side.SALESCONNECT, watermark=watermark)
    since = parse_timestamp(watermark) if watermark else None
    changed = await side.changed(since, seen=seen)
    read.add(changed)
    await asyncio.sleep(0)  # 10,000 tasks at an import: the dashboard's turn between steps
    read.raise_watermark(_newest_sc_stamp(changed))
    direct = set(extra_ids)
    if _stale(last_success, now):
        read.reconciled = True
        direct.update(linked_ids)
    direct -= set(read.tasks)
    if direct:
        found = await side.fetch(sorted(direct))
        for task_id, task in found.items():
            read.add([task or deleted_side_task(Side.SALESCONNECT, task_id, now)])
    return read


def _newest_sc_stamp(tasks: Iterable[SideTask]) -> list[str]:
    """The newest `updated_at` as text (one stamp, not one per task: an import reads 10,000)."""
    newest = max((t.updated_at for t in tasks if t.updated_at is not None), default=None)
    return [newest.isoformat()] if newest is not None else []


async def read_salesforce(
    side: SalesforceSide,
    *,
    watermark: str | None,
    last_success: datetime | None,
    deleted_until: datetime | None,
    linked_ids: Sequence[str],
    extra_ids: Iterable[str],
    now: datetime,
    floor: datetime,
    seen: Callable[[SideTask], None] | None = None,
) -> SideRead:
    """`floor`: where to start without a watermark (the first sync's import window).
    `seen`: as for `read_salesconnect` (the deleted-records tombstones and the direct reads
    are not seen)."""
    read = SideRead(Side.SALESFORCE, watermark=watermark)
    since = parse_timestamp(watermark) if watermark else None
    if since is None:
        since = floor - FIRST_READ_MARGIN  # first sync: only recent changes are candidates
    changed = await side.changed(since, seen=seen)
    read.add(changed)
    await asyncio.sleep(0)
    read.raise_watermark(t.version for t in changed)
    # The client may know more: the org's time when the query ran, minus its overlap (see
    # `changes_watermark`); without it, after a bulk import every run re-reads the import.
    if queried := getattr(side.client, "changes_watermark", None):
        read.raise_watermark([queried])

    direct = set(extra_ids)
    linked = set(linked_ids)
    if _stale(last_success, now):
        read.reconciled = True
    elif last_success is not None and linked:
        start = (deleted_until or last_success) - DELETED_OVERLAP
        try:
            tombstones, covered = await side.deleted(start, now)
        except ServiceError as exc:
            if exc.code != "INVALID_REPLICATION_DATE":
                raise
            log.info("Salesforce deleted window lost (%s); reconciling linked ids", exc.code)
            read.reconciled = True
        else:
            read.add([t for t in tombstones if t.id in linked], prefer_new=False)
            read.deleted_until = covered  # what Salesforce covered, never beyond its clock
    if read.reconciled:
        direct.update(linked)
    direct -= set(read.tasks)
    if direct:
        found = await side.fetch(sorted(direct))
        for task_id, task in found.items():
            read.add([task or deleted_side_task(Side.SALESFORCE, task_id, now)])
    return read
