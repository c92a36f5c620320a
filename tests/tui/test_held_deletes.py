"""The mass-delete guard from the dashboard: a run that would delete most linked tasks stops, the
app asks, and only a "yes" deletes (end to end against both emulators)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from textual.pilot import Pilot

from tests.integration.test_engine_sync import first_sync, sc_partner
from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.dialogs import ConfirmDialog


async def deleted_in_salesforce(engine: Any, sf: Any) -> list[str]:
    """Six linked tasks, five of them then deleted in Salesforce: returns the SC partners."""
    ids = [sf.create_task(Subject=f"Account review {n}") for n in range(6)]
    await first_sync(engine)
    partners = [sc_partner(engine, sf_id) for sf_id in ids]
    for sf_id in ids[:5]:
        sf.delete_task(sf_id)
    return partners


@contextlib.asynccontextmanager
async def asked_about_held_deletes(
    engine: Any, sf: Any
) -> AsyncIterator[tuple[ReminderSyncApp, Pilot, list[str]]]:
    """The dashboard once a run held five Salesforce deletes back and it asks about them."""
    partners = await deleted_in_salesforce(engine, sf)
    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await engine.run_once()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        yield app, pilot, partners


async def test_held_deletes_are_asked_about_and_a_yes_deletes_them(
    engine: Any, sf: Any, sc: Any
) -> None:
    async with asked_about_held_deletes(engine, sf) as (_, pilot, partners):
        assert all(sc.get_task(i) is not None for i in partners), "nothing deleted before a yes"

        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: [i for i in partners if sc.get_task(i) is not None] == partners[5:],
            what="the five confirmed deletes in Sales Connect",
        )


async def test_a_no_deletes_nothing_and_is_not_asked_again_for_the_same_deletes(
    engine: Any, sf: Any, sc: Any
) -> None:
    async with asked_about_held_deletes(engine, sf) as (app, pilot, partners):
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="closed")

        await engine.run_once()  # the next poll sees the same held deletes
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmDialog)
        assert all(sc.get_task(i) is not None for i in partners)
