"""Settling conflicts from the conflict screen, end to end: the emulators hold a real conflict,
the keys pick a value, the next run writes it to both services."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from tests.tui.conftest import SIZE, wait_until
from tui.app import ReminderSyncApp
from tui.screens.conflict import ConflictScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import ValueDialog


async def linked_pair(engine: Any, sf: Any, sc: Any, subject: str, due: str) -> tuple[str, str]:
    """A Salesforce task imported by the first sync: returns (sc_id, sf_id)."""
    sf_id = sf.create_task(Subject=subject, ActivityDate=due)
    await engine.set_enabled(True, start=False)
    await engine.run_once()
    sc_id = sc.by_name()[subject]["id"]
    return sc_id, sf_id


async def test_taking_salesforce_settles_the_conflict_on_both_sides(
    engine: Any, sf: Any, sc: Any
) -> None:
    sc_id, sf_id = await linked_pair(engine, sf, sc, "Call Jane about renewal", "2030-01-10")
    sc.update_task(sc_id, due_date="2030-01-11")
    sf.update_task(sf_id, ActivityDate="2030-01-14")
    await engine.run_once()
    assert len(engine.conflicts()) == 1

    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "n", "enter")
        screen = app.screen
        assert isinstance(screen, ConflictScreen)
        assert screen.current_field() == "due_date"  # the cursor starts on the disputed field
        await pilot.press("greater_than_sign")
        assert "Salesforce" in str(screen.query_one("#fields").get_cell("due_date", "decision"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back")
        await wait_until(
            pilot,
            lambda: sc.get_task(sc_id)["due_date"] == "2030-01-14" and not engine.conflicts(),
            what="Salesforce's date in Sales Connect and no conflict left",
        )
        assert sf.get_task(sf_id)["ActivityDate"] == "2030-01-14"
        await engine.scheduler.wait_idle()
        app.refresh_screens()
        await pilot.pause()
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        assert str(dashboard._rows_by_key[f"{sc_id}|{sf_id}"].state) == "in_sync"


async def test_a_typed_value_goes_to_both_sides(engine: Any, sf: Any, sc: Any) -> None:
    sc_id, sf_id = await linked_pair(engine, sf, sc, "Send proposal", "2030-02-01")
    sc.update_task(sc_id, name="Send proposal v2")
    sf.update_task(sf_id, Subject="Send proposal (revised)")
    await engine.run_once()

    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "n", "enter")
        assert isinstance(app.screen, ConflictScreen)
        assert app.screen.current_field() == "name"
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, ValueDialog)
        dialog.query_one("#value", Input).value = "Send proposal v3 (final)"
        await pilot.press("enter")  # the dialog takes the value
        await pilot.press("enter")  # the conflict screen saves
        await wait_until(
            pilot,
            lambda: (
                sf.get_task(sf_id)["Subject"] == "Send proposal v3 (final)"
                and sc.get_task(sc_id)["name"] == "Send proposal v3 (final)"
            ),
            what="the typed name on both sides",
        )
        await engine.scheduler.wait_idle()


async def test_apply_to_all_settles_every_conflict_on_that_field(
    engine: Any, sf: Any, sc: Any
) -> None:
    first = await linked_pair(engine, sf, sc, "Call Ana", "2030-03-01")
    second_sf = sf.create_task(Subject="Call Tom", ActivityDate="2030-03-02")
    await engine.run_once()
    second = (sc.by_name()["Call Tom"]["id"], second_sf)
    for (sc_id, sf_id), day in ((first, "05"), (second, "06")):
        sc.update_task(sc_id, due_date=f"2030-03-{day}")
        sf.update_task(sf_id, ActivityDate=f"2030-03-2{day[-1]}")
    await engine.run_once()
    assert len(engine.conflicts()) == 2

    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "n", "enter")
        assert isinstance(app.screen, ConflictScreen)
        await pilot.press("less_than_sign", "A")  # Sales Connect's date, for both conflicts
        await wait_until(
            pilot,
            lambda: (
                sf.get_task(first[1])["ActivityDate"] == "2030-03-05"
                and sf.get_task(second[1])["ActivityDate"] == "2030-03-06"
                and not engine.conflicts()
            ),
            what="both Salesforce tasks to get Sales Connect's dates",
        )
        await engine.scheduler.wait_idle()


async def test_edit_versus_delete_restores_the_deleted_task(engine: Any, sf: Any, sc: Any) -> None:
    sc_id, sf_id = await linked_pair(engine, sf, sc, "Book onsite visit", "2030-04-01")
    sc.update_task(sc_id, name="Book onsite visit (2 people)")
    sf.delete_task(sf_id)
    await engine.run_once()
    [conflict] = engine.conflicts()
    assert str(conflict.kind) == "edit_vs_delete"

    app = ReminderSyncApp(engine, run_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "n", "enter")
        screen = app.screen
        assert isinstance(screen, ConflictScreen)
        assert "Deleted in Salesforce" in str(screen.query_one("#conflict-help").render())
        await pilot.press("r", "enter")
        await wait_until(
            pilot,
            lambda: (
                not engine.conflicts()
                and any(t["Subject"] == "Book onsite visit (2 people)" for t in sf.tasks())
            ),
            what="the task restored in Salesforce with the Sales Connect edit",
        )
        assert sc.get_task(sc_id) is not None
        await engine.scheduler.wait_idle()
