"""Cases the sync machine found, kept as plain tests so they fail the same way every time.

An SC task edited by the user, synced, and then left alone while other SC tasks change: its
newest version is no longer in the run's reads. A later change from Salesforce (an edit or a
delete) must still be written to it in one run, without a version-mismatch error.
"""

from __future__ import annotations

from typing import Any

from sync.events import Outcome


async def sc_task_edited_then_left_behind(world: Any, engine: Any) -> tuple[str, str]:
    await world.enable(engine)
    sc_id = world.sc.create_task(name="Call Jane")
    assert (await engine.run_once()).outcome is Outcome.DONE
    sf_id = engine.store.link_by_sc(sc_id).sf_id
    world.sc.update_task(sc_id, status="complete")  # the user's edit, version 1 -> 2
    assert (await engine.run_once()).writes == 1
    world.clock.shift(seconds=1)
    world.sc.create_task(name="Send contract")  # moves Sales Connect's change cursor on
    assert (await engine.run_once()).outcome is Outcome.DONE
    return sc_id, sf_id


async def test_a_salesforce_delete_reaches_an_sc_task_edited_earlier_in_one_run(world) -> None:
    engine = world.make_engine()
    sc_id, sf_id = await sc_task_edited_then_left_behind(world, engine)
    world.sf.delete_task(sf_id)

    summary = await engine.run_once()

    assert [e.message for e in engine.store.errors()] == []
    assert summary.outcome is Outcome.DONE and summary.deleted == {"salesconnect": 1}
    assert world.sc.get_task(sc_id) is None


async def test_a_salesforce_edit_reaches_an_sc_task_edited_earlier_in_one_run(world) -> None:
    engine = world.make_engine()
    sc_id, sf_id = await sc_task_edited_then_left_behind(world, engine)
    world.sf.update_task(sf_id, Subject="Call Jane at 10")

    summary = await engine.run_once()

    assert [e.message for e in engine.store.errors()] == []
    assert summary.outcome is Outcome.DONE and summary.updated == {"salesconnect": 1}
    assert world.sc.get_task(sc_id)["name"] == "Call Jane at 10"
