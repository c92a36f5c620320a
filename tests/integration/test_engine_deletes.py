"""Delete evidence against both emulators over loopback: the Salesforce deleted-records window
and deletes that find the task already gone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sync.events import Outcome, SyncProgress
from sync.model import Side


async def first_sync(engine: Any) -> None:
    await engine.set_enabled(True, start=False)
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DONE, summary.message


def sc_partner(engine: Any, sf_id: str) -> str:
    link = engine.store.link_by_sf(sf_id)
    assert link is not None, f"SF task {sf_id} is not linked"
    return link.sc_id


def sf_partner(engine: Any, sc_id: str) -> str:
    link = engine.store.link_by_sc(sc_id)
    assert link is not None, f"SC task {sc_id} is not linked"
    return link.sf_id


def when_writing(engine: Any, act: Any) -> None:
    """Do `act` once, as someone else would, after the run has read and planned."""
    done: list[bool] = []

    def listener(event: Any) -> None:
        if isinstance(event, SyncProgress) and event.phase == "write" and not done:
            done.append(True)
            act()

    engine.subscribe(listener)


async def test_the_deleted_window_resumes_where_salesforce_said_it_covered_not_at_our_clock(
    sf, sc, clock, connected_home, secrets
) -> None:
    """This machine's clock runs 10 minutes ahead of Salesforce's. Salesforce answers the
    deleted-records read only up to its own current minute, so the next window must start from
    there: a task deleted in the minutes after that, whose recycle-bin row is then emptied
    (queryAll no longer shows it), is still found."""
    from sync.engine import build_engine

    engine = build_engine(
        connected_home, secrets, clock=lambda: clock.now() + timedelta(minutes=10)
    )
    try:
        gone = sf.create_task(Subject="Deleted, then the bin emptied")
        kept = [sf.create_task(Subject=f"Kept {n}") for n in range(2)]
        await first_sync(engine)
        sc_gone = sc_partner(engine, gone)
        clock.shift(minutes=1)
        assert (await engine.run_once()).outcome is Outcome.DONE  # reads the deleted window

        extra = engine.store.cursor(Side.SALESFORCE).extra
        covered = datetime.fromisoformat(extra["deleted_until"])
        assert covered <= clock.now()  # never beyond what Salesforce's clock has reached
        assert covered.second == 0 and covered > clock.now() - timedelta(minutes=2)

        clock.shift(minutes=2)
        sf.delete_task(gone)
        sf.app.state.emulator.empty_recycle_bin()
        clock.shift(minutes=1)
        summary = await engine.run_once()

        assert summary.outcome is Outcome.DONE, summary.message
        assert sc.get_task(sc_gone) is None
        assert summary.deleted == {"salesconnect": 1}
        assert all(sc.get_task(sc_partner(engine, i)) is not None for i in kept)
    finally:
        await engine.aclose()


async def test_deleting_a_salesforce_task_that_is_already_deleted_counts_as_done(
    sf, sc, clock, engine
) -> None:
    sf_id = sf.create_task(Subject="Gone twice")
    await first_sync(engine)
    sc.delete_task(sc_partner(engine, sf_id))
    when_writing(engine, lambda: sf.delete_task(sf_id))  # ENTITY_IS_DELETED for our delete

    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert summary.errors == 0 and engine.status().errors == 0
    assert summary.deleted == {"salesforce": 1}
    assert engine.store.links() == {}
    assert (await engine.run_once()).writes == 0


async def test_deleting_a_sales_connect_task_that_is_already_deleted_counts_as_done(
    sf, sc, clock, engine
) -> None:
    await engine.set_enabled(True, start=False)
    clock.shift(seconds=1)
    sc_id = sc.create_task(name="Gone twice")
    await engine.run_once()
    sf.delete_task(sf_partner(engine, sc_id))
    when_writing(engine, lambda: sc.delete_task(sc_id))  # a 404 for our delete

    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert summary.errors == 0 and engine.status().errors == 0
    assert summary.deleted == {"salesconnect": 1}
    assert engine.store.links() == {}
    assert (await engine.run_once()).writes == 0
