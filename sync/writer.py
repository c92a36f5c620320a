"""The write and record phases of a run: carry out a plan, keep what was confirmed.

Order: local-only steps, then per side updates, creates and deletes, in batches of 200 (one SF
collection call, one SC batch call). Creates are written to the journal, durably, before they are
sent; each carries its correlation key (see `sync.sides`). Every record's result is handled on
its own: a failure parks that task with its error (the next run re-reads and retries it) and the
run goes on. Links, bases and cached tasks change only for confirmed writes. A daily limit or an
auth failure stops the writes (what was confirmed is kept) and is reported to the engine.

Saving: the state file is rewritten whole on every save, so a run saves it once, at its end
(`StateSaver.save`, called by the engine), plus a checkpoint during a long run (`checkpoint`:
every CHECKPOINT_SECONDS, or once CHECKPOINT_INTENTS journaled creates wait), so a crash loses
little. Crash safety does not depend on a save per batch: every create is in the journal before
it is sent and its remote id is in the journal once confirmed, so recovery can link it again
(`SyncEngine._recover`). A journal entry is dropped only once two saves hold its outcome: the
state file and its `.bak` (the previous version), so a damaged state file restored from the
`.bak` still links every create. Updates are journaled the same way (what each one writes), so
that a crash before the save does not leave the base behind the value the engine wrote. The
first save that holds an entry's outcome is marked in the journal (one appended line), so the
second one may be the next run's, even in another process: every run saves once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.connectors.http import ServiceError, cancel_and_wait
from sync.failpoints import failpoint
from sync.journal import new_correlation_key, new_correlation_keys
from sync.journal_adapter import CreateIntent, IntentJournal, UpdateIntent
from sync.mapping import project_to_sf
from sync.model import FIELDS, Action, ActionKind, Link, Side, SideTask, Task, settle_base
from sync.reader import SideRead
from sync.sides import SalesConnectSide, SalesforceSide, WriteResult
from sync.store import ParkedError, StateStore
from sync.worker import finish_in_thread

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# Batches of creates sent before the one before them is recorded: on a WAN, that many round
# trips overlap (3: an import's write time about halved at 200 ms a call; no change on loopback,
# where the engine sets the pace). docs/benchmarks.md, section 3.
CREATES_AHEAD = 3
RECORD_YIELD_EVERY = 50  # results recorded between two yields to the event loop
GROUP_YIELD_EVERY = 2_000  # actions sorted into batches between two yields
STOP_CATEGORIES = frozenset({"limit", "auth"})  # no point in sending the rest of the run
_LOCAL_KINDS = frozenset({ActionKind.SET_BASE, ActionKind.UNLINK})  # no call to a service
# A long run saves at least this often, so a crash loses little work (seconds).
CHECKPOINT_SECONDS = 10.0
# ...and once this many journaled creates wait for the save that records their links, so that
# recovery after a crash has a bounded number of intents to settle (about a second's work) and
# the journal a bounded size. A crash loses none of them either way (each confirmed id is in the
# journal, and recovery links it without a remote call, ~0.1 ms each). Not lower: a checkpoint
# rewrites the whole state (0.1 s at 10,000 links), and the journal then rewrites the intents it
# keeps once the next save drops the first ones (80 ms at 5,000): at 5,000, a 10,000-task import
# spent 5% of its time on them, a 50,000-task one saved 10 times instead of 5.
CHECKPOINT_INTENTS = 10_000


class StateSaver:
    """Saves the state file for the engine: once per run, plus checkpoints during a long run.

    Journal entries whose outcome (a link, a parked error, a settled base) is in memory wait
    here. They leave the journal only after the second save that holds that outcome (the first
    one's file is then the `.bak`), never before: a crash, or a restore of the `.bak`, leaves
    them in the journal, and recovery settles them again. The first save is marked in the
    journal, so the second one may be the next run's, in another process: a run saves once.
    """

    def __init__(
        self,
        store: StateStore,
        journal: IntentJournal,
        *,
        interval: float = CHECKPOINT_SECONDS,
        max_waiting: int = CHECKPOINT_INTENTS,
        clock: Callable[[], float] = time.monotonic,
        off_loop: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        # How a save leaves the event loop (the engine: a worker thread, with the store
        # locked against edits from the dashboard); None: save on the loop.
        self._off_loop = off_loop
        self.interval = interval
        self.max_waiting = max_waiting
        self._clock = clock
        self._waiting: dict[str, None] = {}  # outcome in memory only
        self._saved_once: dict[str, None] = {}  # outcome in the state file, not yet in its .bak
        self._last = clock()

    def begin_run(self) -> None:
        """A run starts: the checkpoint interval counts from here."""
        self._last = self._clock()

    def finish_after_save(self, keys: Iterable[str]) -> None:
        """Drop these journal entries once two saves have held their outcome (from now)."""
        for key in keys:
            self._saved_once.pop(key, None)
            self._waiting[key] = None

    def saved_once(self, keys: Iterable[str]) -> None:
        """These entries' outcome is already in the state file (a save marked them, and
        recovery found nothing to redo): they go after the next save."""
        for key in keys:
            if key not in self._waiting:
                self._saved_once[key] = None

    @property
    def waiting(self) -> int:
        """Journal entries whose outcome is not saved yet."""
        return len(self._waiting)

    def due(self, sent: int = 0) -> bool:
        """The last save is old enough, or many journal entries wait (with `sent` more whose
        results are on their way)."""
        return (
            self._clock() - self._last >= self.interval
            or len(self._waiting) + sent >= self.max_waiting
        )

    async def checkpoint(self) -> bool:
        """Save if one is `due`. True if it did."""
        if self.due():
            await self.save_off_loop()
            return True
        return False

    async def save_off_loop(self) -> None:
        """`save`, without holding up the event loop (a 10k-link state takes ~0.3 s)."""
        if self._off_loop is None:
            self.save()
        else:
            await self._off_loop(self.save)

    def save(self) -> None:
        """Write the state (if it changed), then drop the journal entries it made redundant."""
        failpoint("before_state_save")
        wrote = self.store.save()
        failpoint("after_state_save")
        self._last = self._clock()
        if not wrote:
            return  # nothing changed: the file and its .bak are as they were
        done, self._saved_once, self._waiting = self._saved_once, self._waiting, {}
        if done:
            self.journal.finish(done)
        if self._saved_once:
            self.journal.mark_saved(self._saved_once, self.store.generation)


@dataclass
class WriteTally:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    linked: int = 0
    errors: int = 0
    parked: set[tuple[Side, str]] = field(default_factory=set)
    stopped: ServiceError | None = None  # the error that ended the writes early


class StopWrites(Exception):
    """Raised inside the writer when a batch failure means the rest cannot succeed."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _SentCreates:
    """A batch of creates journaled and sent, its results still to come."""

    side: Side
    intents: list[CreateIntent]
    now: datetime
    results: asyncio.Future[list[WriteResult]]


# Per side a task is created in: the other side, and the activity log's message.
_CREATED_IN = {
    side: (side.other, f"created in {side.label} from {side.other.label}") for side in Side
}


def _row_keys(sc_id: str | None, sf_id: str | None) -> set[str]:
    keys = set()
    if sc_id and sf_id:
        keys.add(f"{sc_id}|{sf_id}")
    if sc_id:
        keys.add(f"sc:{sc_id}")
    if sf_id:
        keys.add(f"sf:{sf_id}")
    return keys


def newest_version(*versions: str) -> str:
    """The newest of some versions of one task: SC versions are counters (compared as
    numbers), SF versions ISO timestamps of one format (compared as text); empty = unknown."""
    known = [v for v in versions if v]
    if not known:
        return ""
    if all(v.isdigit() for v in known):
        return max(known, key=int)
    return max(known)


class PlanWriter:
    def __init__(
        self,
        *,
        store: StateStore,
        journal: IntentJournal,
        sc: SalesConnectSide,
        sf: SalesforceSide,
        reads: Mapping[Side, SideRead],
        run_id: str,
        now: Callable[[], datetime],
        saver: StateSaver,
        progress: Callable[[int, int], None] = lambda done, total: None,
        changed: Callable[[set[str]], None] = lambda keys: None,
        rows_wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        """`changed` hears the dashboard row keys each batch changed (in memory; the state is
        saved by `saver`: checkpoints here, the run's one save by the engine), while
        `rows_wanted()` says anyone keeps rows or listens (a headless `sync` does neither: an
        import's 10,000 created tasks then make no keys)."""
        self.store = store
        self.journal = journal
        self.saver = saver
        self.sides: dict[Side, Any] = {Side.SALESCONNECT: sc, Side.SALESFORCE: sf}
        self.reads = reads
        self.run_id = run_id
        self.now = now
        self.progress = progress
        self.changed = changed
        self.rows_wanted = rows_wanted
        self.tally = WriteTally()
        self._done = 0
        self._total = 0
        self._pending_keys: set[str] = set()

    # -- driver ----------------------------------------------------------------------------

    async def execute(self, actions: Sequence[Action]) -> WriteTally:
        """Carry out `actions`. A checkpoint may follow any batch but the last: the engine
        saves once the writes are done, and a checkpoint just before would rewrite the same
        state twice."""
        self._total = len(actions)
        local = []
        groups: dict[tuple[Side, ActionKind], list[Action]] = {
            (side, kind): []
            for side in (Side.SALESCONNECT, Side.SALESFORCE)
            for kind in (ActionKind.UPDATE, ActionKind.CREATE, ActionKind.DELETE)
        }
        for count, action in enumerate(actions, 1):  # one pass: an import plans 10,000 actions
            if count % GROUP_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # the dashboard's turn
            if action.kind in _LOCAL_KINDS:
                local.append(action)
            else:
                groups[action.target, action.kind].append(action)
        for action in local:
            self._record_local(action)
        self._step(len(local))
        self._announce()
        await asyncio.sleep(0)
        batches = [
            (side, kind, group[start : start + BATCH_SIZE])
            for (side, kind), group in groups.items()
            for start in range(0, len(group), BATCH_SIZE)
        ]
        # Creates run ahead: a batch is recorded once the CREATES_AHEAD batches after it are
        # journaled and on their way, so the service always has work while we record (on a
        # WAN, several round trips overlap). Everything else, and every checkpoint, waits for
        # every batch sent to be recorded.
        in_flight: deque[_SentCreates] = deque()
        try:
            for side, kind, batch in batches:
                if in_flight and (
                    kind is not ActionKind.CREATE
                    or side is not in_flight[0].side
                    or self.saver.due(sent=sum(len(sent.intents) for sent in in_flight))
                ):
                    while in_flight:
                        await self._finish_creates(in_flight.popleft())
                await self.saver.checkpoint()  # before the batch: none after the last one
                if kind is ActionKind.CREATE:
                    in_flight.append(await self._send_creates(side, batch))
                    if len(in_flight) > CREATES_AHEAD:
                        await self._finish_creates(in_flight.popleft())
                    continue
                await self._batch(side, kind, batch)
                self._step(len(batch))
                self._announce()
            while in_flight:
                await self._finish_creates(in_flight.popleft())
        except StopWrites as stop:
            while in_flight:  # already sent: what they created is linked all the same
                with contextlib.suppress(StopWrites):
                    await self._finish_creates(in_flight.popleft())
            self.tally.stopped = stop.error
            self._announce()
        finally:
            for sent in in_flight:  # failing or cancelled: as after a crash, the journal
                await cancel_and_wait(sent.results)  # settles these batches next run
        return self.tally

    async def _finish_creates(self, sent: _SentCreates) -> None:
        await self._record_creates(sent)
        self._step(len(sent.intents))
        self._announce()

    def _step(self, count: int) -> None:
        self._done += count
        self.progress(self._done, self._total)

    def _announce(self) -> None:
        """Tell the engine which dashboard rows the last batch changed (in memory)."""
        if self._pending_keys:
            self.changed(set(self._pending_keys))
            self._pending_keys.clear()

    async def _batch(self, side: Side, kind: ActionKind, batch: list[Action]) -> None:
        """Updates and deletes, one batch at a time (creates: `execute`)."""
        if kind is ActionKind.UPDATE:
            await self._updates(side, batch)
        else:
            await self._deletes(side, batch)

    def _batch_failed(self, error: ServiceError, failures: Iterable[tuple[Side, str, str]]) -> None:
        """A whole call failed: park every task in it, or stop the run's writes."""
        if error.category in STOP_CATEGORIES:
            raise StopWrites(error)
        for side, task_id, action in failures:
            self._park(side, task_id, error, action)

    # -- updates -----------------------------------------------------------------------------

    def _sc_version(self, sc_id: str) -> str:
        """The If-Match version: the newest the engine has seen of the task (this run's read,
        else the newer of the cached task and the link; the link's moves only with the
        engine's own writes and recorded reads, so it can lag behind the cache)."""
        task = self.reads[Side.SALESCONNECT].tasks.get(sc_id) if self.reads else None
        if task is not None and task.version:
            return task.version
        cached = self.store.cached_task(Side.SALESCONNECT, sc_id)
        link = self.store.link_by_sc(sc_id)
        return newest_version(
            cached.version if cached is not None else "", link.sc_version if link else ""
        )

    def _update_intents(self, side: Side, batch: list[Action]) -> list[UpdateIntent]:
        """What each update writes, for the journal: if the run dies before the state save,
        the next run sees the values are its own (`SyncEngine._settle_updates`)."""
        intents = []
        for action in batch:
            link = self._link_of(action)
            if link is None:
                continue
            written = {k: v for k, v in action.changes.items() if k in FIELDS}
            intents.append(
                UpdateIntent(
                    key=new_correlation_key(),
                    link_key=link.key,
                    target=side,
                    fields=tuple(written),
                    before=link.base,
                    written=link.base.replace(**written),
                    run_id=self.run_id,
                )
            )
        return intents

    async def _updates(self, side: Side, batch: list[Action]) -> None:
        target_ids = [a.sc_id if side is Side.SALESCONNECT else a.sf_id for a in batch]
        intents = self._update_intents(side, batch)
        # Write-ahead, as for creates: the intents are on disk before anything is sent.
        self.journal.begin(intents)
        try:
            failpoint("before_remote_update")
            if side is Side.SALESCONNECT:
                items = [
                    (a.sc_id, self._sc_version(a.sc_id), dict(a.changes)) for a in batch if a.sc_id
                ]
                results = await self.sides[side].update(items)
            else:
                results = await self.sides[side].update([(a.sf_id, dict(a.changes)) for a in batch])
            failpoint("after_remote_update")
        except ServiceError as error:
            # The call may have reached the service: the intents stay for the next run, which
            # compares the values it reads with them.
            self._batch_failed(error, ((side, i or "", "update") for i in target_ids))
            return
        for action, result in zip(batch, results, strict=True):
            task_id = action.sc_id if side is Side.SALESCONNECT else action.sf_id
            if not result.ok:
                self._park(side, task_id or "", result.error, "update")
                continue
            self._record_update(side, action, result)
        # Each update is settled (base moved on) or refused: the entries go once that is saved.
        self.saver.finish_after_save(i.key for i in intents)

    def _record_update(self, side: Side, action: Action, result: WriteResult) -> None:
        link = self._link_of(action)
        if link is None:
            return
        changes = {}
        if side is Side.SALESCONNECT and result.task is not None:
            changes["sc_version"] = result.task.version
        new = dataclasses.replace(
            link, base=settle_base(link.base, action), notes=dict(action.notes), **changes
        )
        self.store.put_link(new)
        self._cache_written(
            side,
            action.sc_id if side is Side.SALESCONNECT else action.sf_id,
            dict(action.changes),
            result.task,
        )
        self.store.clear_error(
            side, (action.sc_id if side is Side.SALESCONNECT else action.sf_id) or ""
        )
        self.tally.updated[side.value] += 1
        self.store.audit(
            "update",
            action.reason,
            run_id=self.run_id,
            side=side,
            sc_id=action.sc_id,
            sf_id=action.sf_id,
            before={k: link.base.get(k) for k in action.changes},
            after=dict(action.changes),
        )
        self._pending_keys |= _row_keys(action.sc_id, action.sf_id)

    # -- creates -----------------------------------------------------------------------------

    async def _send_creates(self, side: Side, batch: list[Action]) -> _SentCreates:
        """Journal the batch's creates (write-ahead: on disk before anything is sent) and send
        them; the call runs on while the caller goes on (`_record_creates` waits for it)."""
        intents = []
        now = self.now()  # one time for the batch: the journal writes it once
        keys = new_correlation_keys(len(batch))
        for count, (action, key) in enumerate(zip(batch, keys, strict=True), 1):
            if count % RECORD_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # 200 intents take 5-10 ms: the dashboard's turn between
            source = action.sf_id if side is Side.SALESCONNECT else action.sc_id
            restore_of = None
            if side is Side.SALESCONNECT and action.sf_id:
                old = self.store.link_by_sf(action.sf_id)
                restore_of = old.key if old else None
            elif side is Side.SALESFORCE and action.sc_id:
                old = self.store.link_by_sc(action.sc_id)
                restore_of = old.key if old else None
            base = action.new_base or Task(**{k: action.changes.get(k) for k in FIELDS})
            # What is sent: the base with the changes that differ from it (a plain create has
            # none, and sends its base object itself: no second Task per created task).
            fields = base.replace(
                **{k: v for k, v in action.changes.items() if k in FIELDS and v != getattr(base, k)}
            )
            intents.append(
                CreateIntent(
                    key=key,
                    target=side,
                    source_id=source or "",
                    fields=fields,
                    base=base,
                    notes=dict(action.notes),
                    created_at=now,
                    run_id=self.run_id,
                    replaces_link=restore_of,
                )
            )
        # On disk before the batch is sent, as always; the encoding and the fsync (~5-10 ms)
        # on a worker thread, so the loop (the dashboard) is not held meanwhile. Nothing else
        # uses the journal then: the writer awaits each of its calls in turn, to their end.
        await finish_in_thread(self.journal.begin, intents)
        failpoint("before_remote_create")
        results = asyncio.ensure_future(
            self.sides[side].create([(i.key, i.fields) for i in intents])
        )
        await asyncio.sleep(0)  # the call goes out now, not after the caller's next steps
        return _SentCreates(side, intents, now, results)

    async def _record_creates(self, sent: _SentCreates) -> None:
        side, intents, now = sent.side, sent.intents, sent.now
        try:
            results = await sent.results
        except ServiceError as error:
            # The call may or may not have reached the service: the intents stay in the journal
            # and the next run settles them (replay with the same key, or look them up).
            failures = ((side.other, i.source_id, "create") for i in intents)
            self._batch_failed(error, failures)
            return
        failpoint("after_remote_create")
        # The remote ids go to the journal before the state save, so a crash in between
        # only needs the link put back, not a lookup (with its fsync on a worker thread).
        confirmed = [(i.key, r.id) for i, r in zip(intents, results, strict=True) if r.ok and r.id]
        await finish_in_thread(self.journal.confirm, confirmed)
        failpoint("after_journal_confirm")
        settled = []
        for count, (intent, result) in enumerate(zip(intents, results, strict=True), 1):
            if count % RECORD_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a link costs 35-65 us to record (a loaded machine: more)
            if result.ok and result.id:
                self.record_created(intent, result, now=now)
            else:
                self._park(side.other, intent.source_id, result.error, "create")
            settled.append(intent.key)
        # The journal entries go only once the links they produced are saved.
        self.saver.finish_after_save(settled)

    def record_created(
        self, intent: CreateIntent, result: WriteResult, *, now: datetime | None = None
    ) -> None:
        """Link the created task to its source (also used when recovering the journal).
        `now`: the time of the batch (the cached task's and the log entry's time)."""
        now = now or self.now()
        target = intent.target
        other, message = _CREATED_IN[target]  # enum properties are slow reads: once per side
        new_id = result.id or ""
        if target is Side.SALESCONNECT:
            sc_id, sf_id = new_id, intent.source_id
        else:
            sc_id, sf_id = intent.source_id, new_id
        if intent.replaces_link:
            old = self.store.delete_link(intent.replaces_link)
            if old is not None:
                gone = old.sf_id if target is Side.SALESFORCE else old.sc_id
                self.store.drop_cached_task(target, gone)
        source_task = self.reads[other].tasks.get(intent.source_id) if self.reads else None
        notes = {**intent.notes, **result.notes} if intent.notes or result.notes else None
        link = Link(
            sc_id=sc_id,
            sf_id=sf_id,
            base=intent.base,
            sc_version=(
                result.task.version
                if target is Side.SALESCONNECT and result.task
                else (source_task.version if source_task else "")
            ),
            sf_version=source_task.version if target is Side.SALESCONNECT and source_task else "",
            **({"notes": notes} if notes else {}),
        )
        existing = self.store.link_by_sc(sc_id) or self.store.link_by_sf(sf_id)
        if existing is not None and existing.key != link.key:
            self.store.delete_link(existing.key)
        self.store.put_link(link)
        if result.task is not None:
            self.store.put_cached_tasks([result.task])
        elif new_id:  # what the service holds now: the fields sent, as it keeps them
            fields = project_to_sf(intent.fields) if target is Side.SALESFORCE else intent.fields
            self.store.put_cached_tasks(
                [SideTask(side=target, id=new_id, fields=fields, created_at=now, updated_at=now)]
            )
        self.store.clear_error(other, intent.source_id)
        self.tally.created[target._value_] += 1
        self.tally.linked += 1
        self.store.audit(
            "create",
            message,
            run_id=self.run_id,
            side=target,
            sc_id=sc_id,
            sf_id=sf_id,
            after=intent.fields,
            at=now,
        )
        if self.rows_wanted():
            self._pending_keys |= _row_keys(sc_id, sf_id)

    # -- deletes -----------------------------------------------------------------------------

    async def _deletes(self, side: Side, batch: list[Action]) -> None:
        try:
            failpoint("before_remote_delete")
            if side is Side.SALESCONNECT:
                items = [(a.sc_id or "", self._sc_version(a.sc_id or "")) for a in batch]
                results = await self.sides[side].delete(items)
            else:
                results = await self.sides[side].delete([a.sf_id or "" for a in batch])
            failpoint("after_remote_delete")
        except ServiceError as error:
            failures = (
                (side, (a.sc_id if side is Side.SALESCONNECT else a.sf_id) or "", "delete")
                for a in batch
            )
            self._batch_failed(error, failures)
            return
        for action, result in zip(batch, results, strict=True):
            task_id = (action.sc_id if side is Side.SALESCONNECT else action.sf_id) or ""
            if not result.ok:
                self._park(side, task_id, result.error, "delete")
                continue
            link = self._link_of(action)
            if link is not None:
                self.store.delete_link(link.key)
            self._forget(action.sc_id, action.sf_id)
            self.tally.deleted[side.value] += 1
            self.store.audit(
                "delete",
                action.reason,
                run_id=self.run_id,
                side=side,
                sc_id=action.sc_id,
                sf_id=action.sf_id,
                before=link.base if link else None,
            )
            self._pending_keys |= _row_keys(action.sc_id, action.sf_id)

    # -- local steps -------------------------------------------------------------------------

    def _record_local(self, action: Action) -> None:
        link = self._link_of(action)
        if link is None:
            return
        if action.kind is ActionKind.UNLINK:
            self.store.delete_link(link.key)
            self._forget(action.sc_id, action.sf_id)
            self.store.audit(
                "unlink", action.reason, run_id=self.run_id, sc_id=link.sc_id, sf_id=link.sf_id
            )
        else:
            self.store.put_link(
                dataclasses.replace(
                    link, base=settle_base(link.base, action), notes=dict(action.notes)
                )
            )
        self._pending_keys |= _row_keys(action.sc_id, action.sf_id)

    # -- helpers -----------------------------------------------------------------------------

    def _link_of(self, action: Action) -> Link | None:
        if action.sc_id and action.sf_id:
            link = self.store.link(f"{action.sc_id}|{action.sf_id}")
            if link is not None:
                return link
        if action.sc_id:
            return self.store.link_by_sc(action.sc_id)
        if action.sf_id:
            return self.store.link_by_sf(action.sf_id)
        return None

    def _forget(self, sc_id: str | None, sf_id: str | None) -> None:
        for side, task_id in ((Side.SALESCONNECT, sc_id), (Side.SALESFORCE, sf_id)):
            if task_id:
                self.store.drop_cached_task(side, task_id)
                self.store.clear_error(side, task_id)

    def _cache_written(
        self,
        side: Side,
        task_id: str | None,
        changes: Mapping[str, Any],
        returned: SideTask | None,
    ) -> None:
        """Keep the dashboard's copy of a task in step with what was just written."""
        if not task_id:
            return
        if returned is not None:
            self.store.put_cached_tasks([returned])
            return
        known = {k: v for k, v in changes.items() if k in FIELDS}
        if side is Side.SALESFORCE:
            cut = project_to_sf(Task(**{"name": "", **known}))
            known = {k: cut.get(k) for k in known}
        cached = self.store.cached_task(side, task_id)
        if cached is None:
            cached = SideTask(
                side=side,
                id=task_id,
                fields=Task(**{"name": "", **known}),
                created_at=self.now(),
                updated_at=self.now(),
            )
        else:
            cached = dataclasses.replace(cached, fields=cached.fields.replace(**known))
        self.store.put_cached_tasks([cached])

    def _park(self, side: Side, task_id: str, error: ServiceError | None, action: str) -> None:
        if error is None:
            error = ServiceError(
                "the service did not say why", service=side.value, category="internal"
            )
        self.store.park_error(
            ParkedError(
                side=side,
                task_id=task_id,
                category=error.category,
                message=error.message,
                at=self.now(),
                retryable=error.retryable or error.category in ("conflict", "transient"),
                action=action,
            )
        )
        self.store.audit(
            "error",
            f"{action} failed: {error.message}",
            run_id=self.run_id,
            side=side,
            sc_id=task_id if side is Side.SALESCONNECT else None,
            sf_id=task_id if side is Side.SALESFORCE else None,
            category=error.category,
        )
        self.tally.errors += 1
        self.tally.parked.add((side, task_id))
        link = (
            self.store.link_by_sc(task_id)
            if side is Side.SALESCONNECT
            else self.store.link_by_sf(task_id)
        )
        if link is not None:
            self._pending_keys.add(link.key)
        else:
            self._pending_keys |= _row_keys(
                task_id if side is Side.SALESCONNECT else None,
                task_id if side is Side.SALESFORCE else None,
            )
