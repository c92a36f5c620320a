"""How the engine uses the planner's answers to conflicts, against both emulators over loopback:
an answer is used up only once what it asked for was written."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sync.dashboard import RowState
from sync.engine import resolution_taking
from sync.events import ConflictFound, Outcome
from sync.model import Side

from .test_engine_sync import first_sync, sc_partner


async def name_conflict(sf: Any, sc: Any, engine: Any) -> tuple[str, str, Any]:
    sf_id = sf.create_task(Subject="Demo")
    await first_sync(engine)
    sc_id = sc_partner(engine, sf_id)
    sc.update_task(sc_id, name="Demo on Monday")
    sf.update_task(sf_id, Subject="Demo on Tuesday")
    summary = await engine.run_once()
    assert summary.outcome is Outcome.CONFLICTS
    [conflict] = engine.conflicts()
    return sc_id, sf_id, conflict


async def test_an_answer_whose_write_fails_is_kept_and_applied_by_the_next_run(
    sf, sc, clock, engine
) -> None:
    sc_id, sf_id, conflict = await name_conflict(sf, sc, engine)
    await engine.resolve(conflict.id, resolution_taking(conflict, Side.SALESCONNECT))
    sf.faults(kinds=["lock"], path_contains="composite/sobjects", methods=["PATCH"], count=4)

    summary = await engine.run_once()

    assert summary.errors == 1
    assert sf.get_task(sf_id)["Subject"] == "Demo on Tuesday"  # the write did not happen
    assert engine.store.resolution(conflict.id) is not None  # the answer is not lost
    assert summary.outcome is not Outcome.CONFLICTS  # nothing waits for the user
    [row] = [r for r in engine.rows() if r.sc and r.sc.id == sc_id]
    assert row.state is RowState.ERROR and "UNABLE_TO_LOCK_ROW" in row.reason

    asked: list[Any] = []
    engine.subscribe(lambda e: asked.append(e) if isinstance(e, ConflictFound) else None)
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert asked == []  # the user is not asked again
    assert sf.get_task(sf_id)["Subject"] == "Demo on Monday"
    assert sc.get_task(sc_id)["name"] == "Demo on Monday"
    assert engine.conflicts() == [] and engine.store.resolutions() == []
    assert (await engine.run_once()).writes == 0


async def test_an_answer_cut_short_by_the_daily_limit_is_applied_after_it(
    sf, sc, clock, engine
) -> None:
    sc_id, sf_id, conflict = await name_conflict(sf, sc, engine)
    await engine.resolve(conflict.id, resolution_taking(conflict, Side.SALESCONNECT))
    sf.faults(kinds=["limit"], path_contains="composite/sobjects", methods=["PATCH"], count=1)

    await engine.update_settings(timezone="Asia/Tokyo")

    summary = await engine.run_once()

    assert summary.outcome is Outcome.LIMIT
    assert engine.store.resolution(conflict.id) is not None
    tokyo = summary.retry_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"goes on at {tokyo:%H:%M} JST" in summary.message  # the user's zone, named

    clock.shift(hours=25)
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DONE, summary.message
    assert sf.get_task(sf_id)["Subject"] == "Demo on Monday"
    assert sc.get_task(sc_id)["name"] == "Demo on Monday"
    assert engine.conflicts() == [] and engine.store.resolutions() == []


async def test_an_applied_answer_is_dropped_with_its_conflict(sf, sc, clock, engine) -> None:
    sc_id, sf_id, conflict = await name_conflict(sf, sc, engine)
    await engine.resolve(conflict.id, resolution_taking(conflict, Side.SALESFORCE))

    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sc.get_task(sc_id)["name"] == "Demo on Tuesday"
    assert sf.get_task(sf_id)["Subject"] == "Demo on Tuesday"
    assert engine.conflicts() == [] and engine.store.resolutions() == []
