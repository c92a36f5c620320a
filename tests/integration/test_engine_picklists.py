"""The org's picklists (two API calls) are kept in the state for an hour: a fresh engine, as
each `reminder-sync sync` is, reuses them instead of reading them again on every start."""

from __future__ import annotations

from typing import Any

from sync.model import Side

from .test_engine_sync import first_sync, sc_partner


async def test_a_fresh_engine_reuses_the_picklists_for_an_hour_then_reads_them_again(
    sf, sc, clock, make_engine
) -> None:
    sf_id = sf.create_task(Subject="Call Jane", Status="Waiting on someone else")
    engine = make_engine()
    await first_sync(engine)
    await engine.aclose()

    def used() -> int:
        return sf.app.state.emulator.api_usage()[0]

    async def calls_of_a_run(**shift: float) -> int:
        clock.shift(**shift)
        fresh = make_engine()
        before = used()
        summary = await fresh.run_once()
        assert summary.outcome == "done", summary.message
        calls = used() - before
        await fresh.aclose()
        return calls

    within_the_hour = await calls_of_a_run(minutes=5)
    later = await calls_of_a_run(hours=2)
    soon_after = await calls_of_a_run(minutes=5)

    assert later == within_the_hour + 2  # Status and Priority values read again
    assert soon_after == within_the_hour
    # The kept values are the org's: an SF-only status is still known as "not synced".
    engine = make_engine()
    [row] = [r for r in engine.rows() if r.sf and r.sf.id == sf_id]
    assert str(row.state) == "not_synced"
    assert engine.store.cursor(Side.SALESFORCE).extra["picklists_at"]
    assert sc_partner(engine, sf_id)


async def test_a_long_lived_engine_reads_the_picklists_again_after_an_hour(
    sf, sc, clock, engine: Any
) -> None:
    await first_sync(engine)

    def used() -> int:
        return sf.app.state.emulator.api_usage()[0]

    clock.shift(minutes=5)
    before = used()
    await engine.run_once()
    next_poll = used() - before
    clock.shift(hours=2)
    before = used()
    await engine.run_once()
    assert used() - before == next_poll + 2
