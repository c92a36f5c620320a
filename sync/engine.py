"""SyncEngine: one run = read changes -> plan -> journal intents -> batched writes -> record.

The engine owns the state store, the journal and both sides (the connectors seen through
`sync.sides`). It tells listeners what happens through `sync.events` and never knows who
listens. The CLI, the TUI, the demo and the tests all build it with `build_engine`.

    engine = build_engine(home, secrets)
    summary = await engine.run_once()
    await engine.aclose()

Module map: `reader` (read phase), `plan` (decisions), `writer` (write + record phases),
`scheduler` (when runs happen), `dashboard` (rows and status), `connections` (logins).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import gc
import json
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync import paths
from sync.config import ConfigError
from sync.connectors.http import ServiceError
from sync.dashboard import EngineStatus, Row, RowCache, RowState, TaskError, build_rows
from sync.events import (
    ConflictFound,
    Event,
    EventBus,
    Outcome,
    PlannedChange,
    RunSummary,
    StatusChanged,
    SyncFailed,
    SyncFinished,
    SyncProgress,
    SyncStarted,
    TasksChanged,
)
from sync.journal_adapter import CreateIntent, IntentJournal, UpdateIntent
from sync.mapping import project_to_sf
from sync.model import (
    FIELDS,
    Action,
    Choice,
    Conflict,
    ConflictKind,
    Link,
    PlanSettings,
    Resolution,
    Side,
    SideTask,
    Skip,
    Task,
)
from sync.plan import plan as make_plan
from sync.reader import SideRead, read_salesconnect, read_salesforce
from sync.scheduler import RunScheduler
from sync.sides import YIELD_EVERY, SalesConnectSide, SalesforceSide, WriteResult
from sync.storage import StateError
from sync.store import Settings, StateStore
from sync.worker import finish_in_thread
from sync.writer import PlanWriter, StateSaver, newest_version

log = logging.getLogger(__name__)

# An SC Idempotency-Key is honoured for 24 hours; older intents are looked up by content.
SC_REPLAY_WINDOW = timedelta(hours=20)
# The org's picklists are kept this long (in the SF cursor, so a CLI run reuses them): reading
# them costs two API calls. A write refused for a picklist value reads them again sooner.
PICKLIST_TTL = timedelta(hours=1)

Clock = Callable[[], datetime]
SidesFactory = Callable[[], Awaitable[tuple[SalesConnectSide, SalesforceSide]]]


class EngineError(Exception):
    """A request the engine cannot carry out; the message says what to do."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _holding_the_store(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A dashboard action that changes the store waits for a save in progress (on its worker
    thread, the save reads the store) and holds the next one off until it is done."""

    @functools.wraps(method)
    async def locked(self: SyncEngine, *args: Any, **kwargs: Any) -> Any:
        async with self._store_lock:
            return await method(self, *args, **kwargs)

    return locked


# While a run goes on, CPython's cyclic garbage collector runs less often (see `_collecting_less`).
# A host that keeps its heap frozen (the dashboard: tui/heap.py) sets `run_gc_threshold` lower.
RUN_GC_THRESHOLD = (10_000, 20, 20)
_gc_lock = threading.Lock()
_gc_runs = 0  # runs going on in this process (engines of several homes may run at once)
_gc_saved: tuple[int, ...] = ()


@contextlib.contextmanager
def _collecting_less(threshold: tuple[int, int, int] = RUN_GC_THRESHOLD) -> Iterator[None]:
    """Raise the garbage collector's thresholds for the length of a run, then put them back.

    A big run keeps what it allocates (links, cached tasks, journal intents: a few hundred
    thousand objects for a 10,000-task import), and with the default thresholds (700, 10, 10)
    every growth of the heap by a quarter sets off a full collection that walks every object
    in the process, the dashboard's too: about half a second of a 10,000-task import, for no
    garbage (what a run drops is freed by reference counting). Objects are freed as before;
    cycles are found later. Process-wide, so counted: the first run in sets, the last one out
    restores."""
    global _gc_runs, _gc_saved
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved = gc.get_threshold()
            if _gc_saved[0]:  # 0: collection switched off by the program; leave it so
                raised = zip(threshold, _gc_saved, strict=True)
                gc.set_threshold(*(max(ours, theirs) for ours, theirs in raised))
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0:
                gc.set_threshold(*_gc_saved)
                _give_back_free_memory()


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; elsewhere there is none to call
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _find_malloc_trim() if sys.platform.startswith("linux") else None


def _give_back_free_memory() -> None:
    """Return to the system what the C allocator holds free once a run is over.

    glibc keeps the heap memory a big run freed (its pages, the last pages of big lists,
    dicts and JSON texts) and counts it resident: ~50 MB after a 50,000-task import, on which
    the next run's memory then stacks (peak RSS 310 MB instead of 270; docs/benchmarks.md,
    target 4). `malloc_trim(0)` gives the free pages back and touches nothing in use (0.2 ms
    measured in a small process; it walks the allocator's free lists)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _short_id() -> str:
    return uuid.uuid4().hex[:12]


class SyncEngine:
    """See the module docstring. All methods run on one event loop."""

    def __init__(
        self,
        *,
        store: StateStore,
        journal: IntentJournal,
        sides: SidesFactory,
        clock: Clock = _utcnow,
        connected: Callable[[], dict[str, bool]] | None = None,
        close_sides: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self._sides_factory = sides
        self._sides: tuple[SalesConnectSide, SalesforceSide] | None = None
        self._close_sides = close_sides
        self.clock = clock
        store.clock = clock
        self._connected = connected or (lambda: {"salesforce": True, "salesconnect": True})
        self._bus = EventBus()
        self._run_lock = asyncio.Lock()
        self._running = False
        self._phase = ""
        self._progress = (0, 0)
        self._skips: dict[tuple[Side, str], str] = _load_skips(store)
        self._last: RunSummary | None = None
        self._api: tuple[int | None, int | None] = (None, None)
        # One state save per run (plus checkpoints in long runs); see sync.writer.
        # Saves and the planner run on a worker thread, so the dashboard (same event loop)
        # keeps answering during a big run; dashboard edits wait for a save in progress.
        self._store_lock = asyncio.Lock()
        self._saver = StateSaver(store, journal, off_loop=self._off_loop)
        self._rows = RowCache(self._build_rows)
        self.run_gc_threshold = RUN_GC_THRESHOLD  # the collector's thresholds during a run
        self.scheduler = RunScheduler(
            self._scheduled_run,
            interval=lambda: self.store.settings.poll_interval,
            enabled=lambda: self.store.settings.enabled,
            on_schedule=lambda: self._bus.emit(StatusChanged()),
        )

    # -- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _collecting_less(self) -> AsyncIterator[None]:
        with _collecting_less(self.run_gc_threshold):
            yield

    async def aclose(self) -> None:
        """Close the connectors, save and release the state (idempotent). A requested run
        still going is let finish first: closing under it would fail its writes halfway."""
        with contextlib.suppress(Exception):  # the run reports its own failure
            await self.scheduler.wait_idle()
        if self._close_sides is not None:
            with contextlib.suppress(Exception):
                await self._close_sides()
        try:
            self.store.close()
        finally:
            self.journal.close()

    async def reload_connections(self) -> None:
        """Forget the connectors so the next use rebuilds them from the saved connections
        (after a log-in or log-out)."""
        async with self._run_lock:  # never swap connectors under a running sync
            if self._close_sides is not None:
                with contextlib.suppress(Exception):
                    await self._close_sides()
            self._sides = None
        self._emit(StatusChanged())

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        return self._bus.subscribe(listener)

    def _emit(self, event: Event) -> None:
        if isinstance(event, TasksChanged):
            self._rows.touch(event.keys)
        self._bus.emit(event)

    def _parked_ids(self) -> tuple[set[str], set[str]]:
        """SC and SF ids with a conflict, an answer or a parked error (each shapes its row)."""
        sc_ids = {c.sc_id for c in self.store.conflicts()}
        sf_ids = {c.sf_id for c in self.store.conflicts()}
        for error in self.store.errors():
            (sc_ids if error.side is Side.SALESCONNECT else sf_ids).add(error.task_id)
        return sc_ids, sf_ids

    def _touch_parked(self, before: tuple[set[str], set[str]] = (set(), set())) -> None:
        """Rows whose conflict or error came or went (`before`: the ids parked earlier)."""
        sc_ids, sf_ids = self._parked_ids()
        self._rows.touch(sc_ids=sc_ids | before[0], sf_ids=sf_ids | before[1])

    # -- scheduling ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Sync on the poll interval (and on request) until cancelled; backs off on failure."""
        await self.scheduler.run_forever()

    def request_sync(self) -> None:
        """Run as soon as possible; during a run, queue one more (never two at once)."""
        self.scheduler.request()

    async def _scheduled_run(self, reason: str) -> RunSummary:
        return await self.run_once(reason=reason)

    # -- settings --------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.store.settings

    @_holding_the_store
    async def update_settings(self, **changes: Any) -> Settings:
        """Change settings (ValueError says what is wrong); saved at once."""
        settings = self.store.update_settings(**changes)
        self.store.save()
        self._rows.reset()  # e.g. enabled_at decides which tasks are "not synced"
        self._emit(StatusChanged())
        return settings

    @_holding_the_store
    async def set_enabled(self, on: bool, *, start: bool = True) -> Settings:
        """Turn sync on (records `enabled_at`, starts the first sync) or off."""
        current = self.store.settings
        if on and current.enabled:
            return current
        if on:
            enabled_at = await self._service_enabled_at(True) or self.clock()
            settings = self.store.update_settings(enabled=True, enabled_at=enabled_at)
        else:
            await self._service_enabled_at(False)
            settings = self.store.update_settings(enabled=False)
        self.store.audit("settings", "sync turned " + ("on" if on else "off"))
        self.store.save()
        self._rows.reset()
        self._emit(StatusChanged())
        if on and start:
            self.request_sync()
        return settings

    async def _service_enabled_at(self, on: bool) -> datetime | None:
        """Mirror the switch into Sales Connect's own setting; use its clock for enabled_at.

        Sales Connect decides which of its tasks existed "before enabling" by its own
        timestamps, so its clock is the right one. Best effort: without a connection, local.
        """
        try:
            sc, _ = await self._connect()
            client = sc.client
            body = await client.put_settings({"salesforce_sync_enabled": on})
        except (ServiceError, ConfigError, AttributeError, TypeError) as exc:
            log.info("could not mirror the sync switch into Sales Connect: %s", exc)
            return None
        from sync.mapping import parse_timestamp

        return parse_timestamp((body or {}).get("enabled_at")) if on else None

    # -- the run ---------------------------------------------------------------------------

    async def _connect(self) -> tuple[SalesConnectSide, SalesforceSide]:
        if self._sides is None:
            self._sides = await self._sides_factory()
        sc, sf = self._sides
        await sc.connect()
        self._reuse_picklists(sf)
        await sf.connect()
        self._keep_picklists(sf)
        return sc, sf

    def _reuse_picklists(self, sf: SalesforceSide) -> None:
        """Give the side the picklists kept in the state while they are fresh; drop stale ones
        (a long-lived engine) so that `connect` reads them again."""
        if not hasattr(sf, "use_picklists"):
            return
        extra = self.store.cursor(Side.SALESFORCE).extra
        try:
            kept_at = datetime.fromisoformat(extra["picklists_at"])
            fresh = timedelta(0) <= self.clock() - kept_at < PICKLIST_TTL
        except (KeyError, ValueError, TypeError):
            fresh = False
        if sf.picklists_raw is not None and (fresh or "picklists_at" not in extra):
            return  # the side's own are current (or the state keeps none: leave them)
        sf.forget_picklists()
        if fresh:
            try:
                raw = json.loads(extra["picklists"])
                if isinstance(raw, dict):
                    sf.use_picklists(raw)
            except (KeyError, ValueError, TypeError, AttributeError):
                log.info("the kept Salesforce picklists are unreadable; reading them again")
                sf.forget_picklists()

    def _keep_picklists(self, sf: SalesforceSide) -> None:
        """Keep what `connect` just read from the org, stamped, for later runs and processes."""
        if not getattr(sf, "picklists_read", False) or sf.picklists_raw is None:
            return
        sf.picklists_read = False
        cursor = self.store.cursor(Side.SALESFORCE)
        extra = {
            **cursor.extra,
            "picklists": json.dumps(sf.picklists_raw, sort_keys=True),
            "picklists_at": self.clock().isoformat(),
        }
        self.store.put_cursor(dataclasses.replace(cursor, extra=extra))

    def _drop_kept_picklists(self, sf: SalesforceSide) -> None:
        """A write was refused for a picklist value: read the picklists again next time."""
        cursor = self.store.cursor(Side.SALESFORCE)
        extra = {k: v for k, v in cursor.extra.items() if not k.startswith("picklists")}
        self.store.put_cursor(dataclasses.replace(cursor, extra=extra))
        if hasattr(sf, "forget_picklists"):
            sf.forget_picklists()

    async def run_once(
        self,
        *,
        dry_run: bool = False,
        reason: str = "manual",
        allow_mass_delete: bool = False,
    ) -> RunSummary:
        """One complete run. Never two at once: a second caller waits for the first."""
        async with self._run_lock, self._collecting_less():
            run_id = _short_id()
            started = self.clock()
            self._running = True
            self._saver.begin_run()
            parked_before = self._parked_ids()
            self._emit(SyncStarted(run_id, reason))
            recorded = False
            try:
                summary = await self._run(run_id, started, reason, dry_run, allow_mass_delete)
                if not dry_run:
                    recorded = True  # a failed save below is not tried a second time
                    await self._record_run(summary)
            except ServiceError as exc:
                summary = self._failed(
                    run_id, started, reason, dry_run, exc.category, exc.message, exc.retry_at
                )
            except ConfigError as exc:
                summary = self._failed(run_id, started, reason, dry_run, "auth", str(exc), None)
            except (StateError, EngineError) as exc:
                summary = self._failed(run_id, started, reason, dry_run, "internal", str(exc), None)
            except Exception as exc:  # a bug: reported like any failure, details in the log
                log.exception("sync run %s failed", run_id)
                message = f"Internal error ({type(exc).__name__}); the details are in the log."
                summary = self._failed(run_id, started, reason, dry_run, "internal", message, None)
            finally:
                self._running = False
                self._phase = ""
                self._touch_parked(parked_before)
            self._last = summary
            if not dry_run and not recorded:
                with contextlib.suppress(StateError):  # the run failed already; say that
                    await self._record_run(summary)
            self._emit(SyncFinished(run_id, summary))
            return summary

    def _failed(
        self,
        run_id: str,
        started: datetime,
        reason: str,
        dry_run: bool,
        category: str,
        message: str,
        retry_at: datetime | None,
    ) -> RunSummary:
        outcome = Outcome.LIMIT if category == "limit" else Outcome.FAILED
        if outcome is Outcome.LIMIT:
            when = self._resume_time(retry_at)
            message = f"{message} The sync goes on at {when}."
        self._emit(SyncFailed(run_id, category, message, retry_at))
        return RunSummary(
            run_id=run_id,
            reason=reason,
            outcome=outcome,
            started_at=started,
            finished_at=self.clock(),
            dry_run=dry_run,
            conflicts=len(self.store.conflicts()),
            retry_at=retry_at,
            message=message,
        )

    def _resume_time(self, retry_at: datetime | None) -> str:
        """When a stopped sync goes on, in the user's time zone and naming it (the service's
        own message may already give the time in UTC)."""
        if retry_at is None:
            return "later"
        try:
            zone = self.store.settings.zone()
        except ValueError:
            zone = UTC
        return retry_at.astimezone(zone).strftime("%H:%M %Z").strip()

    @contextlib.asynccontextmanager
    async def changing_store(self) -> AsyncIterator[StateStore]:
        """The store, for a caller that changes and saves it (a login from the dashboard):
        no save of a run is in progress meanwhile, and none starts until this is done."""
        async with self._store_lock:
            yield self.store

    async def _off_loop(self, save: Callable[[], None]) -> None:
        """Run a state save on a worker thread, the store locked against dashboard edits
        (every other writer of the store is the run that awaits this save)."""
        async with self._store_lock:
            await finish_in_thread(save)  # a cancel (the app quitting) waits for a whole save

    async def _record_run(self, summary: RunSummary) -> None:
        """Log the run, keep what `status` shows in a later process (outcome, API use), and save
        the state: the run's one save (raises StateError when it cannot be written)."""
        self.store.audit(
            "run",
            f"{summary.outcome}: {summary.writes} write(s)"
            + (f"; {summary.message}" if summary.message else ""),
            run_id=summary.run_id,
            category=str(summary.outcome),
        )
        used, limit = self._api
        if used is not None:
            cursor = self.store.cursor(Side.SALESFORCE)
            extra = {**cursor.extra, "api_used": str(used), "api_max": str(limit or "")}
            self.store.put_cursor(dataclasses.replace(cursor, extra=extra))
        await self._saver.save_off_loop()

    def _set_phase(self, run_id: str, phase: str, done: int = 0, total: int = 0) -> None:
        self._phase = phase
        self._progress = (done, total)
        self._emit(SyncProgress(run_id, phase, done, total))

    async def _run(
        self, run_id: str, started: datetime, reason: str, dry_run: bool, allow_mass_delete: bool
    ) -> RunSummary:
        settings = self.store.settings
        if not settings.enabled:
            return RunSummary(
                run_id=run_id,
                reason=reason,
                outcome=Outcome.DISABLED,
                started_at=started,
                finished_at=self.clock(),
                dry_run=dry_run,
                message="Sync is off: turn it on first (reminder-sync enable, or Settings).",
            )
        sc, sf = await self._connect()
        if not dry_run and self.journal.has_pending_creates():
            self._set_phase(run_id, "recover")
            await self._recover(run_id, sc, sf)

        # 1. read
        self._set_phase(run_id, "read")
        now = self.clock()
        reads = await self._read(sc, sf, now, settings, dry_run)
        for read in reads.values():
            if read.reconciled:
                self.store.audit(
                    "reconcile",
                    f"{read.side.label}: last run older than its deletion window; "
                    "linked tasks were read directly",
                    run_id=run_id,
                    side=read.side,
                )
        self._api = (
            (sf.client.limits.used, sf.client.limits.max)
            if hasattr(sf.client, "limits")
            else self._api
        )

        settled = self._settle_updates(reads, dry_run)

        # 2. plan
        self._set_phase(run_id, "plan")
        plan_settings = PlanSettings(
            enabled_at=settings.enabled_at,
            policies=settings.policies,
            picklists=sf.picklists,
            guard_max_share=settings.mass_delete_share,
            guard_min_deletes=settings.mass_delete_minimum,
            allow_mass_delete=allow_mass_delete,
        )
        # The planner is pure and gets its own copies: it runs on a worker thread, and so does
        # describing its actions for the summary (10,000 of them at an import: ~50 ms).
        the_plan, planned = await asyncio.to_thread(
            _plan_and_describe,
            [settled.get(link.key, link) for link in self._touched_links(reads)],
            list(reads[Side.SALESCONNECT].tasks.values()),
            list(reads[Side.SALESFORCE].tasks.values()),
            plan_settings,
            now,
            conflicts=self.store.conflicts(),
            resolutions=self.store.resolutions(),
            linked_count=len(self.store.links()),
        )
        if dry_run:
            return self._summary(
                run_id, started, reason, dry_run=True, plan=the_plan, planned=planned
            )

        # 3. record what was read and decided, then write
        retried = {(e.side, e.task_id) for e in self.store.errors()}
        new_conflicts = await self._record_reads_and_conflicts(reads, the_plan)
        self._remember_skips(reads, the_plan.skipped)
        self._touch_parked()
        if new_conflicts:
            for conflict in new_conflicts:
                self._emit(ConflictFound(conflict))
        await asyncio.sleep(0)  # each of these steps walks every task read (10,000 at an import)
        # The dashboard rows of what was read: marked by task id (no key to parse), and the
        # keys the screen wants worked out on a worker thread (an import's 10,000 index lookups
        # and these marks held the loop for ~20 ms in one step).
        if self._rows_wanted():
            self._rows.touch(
                sc_ids=reads[Side.SALESCONNECT].tasks, sf_ids=reads[Side.SALESFORCE].tasks
            )
            keys = await asyncio.to_thread(self._keys_of, reads)
            self._bus.emit(TasksChanged(tuple(keys)))
            await asyncio.sleep(0)

        self._set_phase(run_id, "write", 0, len(the_plan.writes))
        writer = PlanWriter(
            store=self.store,
            journal=self.journal,
            sc=sc,
            sf=sf,
            reads=reads,
            run_id=run_id,
            now=self.clock,
            saver=self._saver,
            progress=lambda done, total: self._set_phase(run_id, "write", done, total),
            changed=lambda keys: self._emit(TasksChanged(tuple(sorted(keys)))),
            rows_wanted=self._rows_wanted,
        )
        tally = await writer.execute(the_plan.actions)
        if any(
            "PICKLIST" in e.message
            for e in self.store.errors()
            if e.side is Side.SALESFORCE and (e.side, e.task_id) in tally.parked
        ):
            self._drop_kept_picklists(sf)
        self._settle_answers(the_plan, tally)
        for side, task_id in retried - tally.parked:
            self.store.clear_error(side, task_id)  # retried without failing again

        # 4. record: cursors advance only when every planned step was carried out
        self._set_phase(run_id, "record")
        complete = tally.stopped is None and not the_plan.guards
        if complete:
            self._advance_cursors(reads, now)
        self._api = (
            (sf.client.limits.used, sf.client.limits.max)
            if hasattr(sf.client, "limits")
            else self._api
        )

        outcome = Outcome.DONE
        message = ""
        retry_at = None
        if tally.stopped is not None:
            stop = tally.stopped
            outcome = Outcome.LIMIT if stop.category == "limit" else Outcome.FAILED
            retry_at = stop.retry_at
            message = stop.message
            if outcome is Outcome.LIMIT:
                when = self._resume_time(retry_at)
                message += f" What was written is kept; the sync goes on at {when}."
            self._emit(SyncFailed(run_id, stop.category, message, retry_at))
        elif the_plan.guards:
            outcome = Outcome.GUARD
            message = " ".join(g.message for g in the_plan.guards) + (
                " Run `reminder-sync sync --confirm-deletes` (or confirm in the dashboard) to "
                "let them through."
            )
        elif waiting := self._unanswered():
            outcome = Outcome.CONFLICTS
            message = (
                f"{len(waiting)} conflict(s) wait for you: `reminder-sync conflicts` lists them."
            )
        return self._summary(
            run_id,
            started,
            reason,
            dry_run=False,
            plan=the_plan,
            planned=planned,
            tally=tally,
            outcome=outcome,
            message=message,
            retry_at=retry_at,
            new_conflicts=len(new_conflicts),
        )

    def _summary(
        self,
        run_id: str,
        started: datetime,
        reason: str,
        *,
        dry_run: bool,
        plan: Any,
        planned: tuple[PlannedChange, ...],
        tally: Any = None,
        outcome: Outcome | None = None,
        message: str = "",
        retry_at: datetime | None = None,
        new_conflicts: int = 0,
    ) -> RunSummary:
        if outcome is None:
            outcome = (
                Outcome.GUARD
                if plan.guards
                else Outcome.CONFLICTS
                if plan.conflicts
                else Outcome.DONE
            )
            if plan.guards:
                message = " ".join(g.message for g in plan.guards)
        return RunSummary(
            run_id=run_id,
            reason=reason,
            outcome=outcome,
            started_at=started,
            finished_at=self.clock(),
            dry_run=dry_run,
            created=dict(tally.created) if tally else {},
            updated=dict(tally.updated) if tally else {},
            deleted=dict(tally.deleted) if tally else {},
            linked=tally.linked if tally else 0,
            conflicts=len(plan.conflicts),
            new_conflicts=new_conflicts,
            errors=tally.errors if tally else 0,
            skipped=len(plan.skipped),
            guard=plan.guard,
            retry_at=retry_at,
            message=message,
            planned=planned,
        )

    async def _read(
        self,
        sc: SalesConnectSide,
        sf: SalesforceSide,
        now: datetime,
        settings: Settings,
        dry_run: bool,
    ) -> dict[Side, SideRead]:
        links = self.store.links()
        extra_sc: set[str] = set()
        extra_sf: set[str] = set()

        def want(side: Side, task_id: str) -> None:
            link = (
                self.store.link_by_sc(task_id)
                if side is Side.SALESCONNECT
                else self.store.link_by_sf(task_id)
            )
            if link is not None:  # the planner needs both sides of a link it retries
                extra_sc.add(link.sc_id)
                extra_sf.add(link.sf_id)
            elif side is Side.SALESCONNECT:
                extra_sc.add(task_id)
            else:
                extra_sf.add(task_id)

        for error in self.store.errors():
            want(error.side, error.task_id)
        for resolution in self.store.resolutions():
            conflict = self.store.conflict(resolution.conflict_id)
            if conflict is not None:
                extra_sc.add(conflict.sc_id)
                extra_sf.add(conflict.sf_id)
        sc_cursor = self.store.cursor(Side.SALESCONNECT)
        sf_cursor = self.store.cursor(Side.SALESFORCE)
        deleted_until = sf_cursor.extra.get("deleted_until")
        floor = (settings.enabled_at or now) - PlanSettings().import_window
        # Each changed task read goes into the cache as its page is converted, while the next
        # page's request is in flight (a dry run changes nothing). A run that fails after some
        # pages (a ServiceError) leaves their tasks cached, and its failure save keeps them:
        # harmless, as each is the service's own copy as just read, and the cache is only the
        # dashboard's copy of the last task seen (and the "as cached" fallback for a task a
        # run did not read); the planner works from `reads`, and the cursors do not move, so
        # the next run reads these tasks again and records them in full (link versions, rows).
        sc_read = await read_salesconnect(
            sc,
            watermark=sc_cursor.watermark,
            last_success=sc_cursor.last_success,
            linked_ids=[link.sc_id for link in links.values()],
            extra_ids=extra_sc,
            now=now,
            seen=None if dry_run else self._cache_as_read(Side.SALESCONNECT),
        )
        sf_read = await read_salesforce(
            sf,
            watermark=sf_cursor.watermark,
            last_success=sf_cursor.last_success,
            deleted_until=datetime.fromisoformat(deleted_until) if deleted_until else None,
            linked_ids=[link.sf_id for link in links.values()],
            extra_ids=extra_sf,
            now=now,
            floor=floor,
            seen=None if dry_run else self._cache_as_read(Side.SALESFORCE),
        )
        return {Side.SALESCONNECT: sc_read, Side.SALESFORCE: sf_read}

    def _cache_as_read(self, side: Side) -> Callable[[SideTask], None]:
        """The read's `seen`: put each live task the read keeps into the cache as its page is
        converted, instead of in `_record_reads_and_conflicts` after planning (~10 us a task,
        ~100 ms of an import's run, now spent while the process waits for the next page).

        A tombstone is left to `_record_reads_and_conflicts`, which builds the cached copy of
        a deleted linked task from the one cached before the run: so when a later record of
        this read replaces a task put here by a tombstone (deleted between two pages), the
        copy from before the run is put back, and the cache holds exactly what it held before
        the read for every task the read does not end with alive."""
        store = self.store
        before: dict[str, SideTask | None] = {}  # the cached copy each id had before the read

        def seen(task: SideTask) -> None:
            if not task.id:
                return  # `SideRead.add` drops it too
            if task.deleted:
                if task.id in before:
                    old = before.pop(task.id)
                    if old is None:
                        store.drop_cached_task(side, task.id)
                    else:
                        store.put_cached_tasks([old])
                return
            if task.id not in before:
                before[task.id] = store.cached_task(side, task.id)
            store.put_cached_tasks([task])

        return seen

    def _settle_updates(self, reads: dict[Side, SideRead], dry_run: bool) -> dict[str, Link]:
        """Settle the updates crashed runs journaled but did not record (before planning).

        Per link and field, the journaled writes form a chain (oldest first; several runs may
        have died in a row). If the link's base is still a value of that chain (so no later
        run settled the field otherwise) and the side a write went to holds its value now (as
        read in this run, else as cached), that write landed: the base moves on to it, the
        newest such write winning, as if it had been confirmed. Otherwise the base stays and
        the planner writes again if it must. The entries leave the journal once two saves hold
        the new bases. Returns the changed links (a dry run plans with them, stores nothing)."""
        pending = self.journal.pending_updates()
        chains: dict[tuple[str, str], list[UpdateIntent]] = {}
        for intent in pending:
            for name in intent.fields:
                chains.setdefault((intent.link_key, name), []).append(intent)
        changed: dict[str, Link] = {}
        for (link_key, name), chain in chains.items():
            link = changed.get(link_key) or self.store.link(link_key)
            if link is None:
                continue  # unlinked or deleted since: nothing to settle
            known = {i.before.get(name) for i in chain} | {i.written.get(name) for i in chain}
            if link.base.get(name) not in known:
                continue  # the base moved on since these writes: they are history
            for intent in reversed(chain):
                task = reads[intent.target].tasks.get(intent.target_id) or self.store.cached_task(
                    intent.target, intent.target_id
                )
                if task is None or task.deleted:
                    continue
                written = intent.written.get(name)
                if intent.target is Side.SALESFORCE:
                    held = project_to_sf(intent.written).get(name)
                else:
                    held = written
                if task.fields.get(name) != held:
                    continue
                if link.base.get(name) != written:
                    link = dataclasses.replace(link, base=link.base.replace(**{name: written}))
                    changed[link_key] = link
                break
        if dry_run:
            return changed
        for link in changed.values():
            self.store.put_link(link)
        if changed:
            self.store.audit(
                "recover", f"settled the updates of {len(changed)} task(s) an interrupted run sent"
            )
            self._rows.touch(
                sc_ids=[link.sc_id for link in changed.values()],
                sf_ids=[link.sf_id for link in changed.values()],
            )
        held = {i.key for i in pending if i.link_key not in changed and self._state_holds(i)}
        self._saver.finish_after_save(i.key for i in pending if i.key not in held)
        self._saver.saved_once(held)
        return changed

    def _state_holds(self, intent: CreateIntent | UpdateIntent) -> bool:
        """The state file as loaded is at least as new as the save that first held this
        intent's outcome (not a restored `.bak` from before it): it is the authority."""
        return 0 < intent.saved <= self.store.generation

    def _touched_links(self, reads: dict[Side, SideRead]) -> list[Link]:
        """The links this run can act on: a side was read (changed, deleted, or re-read for a
        parked error), or the link has a parked conflict or an answer. Every other link is
        unchanged on both sides, so the planner would pass it by (rule 12); leaving it out
        keeps a run O(changes), not O(links)."""
        touched: dict[str, Link] = {}

        def add(link: Link | None) -> None:
            if link is not None:
                touched[link.key] = link

        for task_id in reads[Side.SALESCONNECT].tasks:
            add(self.store.link_by_sc(task_id))
        for task_id in reads[Side.SALESFORCE].tasks:
            add(self.store.link_by_sf(task_id))
        conflicts = {c.id: c for c in self.store.conflicts()}
        answered = [conflicts.get(r.conflict_id) for r in self.store.resolutions()]
        for conflict in [*conflicts.values(), *answered]:
            if conflict is None:
                continue
            add(self.store.link(f"{conflict.sc_id}|{conflict.sf_id}"))
            add(self.store.link_by_sc(conflict.sc_id))
            add(self.store.link_by_sf(conflict.sf_id))
        for error in self.store.errors():
            add(
                self.store.link_by_sc(error.task_id)
                if error.side is Side.SALESCONNECT
                else self.store.link_by_sf(error.task_id)
            )
        return list(touched.values())

    async def _record_reads_and_conflicts(
        self, reads: dict[Side, SideRead], the_plan: Any
    ) -> list[Conflict]:
        for read in reads.values():
            for count, task in enumerate(list(read.tasks.values()), 1):
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a big read: let the dashboard breathe
                if not task.deleted:
                    # Put already as its page was read (`_cache_as_read`), unless it came from
                    # a direct read, or the dashboard wrote its copy over it since.
                    if self.store.cached_task(read.side, task.id) is not task:
                        self.store.put_cached_tasks([task])
                    self._advance_link_version(read.side, task)
                else:
                    linked = (
                        self.store.link_by_sc(task.id)
                        if read.side is Side.SALESCONNECT
                        else self.store.link_by_sf(task.id)
                    )
                    if linked is None:
                        self.store.drop_cached_task(read.side, task.id)
                    else:
                        cached = self.store.cached_task(read.side, task.id)
                        base = cached or task
                        self.store.put_cached_tasks([dataclasses.replace(base, deleted=True)])
        old = {c.id: c for c in self.store.conflicts()}
        new_ids = {c.id for c in the_plan.conflicts}
        used = set(the_plan.resolved) - new_ids  # answers that became writes: see _settle_answers
        for conflict_id in set(old) - new_ids - used:
            self.store.delete_conflict(conflict_id)
        for conflict_id in set(the_plan.resolved) & new_ids:
            self.store.delete_resolution(conflict_id)  # stale: the conflict is asked again
        fresh = []
        for conflict in the_plan.conflicts:
            if conflict.id not in old or old[conflict.id] != conflict:
                fresh.append(conflict)
            self.store.put_conflict(conflict)
            if conflict.id not in old:
                self.store.audit(
                    "conflict",
                    conflict.message,
                    sc_id=conflict.sc_id,
                    sf_id=conflict.sf_id,
                    category="conflict",
                )
        return [c for c in fresh if c.id not in old]

    def _advance_link_version(self, side: Side, task: SideTask) -> None:
        """A Sales Connect read newer than the version kept on the task's link moves the link's
        version on, so that a later write never names a version the service has left behind
        (`If-Match`). Salesforce writes name no version, and nothing reads a link's
        `sf_version` (the cached task holds the one read): rewriting 10,000 links because an
        import's next run read its own creates back was a tenth of that run."""
        if side is not Side.SALESCONNECT or not task.version:
            return
        link = self.store.link_by_sc(task.id)
        if link is None:
            return
        newest = newest_version(link.sc_version, task.version)
        if newest != link.sc_version:
            self.store.put_link(dataclasses.replace(link, sc_version=newest))

    def _settle_answers(self, the_plan: Any, tally: Any) -> None:
        """Drop the answers this run used up, with their conflicts, once what they asked for
        was written. An answer whose link has a write that failed, or that a stopped run
        (daily limit, login) may not have sent, stays with its conflict: the next run re-reads
        the pair and carries the same answer out, instead of asking the user again."""
        new_ids = {c.id for c in the_plan.conflicts}
        for conflict_id in set(the_plan.resolved) - new_ids:
            conflict = self.store.conflict(conflict_id)
            if conflict is not None:
                ids = {(Side.SALESCONNECT, conflict.sc_id), (Side.SALESFORCE, conflict.sf_id)}
                if tally.stopped is not None or ids & tally.parked:
                    continue
                self.store.delete_conflict(conflict_id)
            self.store.delete_resolution(conflict_id)

    def _unanswered(self) -> list[Conflict]:
        return [c for c in self.store.conflicts() if self.store.resolution(c.id) is None]

    def _remember_skips(self, reads: dict[Side, SideRead], skipped: Iterable[Skip]) -> None:
        """Keep why each unlinked task is not synced, across runs and restarts.

        The planner only speaks of the tasks this run read; a task it is not shown again keeps
        its last reason. A task read again gets its new reason, or none. Saved with the run's
        own save (no extra write)."""
        # Looked up in each side's read, not in a set of (side, id) pairs: a 10,000-task read
        # would make and hash 10,000 pairs for the few reasons kept.
        skips = {
            (side, task_id): reason
            for (side, task_id), reason in self._skips.items()
            if task_id not in reads[side].tasks
        }
        skips.update({(s.side, s.task_id): s.reason for s in skipped})
        self._skips = {
            (side, task_id): reason
            for (side, task_id), reason in skips.items()
            if self.store.cached_task(side, task_id) is not None
            and (
                self.store.link_by_sc(task_id)
                if side is Side.SALESCONNECT
                else self.store.link_by_sf(task_id)
            )
            is None
        }
        _save_skips(self.store, self._skips)

    def _rows_wanted(self) -> bool:
        """Anyone keeps the dashboard rows or listens for changed ones. Neither (a headless
        `sync`): the row keys of what a run read and wrote are not worked out at all (an
        import's 10,000 of each); rows built later are built from the state as it is then."""
        return self._rows.is_built or self._bus.listening

    def _keys_of(self, reads: dict[Side, SideRead]) -> set[str]:
        keys: set[str] = set()
        for read in reads.values():
            for task_id in read.tasks:
                link = (
                    self.store.link_by_sc(task_id)
                    if read.side is Side.SALESCONNECT
                    else self.store.link_by_sf(task_id)
                )
                if link is not None:
                    keys.add(link.key)
                else:
                    keys.add(("sc:" if read.side is Side.SALESCONNECT else "sf:") + task_id)
        return keys

    def _advance_cursors(self, reads: dict[Side, SideRead], now: datetime) -> None:
        for side, read in reads.items():
            cursor = self.store.cursor(side)
            extra = dict(cursor.extra)
            if read.deleted_until is not None:
                extra["deleted_until"] = read.deleted_until.isoformat()
            elif read.reconciled:
                extra["deleted_until"] = now.isoformat()
            self.store.put_cursor(
                dataclasses.replace(cursor, watermark=read.watermark, last_success=now, extra=extra)
            )

    # -- crash recovery --------------------------------------------------------------------

    async def _recover(self, run_id: str, sc: SalesConnectSide, sf: SalesforceSide) -> None:
        """Settle creates a crashed run journaled: link what was created, forget the rest."""
        writer = PlanWriter(
            store=self.store,
            journal=self.journal,
            sc=sc,
            sf=sf,
            reads={},
            run_id=run_id,
            now=self.clock,
            saver=self._saver,
        )
        # A save of this state file (or of an older one) holds these outcomes: the state is
        # the authority (the link is there, or a later run removed it on purpose), and only
        # the trim is due. After a big import that is most of the journal: not read back.
        in_state: list[str] = self.journal.held_creates(self.store.generation)
        pending = self.journal.pending(held_by=self.store.generation)
        settled: list[str] = []
        todo: list[CreateIntent] = []
        confirmed = [i for i in pending if i.remote_id]
        for intent in confirmed:  # created and journaled; maybe only the state save was missed
            if self._state_holds(intent):
                # Saved in this state file or an older version of it: the link is in the
                # state, or a later run removed it on purpose (both tasks were deleted...).
                in_state.append(intent.key)
                continue
            if self._linked_to(intent):
                settled.append(intent.key)
                continue
            writer.record_created(intent, WriteResult(ok=True, id=intent.remote_id))
            settled.append(intent.key)
        for intent in pending:
            if intent.remote_id:
                continue
            source_linked = (
                self.store.link_by_sf(intent.source_id)
                if intent.target is Side.SALESCONNECT
                else self.store.link_by_sc(intent.source_id)
            )
            if self._state_holds(intent) or (
                source_linked is not None and not intent.replaces_link
            ):
                # the outcome (a parked error, or the link) was saved; only the trim was missed
                (in_state if self._state_holds(intent) else settled).append(intent.key)
            else:
                todo.append(intent)

        sf_intents = [i for i in todo if i.target is Side.SALESFORCE]
        if sf_intents:
            exclude = {link.sf_id for link in self.store.links().values()}
            found = await sf.find_created(
                [(i.key, i.fields, i.created_at or self.clock()) for i in sf_intents], exclude
            )
            for intent in sf_intents:
                if intent.key in found:
                    writer.record_created(intent, WriteResult(ok=True, id=found[intent.key]))
                settled.append(intent.key)  # not found: it never reached SF; the plan redoes it

        now = self.clock()
        sc_intents = [i for i in todo if i.target is Side.SALESCONNECT]
        replay = [i for i in sc_intents if now - (i.created_at or now) < SC_REPLAY_WINDOW]
        if replay:
            # The same Idempotency-Key returns the task the first attempt made, if it did.
            results = await sc.create([(i.key, i.fields) for i in replay])
            self.journal.confirm(
                (i.key, r.id) for i, r in zip(replay, results, strict=True) if r.ok and r.id
            )
            for intent, result in zip(replay, results, strict=True):
                if result.ok and result.id:
                    writer.record_created(intent, result)
                settled.append(intent.key)
        for intent in sc_intents:
            if intent in replay:
                continue
            found_id = await _find_sc_created(sc, intent, self.store)
            if found_id:
                writer.record_created(intent, WriteResult(ok=True, id=found_id))
            settled.append(intent.key)
        self._saver.saved_once(in_state)
        if not settled:
            return  # the last runs saved every outcome: the run's save trims them
        self.store.audit("recover", f"settled {len(settled)} journaled create(s)", run_id=run_id)
        self._rows.reset()
        # Recovery follows a crash (rare): its own save, so what it settled is safe at once.
        self._saver.finish_after_save(settled)
        self._saver.save()

    def _linked_to(self, intent: CreateIntent) -> bool:
        """The state holds the link this confirmed create made (nothing to record again)."""
        link = self._link_of_source(intent)
        if link is None:
            return False
        if not intent.replaces_link:
            return True
        made = link.sc_id if intent.target is Side.SALESCONNECT else link.sf_id
        return made == intent.remote_id

    def _link_of_source(self, intent: CreateIntent) -> Any:
        if intent.target is Side.SALESCONNECT:
            return self.store.link_by_sf(intent.source_id)
        return self.store.link_by_sc(intent.source_id)

    # -- the dashboard model ---------------------------------------------------------------

    def rows(self) -> list[Row]:
        """One row per link and per unlinked task (cached: only changed rows are rebuilt)."""
        return self._rows.rows()

    def rows_so_far(self) -> dict[str, Row]:
        """The rows as last built, by row key, without building any again: a task changed
        since shows as it was until `prepare_rows` or `rows` gets to it. For a UI that builds
        a long burst a slice at a time and shows what it has meanwhile."""
        return self._rows.built()

    def prepare_rows(self, limit: int = 200) -> bool:
        """Bring the rows of at most `limit` changed tasks up to date; True when `rows()` has
        nothing left to rebuild. For a UI loop: a burst of thousands of changed tasks is built
        a slice per call, not in one long `rows()`."""
        return self._rows.patch_some(limit)

    def _build_rows(self, sc_ids: set[str] | None, sf_ids: set[str] | None) -> list[Row]:
        """The rows of these tasks and of their link partners (None, None: every row)."""
        errors = [
            TaskError(e.side, e.task_id, e.category, e.message, e.at, e.action)
            for e in self.store.errors()
        ]
        # An answered conflict whose write failed shows as the error: the answer is kept and
        # the next run carries it out; there is nothing left to decide.
        failed = {(e.side, e.task_id) for e in errors}
        conflicts = [
            c
            for c in self.store.conflicts()
            if self.store.resolution(c.id) is None
            or not {(Side.SALESCONNECT, c.sc_id), (Side.SALESFORCE, c.sf_id)} & failed
        ]
        if sc_ids is None or sf_ids is None:
            links: Iterable[Link] = self.store.links().values()
            sc_tasks = self.store.cached_tasks(Side.SALESCONNECT)
            sf_tasks = self.store.cached_tasks(Side.SALESFORCE)
        else:
            chosen: dict[str, Link] = {}
            sc_tasks, sf_tasks = {}, {}
            for side, ids, tasks in (
                (Side.SALESCONNECT, sc_ids, sc_tasks),
                (Side.SALESFORCE, sf_ids, sf_tasks),
            ):
                for task_id in ids:
                    link = self._link_of_task(side, task_id)
                    if link is not None:
                        chosen[link.key] = link
                    task = self.store.cached_task(side, task_id)
                    if task is not None:
                        tasks[task_id] = task
            for link in chosen.values():
                for side, task_id, tasks in (
                    (Side.SALESCONNECT, link.sc_id, sc_tasks),
                    (Side.SALESFORCE, link.sf_id, sf_tasks),
                ):
                    task = self.store.cached_task(side, task_id)
                    if task is not None:
                        tasks[task_id] = task
            links = chosen.values()
        skipped = {
            key: reason
            for key, reason in self._skips.items()
            if (sc_tasks if key[0] is Side.SALESCONNECT else sf_tasks).get(key[1]) is not None
        }
        enabled_at = self.store.settings.enabled_at
        for task in sc_tasks.values():
            key = (Side.SALESCONNECT, task.id)
            if (
                key not in skipped
                and enabled_at
                and task.created_at
                and task.created_at < enabled_at
            ):
                skipped[key] = "created before sync was enabled"
        return build_rows(links, sc_tasks, sf_tasks, conflicts, errors, skipped)

    def _link_of_task(self, side: Side, task_id: str) -> Link | None:
        if side is Side.SALESCONNECT:
            return self.store.link_by_sc(task_id)
        return self.store.link_by_sf(task_id)

    def conflicts(self) -> list[Conflict]:
        return sorted(self.store.conflicts(), key=lambda c: c.id)

    @_holding_the_store
    async def resolve(self, conflict_id: str, resolution: Resolution) -> None:
        """Save the user's answer; the next run applies it (and one is requested now)."""
        if resolution.conflict_id != conflict_id:
            resolution = dataclasses.replace(resolution, conflict_id=conflict_id)
        conflict = self.store.conflict(conflict_id)
        if conflict is None:
            raise EngineError(f"no conflict {conflict_id!r} is waiting (it may be settled).")
        self.store.put_resolution(resolution)
        self.store.audit(
            "resolve",
            ", ".join(f"{k}: {v}" for k, v in resolution.choices.items()),
            sc_id=conflict.sc_id,
            sf_id=conflict.sf_id,
        )
        self.store.save()
        self._rows.touch(sc_ids=[conflict.sc_id], sf_ids=[conflict.sf_id])
        self._emit(StatusChanged())

    def activity(self, limit: int = 500) -> list[dict]:
        return self.store.activity(limit)

    def status(self) -> EngineStatus:
        settings = self.store.settings
        counts = self.store.counts()
        connections = self._connected()
        sc_cursor = self.store.cursor(Side.SALESCONNECT)
        last_success = sc_cursor.last_success
        last = self._last
        last_run = last.finished_at if last else None
        last_outcome = str(last.outcome) if last else None
        last_message = last.message if last else ""
        if last is None:
            entries = [e for e in self.store.activity(500) if e.get("kind") == "run"]
            if entries:
                last_run = datetime.fromisoformat(entries[0]["at"])
                last_outcome = entries[0].get("category") or None
                last_message = entries[0].get("message", "")
        api_used, api_max = self._api
        if api_used is None:
            extra = self.store.cursor(Side.SALESFORCE).extra
            api_used = int(extra["api_used"]) if extra.get("api_used") else None
            api_max = int(extra["api_max"]) if extra.get("api_max") else None
        if not all(connections.values()):
            state = "not_connected"
        elif not settings.enabled:
            state = "disabled"
        elif self._running:
            state = "running"
        elif self.scheduler.retry_at and self.scheduler.retry_at > self.clock():
            state = "waiting"
        else:
            state = "idle"
        pending = self._rows.count(RowState.PENDING)
        return EngineStatus(
            state=state,
            enabled=settings.enabled,
            enabled_at=settings.enabled_at,
            connections=connections,
            last_run=last_run,
            last_success=last_success,
            last_outcome=last_outcome,
            last_message=last_message,
            next_run=self.scheduler.next_run_at,
            retry_at=self.scheduler.retry_at,
            api_used=api_used,
            api_max=api_max,
            links=counts["links"],
            conflicts=counts["conflicts"],
            errors=counts["errors"],
            pending=pending,
            phase=self._phase,
            progress_done=self._progress[0],
            progress_total=self._progress[1],
        )

    # -- editing from the dashboard --------------------------------------------------------

    @_holding_the_store
    async def edit_task(self, side: Side, task_id: str, changes: dict) -> None:
        """Write field changes to that side's service; the next run carries them across."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise EngineError(f"unknown field(s): {', '.join(sorted(unknown))}")
        sc, sf = await self._connect()
        if side is Side.SALESCONNECT:
            cached = self.store.cached_task(side, task_id)
            link = self.store.link_by_sc(task_id)
            version = (cached.version if cached else "") or (link.sc_version if link else "")
            [result] = await sc.update([(task_id, version, changes)])
            if not result.ok and result.error is not None and result.error.category == "conflict":
                result = await self._retry_sc_edit(sc, task_id, cached, changes)
        else:
            [result] = await sf.update([(task_id, changes)])
        self._after_edit(side, task_id, result, changes, "edit")

    async def _retry_sc_edit(
        self, sc: SalesConnectSide, task_id: str, cached: SideTask | None, changes: dict
    ) -> WriteResult:
        """The task changed in Sales Connect since we last read it. If the fields the user
        edited are as the user saw them, apply the edit on the fresh version; otherwise the
        edit would overwrite a change the user has not seen: refuse, with the reason."""
        fresh = (await sc.fetch([task_id])).get(task_id)
        if fresh is None:
            raise EngineError("The task was deleted in Sales Connect meanwhile.")
        self.store.put_cached_tasks([fresh])
        self._rows.touch(sc_ids=[task_id])
        seen = cached.fields if cached is not None else None
        moved = [n for n in changes if seen is None or fresh.fields.get(n) != seen.get(n)]
        if moved:
            self.store.save()
            raise EngineError(
                f"The task changed in Sales Connect meanwhile ({', '.join(moved)}); "
                "look at the new values and edit again."
            )
        [result] = await sc.update([(task_id, fresh.version, changes)])
        return result

    @_holding_the_store
    async def create_task(self, side: Side, task: Task) -> str:
        """Create a task on that side; returns its id. The next run copies it across."""
        sc, sf = await self._connect()
        target = sc if side is Side.SALESCONNECT else sf
        [result] = await target.create([(f"rs-ui-{uuid.uuid4().hex}", task)])
        if not result.ok or not result.id:
            raise result.error or EngineError("the service did not return the new task's id")
        now = self.clock()
        created = result.task or SideTask(
            side=side, id=result.id, fields=task, created_at=now, updated_at=now
        )
        self.store.put_cached_tasks([created])
        self.store.audit(
            "create",
            "created from the dashboard",
            side=side,
            after=task,
            sc_id=result.id if side is Side.SALESCONNECT else None,
            sf_id=result.id if side is Side.SALESFORCE else None,
        )
        self.store.save()
        self._emit(TasksChanged((("sc:" if side is Side.SALESCONNECT else "sf:") + result.id,)))
        self.request_sync()
        return result.id

    @_holding_the_store
    async def delete_task(self, side: Side, task_id: str) -> None:
        sc, sf = await self._connect()
        if side is Side.SALESCONNECT:
            cached = self.store.cached_task(side, task_id)
            [result] = await sc.delete([(task_id, cached.version if cached else "")])
        else:
            [result] = await sf.delete([task_id])
        self._after_edit(side, task_id, result, None, "delete")

    def _after_edit(
        self, side: Side, task_id: str, result: WriteResult, changes: dict | None, what: str
    ) -> None:
        if not result.ok:
            raise result.error or EngineError(f"{side.label} refused the {what}")
        cached = self.store.cached_task(side, task_id)
        if changes is None:
            if cached is not None:
                self.store.put_cached_tasks([dataclasses.replace(cached, deleted=True)])
        elif result.task is not None:
            self.store.put_cached_tasks([result.task])
        elif cached is not None:
            self.store.put_cached_tasks(
                [dataclasses.replace(cached, fields=cached.fields.replace(**changes))]
            )
        link = (
            self.store.link_by_sc(task_id)
            if side is Side.SALESCONNECT
            else self.store.link_by_sf(task_id)
        )
        self.store.audit(
            what,
            f"{what} from the dashboard",
            side=side,
            sc_id=link.sc_id if link else (task_id if side is Side.SALESCONNECT else None),
            sf_id=link.sf_id if link else (task_id if side is Side.SALESFORCE else None),
            before=cached.fields if cached else None,
            after=changes,
        )
        self.store.save()
        key = link.key if link else ("sc:" if side is Side.SALESCONNECT else "sf:") + task_id
        self._emit(TasksChanged((key,)))
        self.request_sync()


# The planner's reasons for unlinked tasks it leaves alone, for the dashboard after a restart.
SKIPS_TABLE = "skip_reasons"


def _load_skips(store: StateStore) -> dict[tuple[Side, str], str]:
    skips: dict[tuple[Side, str], str] = {}
    for doc in store.db.table(SKIPS_TABLE).all():
        try:
            skips[(Side(doc["side"]), str(doc["id"]))] = str(doc["reason"])
        except (KeyError, ValueError):
            continue  # a damaged entry only loses its reason (shown as pending)
    return skips


def _save_skips(store: StateStore, skips: dict[tuple[Side, str], str]) -> None:
    """Replace the saved reasons (in memory; the store's next save writes them)."""
    docs = [
        {"side": side.value, "id": task_id, "reason": reason}
        for (side, task_id), reason in sorted(skips.items())
    ]
    table = store.db.table(SKIPS_TABLE)
    if table.all() != docs:
        table.truncate()
        table.insert_multiple(docs)


async def _find_sc_created(sc: SalesConnectSide, intent: CreateIntent, store: StateStore) -> str:
    """An old SC intent (its Idempotency-Key expired): find the task by content."""
    since = (intent.created_at or _utcnow()) - timedelta(minutes=10)
    for task in await sc.changed(since):
        if task.deleted or store.link_by_sc(task.id) is not None:
            continue
        if task.created_at and task.created_at < since:
            continue
        if (
            task.fields.name == intent.fields.name
            and task.fields.due_date == intent.fields.due_date
        ):
            return task.id
    return ""


def _plan_and_describe(*args: Any, **kwargs: Any) -> tuple[Any, tuple[PlannedChange, ...]]:
    the_plan = make_plan(*args, **kwargs)
    return the_plan, tuple(_describe(a) for a in the_plan.actions)


def _describe(action: Action) -> PlannedChange:
    # Kept with the run summary: shared strings and field tuples (50k of these at an import).
    return PlannedChange(
        action=action.kind._value_,  # not `.value`: an enum property is a slow read
        target=action.target._value_ if action.target else "",
        sc_id=action.sc_id,
        sf_id=action.sf_id,
        fields=_field_tuple(frozenset(action.changes)),
        reason=action.reason,
    )


@functools.cache
def _field_tuple(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(k for k in FIELDS if k in names)


# --- helpers for the CLI and the TUI -------------------------------------------------------


def resolution_taking(conflict: Conflict, side: Side) -> Resolution:
    """The resolution "take this side" for every disputed field (or the record, for
    edit-vs-delete: taking the deleted side deletes, taking the edited side restores)."""
    if conflict.kind is ConflictKind.EDIT_VS_DELETE:
        choice = Choice.DELETE if side is conflict.deleted_side else Choice.RESTORE
        return Resolution(conflict.id, {"record": choice})
    take = Choice.TAKE_SALESCONNECT if side is Side.SALESCONNECT else Choice.TAKE_SALESFORCE
    return Resolution(conflict.id, {name: take for name in conflict.fields})


def conflict_as_dict(conflict: Conflict) -> dict[str, Any]:
    def show(task: Task | None, name: str) -> Any:
        if task is None:
            return None
        value = task.get(name)
        return value.isoformat() if hasattr(value, "isoformat") else value

    names = conflict.fields or FIELDS
    return {
        "id": conflict.id,
        "kind": str(conflict.kind),
        "sc_id": conflict.sc_id,
        "sf_id": conflict.sf_id,
        "fields": list(conflict.fields),
        "deleted_side": str(conflict.deleted_side) if conflict.deleted_side else None,
        "summary": conflict.message,
        "values": {
            name: {
                "base": show(conflict.base, name),
                "salesconnect": show(conflict.sc, name),
                "salesforce": show(conflict.sf, name),
            }
            for name in names
        },
    }


def default_secret_store() -> Any:
    """The OS keyring (sync.secrets), as SPEC section 6 requires."""
    from sync.secrets import KeyringStore

    return KeyringStore()


class ReadOnlyJournal:
    """For a read-only engine (status while another process syncs): never written."""

    def pending(self, *, held_by: int = 0) -> list[CreateIntent]:
        return []

    def has_pending_creates(self) -> bool:
        return False

    def held_creates(self, generation: int) -> list[str]:
        return []

    def pending_updates(self) -> list[UpdateIntent]:
        return []

    def mark_saved(self, keys: Iterable[str], generation: int) -> None:
        return None

    def finish(self, keys: Iterable[str]) -> None:
        return None

    def close(self) -> None:
        return None


def build_engine(
    home: Path | None,
    secrets: Any,
    *,
    clock: Clock = _utcnow,
    sides: SidesFactory | None = None,
    transports: dict[str, Any] | None = None,
    read_only: bool = False,
) -> SyncEngine:
    """The engine over the state in `home` (default: REMINDER_SYNC_HOME or the platform's
    user data directory), logging in with the secrets in `secrets`.

    `sides` overrides how the two services are reached (the demo and tests pass emulators);
    by default they are built from the saved connections (`reminder-sync connect ...`).
    """
    from sync.connections import ServiceLinks

    home = Path(home) if home is not None else paths.home_dir()
    store = StateStore.open(paths.state_file(home), read_only=read_only)
    try:
        journal = ReadOnlyJournal() if read_only else IntentJournal.open(paths.journal_file(home))
    except BaseException:
        store.close()
        raise
    links = ServiceLinks(store, secrets, transports=transports or {})
    return SyncEngine(
        store=store,
        journal=journal,
        sides=sides or links.open_sides,
        clock=clock,
        connected=links.connected,
        close_sides=links.aclose,
    )


__all__ = [
    "EngineError",
    "Row",
    "RowState",
    "SyncEngine",
    "build_engine",
    "conflict_as_dict",
    "default_secret_store",
    "resolution_taking",
]
