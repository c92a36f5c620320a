"""Bad input, one named test each: every one gets a clear error or a safe skip, and loses nothing.

The unit and client tests already check each parser on its own; these tests feed the bad input
to the whole engine, over loopback, through a tampering proxy in front of the real emulators
(`tamper.py`), and check what a user would notice: the run says what happened, no link is
dropped, neither service gets a wrong or doubled task, the state file still loads, and once the
input is good again the next run puts everything right.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync import paths
from sync.connectors.http import ServiceError
from sync.events import Outcome
from sync.model import ConflictKind, Side
from sync.store import StateStore
from tests.reliability.conftest import serve_in_thread
from tests.reliability.tamper import Tamper, json_edit, raw, replace_with

ROOT = Path(__file__).resolve().parents[2]
ESC = "\x1b"


# --- helpers ---------------------------------------------------------------------------------


class Evil:
    """A loopback server that must never be contacted: it counts what reaches it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []

        async def anything(request: Request) -> JSONResponse:
            self.requests.append(dict(request.headers))
            return JSONResponse({"totalSize": 0, "done": True, "records": []})

        methods = ["GET", "POST", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", anything, methods=methods)])


@pytest.fixture(scope="module")
def evil() -> Iterator[tuple[Evil, str]]:
    server = Evil()
    with serve_in_thread(server.app) as running:
        yield server, running.base_url
    server.requests.clear()


async def first_run(world: Any, engine: Any) -> Any:
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DONE, summary.message
    return summary


async def linked_pair(world: Any, engine: Any, subject: str = "Call Jane", **fields: Any) -> Any:
    """An SF task synced to SC; returns its link."""
    sf_id = world.sf.create_task(Subject=subject, **fields)
    await first_run(world, engine)
    link = engine.store.link_by_sf(sf_id)
    assert link is not None
    return link


def assert_clear_failure(summary: Any, *words: str) -> None:
    assert summary.outcome is Outcome.FAILED, (summary.outcome, summary.message)
    message = summary.message
    assert "Traceback" not in message and "\n" not in message.strip()
    for word in words:
        assert word.lower() in message.lower(), message


def assert_state_loads(world: Any, links: dict | None = None) -> None:
    store = StateStore.open(paths.state_file(world.home), read_only=True)
    try:
        if links is not None:
            assert dict(store.links()) == links
    finally:
        store.close()


def sf_subjects(world: Any) -> list[str]:
    return sorted(t["Subject"] for t in world.sf_tasks())


def sc_names(world: Any) -> list[str]:
    return sorted(t["name"] for t in world.sc_tasks())


def edit_records(edit: Any) -> Any:
    """Rewrite each SF query record (edit may mutate it, or return a list of records)."""

    def body(data: dict) -> dict:
        out: list[dict] = []
        for record in data["records"]:
            new = edit(record)
            out.extend(new if isinstance(new, list) else [record if new is None else new])
        data["records"] = out
        data["totalSize"] = len(out)
        return data

    return json_edit(body)


def edit_sc_tasks(edit: Any) -> Any:
    """Rewrite each SC task of a list page (edit may mutate it, or return a list)."""

    def body(data: dict) -> dict:
        out: list[dict] = []
        for task in data["tasks"]:
            new = edit(task)
            out.extend(new if isinstance(new, list) else [task if new is None else new])
        data["tasks"] = out
        return data

    return json_edit(body)


SF_CHANGES = {"path": "/queryAll", "method": "GET"}
SC_CHANGES = {"path": "/api/v1/tasks", "method": "GET", "query": "include_deleted"}


async def recovers(world: Any, engine: Any) -> Any:
    """The input is good again: the next run finishes and a further run writes nothing."""
    world.sf_proxy.clear()
    world.sc_proxy.clear()
    world.clock.shift(minutes=10)  # beyond the read overlap: nothing is found again by luck
    summary = await engine.run_once()
    assert summary.outcome in (Outcome.DONE, Outcome.CONFLICTS), summary.message
    before = world.snapshot()
    again = await engine.run_once()
    assert again.writes == 0 and world.snapshot() == before
    return summary


# --- malformed Salesforce reads ----------------------------------------------------------


async def test_sf_change_page_that_is_not_json_fails_the_run_and_keeps_every_link(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    link = await linked_pair(world, engine)
    world.sf.update_task(link.sf_id, Subject="Call Jane at 10")
    links = dict(engine.store.links())
    sc_before = world.snapshot()[1]
    cut_short = raw(200, '{"records": [{"Id": "00T')
    world.sf_proxy.add(Tamper(**SF_CHANGES, respond=cut_short, times=None))

    summary = await engine.run_once()

    assert_clear_failure(summary, "Salesforce", "could not be read")
    assert dict(engine.store.links()) == links
    assert world.snapshot()[1] == sc_before
    assert_state_loads(world, links)
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane at 10"]


async def test_sf_record_with_a_number_for_a_subject_never_reaches_sc_blank(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")

    def number_subject(record: dict) -> None:
        record["Subject"] = 12345

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(number_subject), times=None))
    await engine.run_once()

    assert all(t["name"] == "Call Jane" for t in world.sc_tasks())
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]


async def test_sf_record_without_an_id_is_skipped_and_synced_once_it_has_one(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")
    world.sf_proxy.add(
        Tamper(**SF_CHANGES, transform=edit_records(lambda r: r.pop("Id", None) and None))
    )

    await engine.run_once()

    assert sc_names(world) == []
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]


async def test_sf_page_listing_one_task_twice_creates_it_once(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")

    def twice(record: dict) -> list[dict]:
        return [record, {**record}]

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(twice)))
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sc_names(world) == ["Call Jane"]
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]


async def test_sf_page_done_false_without_a_next_page_fails_clearly(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")

    def not_done(body: dict) -> None:
        body["done"] = False
        body.pop("nextRecordsUrl", None)

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=json_edit(not_done), times=None))
    summary = await engine.run_once()

    assert_clear_failure(summary, "nextRecordsUrl")
    assert sc_names(world) == []
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]


async def test_sf_next_page_on_another_host_is_never_followed(world, evil) -> None:
    server, evil_url = evil
    server.requests.clear()
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")

    def elsewhere(body: dict) -> None:
        body["done"] = False
        body["nextRecordsUrl"] = evil_url + "/services/data/v62.0/query/01gD0000000Evil-2000"

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=json_edit(elsewhere), times=None))
    summary = await engine.run_once()

    assert_clear_failure(summary, "another host")
    assert server.requests == []
    await recovers(world, engine)
    assert server.requests == []


async def test_sf_redirect_on_an_api_call_is_an_error_and_not_followed(world, evil) -> None:
    server, evil_url = evil
    server.requests.clear()
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")
    moved = raw(302, "", {"location": evil_url + "/services/data/v62.0/queryAll"})
    world.sf_proxy.add(Tamper(**SF_CHANGES, respond=moved, times=None))

    summary = await engine.run_once()

    assert_clear_failure(summary, "redirect")
    assert server.requests == []
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]


async def test_sf_unknown_picklist_values_change_nothing_in_sc(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    link = await linked_pair(world, engine, Priority="High")
    sc_before = world.snapshot()[1]
    world.sf.update_task(link.sf_id, Description="touched")

    def unknown(record: dict) -> None:
        record["Status"] = "Escalated \u260e"
        record["Priority"] = "Urgent"

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(unknown), times=None))
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    task = world.sc.get_task(link.sc_id)
    assert (task["status"], task["priority"], task["details"]) == ("open", "high", "touched")
    assert engine.conflicts() == []
    assert world.snapshot()[1] != sc_before  # the mapped field did travel
    world.sf_proxy.clear()
    world.sf.update_task(link.sf_id, Status="Completed")
    world.clock.shift(minutes=10)
    await engine.run_once()
    assert world.sc.get_task(link.sc_id)["status"] == "complete"


async def test_sf_activity_date_2026_02_30_leaves_the_sc_date_alone(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    link = await linked_pair(world, engine, ActivityDate="2026-12-01")
    world.sf.update_task(link.sf_id, Description="touched")

    def bad_date(record: dict) -> None:
        record["ActivityDate"] = "2026-02-30"

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(bad_date), times=None))
    summary = await engine.run_once()

    assert summary.outcome in (Outcome.DONE, Outcome.CONFLICTS), summary.message
    assert world.sc.get_task(link.sc_id)["due_date"] == "2026-12-01"
    parked = [c for c in engine.conflicts() if c.kind is ConflictKind.INVALID]
    assert parked and "2026-02-30" in parked[0].message + str(parked[0].sf)
    await recovers(world, engine)
    assert world.sc.get_task(link.sc_id)["due_date"] == "2026-12-01"
    assert world.sc.get_task(link.sc_id)["details"] == "touched"


async def test_a_one_megabyte_sf_subject_sinks_only_its_own_task(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    big_id = world.sf.create_task(Subject="Huge one")
    world.sf.create_task(Subject="Normal one")

    def huge(record: dict) -> None:
        if record["Id"] == big_id:
            record["Subject"] = "B" * 1_000_000

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(huge)))
    summary = await engine.run_once()

    assert "Normal one" in sc_names(world)
    assert all(len(name) <= 500 for name in sc_names(world))
    assert summary.outcome in (Outcome.DONE, Outcome.FAILED, Outcome.CONFLICTS)
    assert world.sf.get_task(big_id)["Subject"] == "Huge one"
    await recovers(world, engine)
    assert sc_names(world) == ["Huge one", "Normal one"]


# --- malformed Salesforce write answers ----------------------------------------------------


async def test_sf_create_answer_cut_short_after_the_create_does_not_duplicate(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract")
    world.sf_proxy.add(
        Tamper(path="/composite/sobjects", method="POST", transform=replace_with(200, "[]"))
    )

    await engine.run_once()

    assert sf_subjects(world) == ["Send contract"]  # it was created, the answer got lost
    await recovers(world, engine)
    assert sf_subjects(world) == ["Send contract"]
    assert len(engine.store.links()) == 1


# --- malformed Sales Connect reads ---------------------------------------------------------


def _nan_name(code: int, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
    return code, headers, body.replace(b'"name":"Call Jane at 10"', b'"name":NaN')


@pytest.mark.parametrize(
    "rule",
    [
        {"respond": raw(200, "<html>oops</html>", {"content-type": "text/html"})},
        # NaN is not JSON: read as a number, it would be saved as null, a silent loss
        {"transform": _nan_name},
    ],
    ids=["html", "not-a-number"],
)
async def test_sc_change_page_that_is_not_json_fails_the_run_and_keeps_every_link(
    world, rule: dict
) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    link = await linked_pair(world, engine)
    world.sc.update_task(link.sc_id, name="Call Jane at 10")
    links = dict(engine.store.links())
    sf_before = world.snapshot()[0]
    world.sc_proxy.add(Tamper(**SC_CHANGES, **rule))

    summary = await engine.run_once()

    assert_clear_failure(summary, "Sales Connect", "not JSON")
    assert dict(engine.store.links()) == links
    assert world.snapshot()[0] == sf_before
    assert_state_loads(world, links)
    await recovers(world, engine)
    assert sf_subjects(world) == ["Call Jane at 10"]


async def test_sc_task_without_an_id_fails_the_run_clearly(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract")
    no_id = edit_sc_tasks(lambda task: task.pop("id") and None)
    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=no_id))

    summary = await engine.run_once()

    assert_clear_failure(summary, "Sales Connect", "no id")
    assert sf_subjects(world) == []
    await recovers(world, engine)
    assert sf_subjects(world) == ["Send contract"]


async def test_sc_version_of_the_wrong_type_fails_the_run_clearly(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract")

    def text_version(task: dict) -> None:
        task["version"] = "7"

    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=edit_sc_tasks(text_version)))
    summary = await engine.run_once()

    assert_clear_failure(summary, "Sales Connect", "version")
    assert sf_subjects(world) == []
    await recovers(world, engine)
    assert sf_subjects(world) == ["Send contract"]


async def test_sc_cursor_that_repeats_stops_instead_of_looping(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract")
    loop = raw(200, json.dumps({"tasks": [], "next_cursor": "again"}))
    world.sc_proxy.add(Tamper(**SC_CHANGES, respond=loop, times=None))

    summary = await asyncio.wait_for(engine.run_once(), 30)

    assert_clear_failure(summary, "next_cursor")
    assert sum(1 for s in world.sc_proxy.seen if "include_deleted" in s[2]) <= 3
    await recovers(world, engine)
    assert sf_subjects(world) == ["Send contract"]


async def test_sc_page_listing_a_task_twice_keeps_the_newer_version(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract v2")

    def older_copy(task: dict) -> list[dict]:
        return [task, {**task, "name": "Send contract v1", "version": task["version"] - 1}]

    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=edit_sc_tasks(older_copy)))
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sf_subjects(world) == ["Send contract v2"]


async def test_sc_unknown_status_is_parked_and_salesforce_untouched(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    link = await linked_pair(world, engine)
    world.sc.update_task(link.sc_id, name="Call Jane at 10")
    sf_before = world.snapshot()[0]

    def snoozed(task: dict) -> None:
        task["status"] = "snoozed"

    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=edit_sc_tasks(snoozed), times=None))
    summary = await engine.run_once()

    assert summary.outcome in (Outcome.DONE, Outcome.CONFLICTS), summary.message
    assert world.snapshot()[0] == sf_before
    parked = [c for c in engine.conflicts() if c.kind is ConflictKind.INVALID]
    assert parked and "snoozed" in parked[0].message
    await recovers(world, engine)
    assert sf_subjects(world) == ["Call Jane at 10"]


async def test_sc_due_date_2026_02_30_is_not_pushed(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Send contract", due_date="2026-03-02")

    def impossible(task: dict) -> None:
        task["due_date"] = "2026-02-30"

    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=edit_sc_tasks(impossible)))
    summary = await engine.run_once()

    assert summary.outcome in (Outcome.DONE, Outcome.CONFLICTS), summary.message
    assert sf_subjects(world) == []
    await recovers(world, engine)
    [task] = world.sf_tasks()
    assert (task["Subject"], task["ActivityDate"]) == ("Send contract", "2026-03-02")


async def test_a_one_megabyte_sc_name_is_cut_for_salesforce_and_never_bounces_back(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    sc_id = world.sc.create_task(name="placeholder")
    huge = "A" * 1_000_000

    def big(task: dict) -> None:
        if task["id"] == sc_id:
            task["name"] = huge

    world.sc_proxy.add(Tamper(**SC_CHANGES, transform=edit_sc_tasks(big), times=None))
    world.sc_proxy.add(
        Tamper(path=f"/api/v1/tasks/{sc_id}", method="GET", transform=json_edit(big), times=None)
    )
    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    [task] = world.sf_tasks()
    assert len(task["Subject"]) == 255 and task["Subject"].endswith("…")
    version = world.sc.get_task(sc_id)["version"]
    world.clock.shift(minutes=10)
    again = await engine.run_once()
    assert again.writes == 0
    assert world.sc.get_task(sc_id)["version"] == version  # the long name was never rewritten


async def test_sc_create_answer_lost_after_the_create_does_not_duplicate(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sf.create_task(Subject="Call Jane")
    world.sc_proxy.add(
        Tamper(
            path="/api/v1/tasks/batch",
            method="POST",
            transform=replace_with(200, '{"results": []}'),
        )
    )

    await engine.run_once()

    assert sc_names(world) == ["Call Jane"]  # created; the answer was lost
    await recovers(world, engine)
    assert sc_names(world) == ["Call Jane"]
    assert len(engine.store.links()) == 1


async def test_sc_html_error_page_is_one_clear_line_without_the_html(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    page = "<html><body><h1>502 Bad Gateway</h1><script>x()</script></body></html>"
    world.sc_proxy.add(
        Tamper(**SC_CHANGES, respond=raw(502, page, {"content-type": "text/html"}), times=None)
    )

    summary = await engine.run_once()

    assert_clear_failure(summary, "502")
    assert "<" not in summary.message
    await recovers(world, engine)


# --- hostile text ------------------------------------------------------------------------


def _visible_texts(engine: Any) -> list[str]:
    texts = []
    for row in engine.rows():
        for side_task in (row.sc, row.sf):
            if side_task is not None:
                texts += [side_task.fields.name, side_task.fields.details]
        texts.append(row.reason)
    return texts


async def test_control_characters_in_task_text_are_dropped_at_the_boundary(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    sf_id = world.sf.create_task(Subject="Call Jane")

    def controls(record: dict) -> None:
        record["Subject"] = "Call\x00 Jane\x07\x08 now\x7f\x85"
        record["Description"] = "line1\r\nline2\x0bx\x0c"

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(controls)))
    await engine.run_once()

    task = world.sc.get_task(engine.store.link_by_sf(sf_id).sc_id)
    assert task["name"] == "Call Jane now"
    assert task["details"] == "line1\nline2x"
    for text in _visible_texts(engine):
        assert not any(ord(c) < 32 and c not in "\n\t" for c in text), repr(text)


async def test_ansi_and_osc_escapes_never_reach_sc_or_the_dashboard(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    sf_id = world.sf.create_task(Subject="Call Jane")
    hostile = (
        f"{ESC}[2J{ESC}]0;pwned\x07Call {ESC}[31mJane{ESC}[0m"
        f"{ESC}]8;;http://evil.example/\x07 now{ESC}]8;;{ESC}\\\x9b31m"
    )

    def escapes(record: dict) -> None:
        record["Subject"] = hostile

    world.sf_proxy.add(Tamper(**SF_CHANGES, transform=edit_records(escapes)))
    await engine.run_once()

    task = world.sc.get_task(engine.store.link_by_sf(sf_id).sc_id)
    assert task["name"] == "Call Jane now"
    assert not any(ESC in text or "\x9b" in text for text in _visible_texts(engine))
    state = paths.state_file(world.home).read_text()
    assert "\\u001b" not in state and "pwned" not in state


async def test_rich_markup_in_task_text_is_kept_as_plain_text(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    markup = "[bold red]Call[/] Jane [/x] [link=https://evil.example]here[/link] [@click=quit]"
    sc_id = world.sc.create_task(name=markup)

    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sf_subjects(world) == [markup]
    row = next(r for r in engine.rows() if r.sc and r.sc.id == sc_id)
    assert row.sc.fields.name == markup and row.sf.fields.name == markup
    assert (await engine.run_once()).writes == 0


async def test_bidi_overrides_in_task_text_are_dropped(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    world.sc.create_task(name="Invoice \u202ecod.exe\u202c for \u2067ACME\u2069")

    summary = await engine.run_once()

    assert summary.outcome is Outcome.DONE, summary.message
    assert sf_subjects(world) == ["Invoice cod.exe for ACME"]
    assert (await engine.run_once()).writes == 0


# --- the state file ------------------------------------------------------------------------


async def cli(home: Path, *args: str) -> Any:
    """The CLI in this process (on a thread: it runs its own event loop)."""
    from tui.cli import main

    environment = {"REMINDER_SYNC_HOME": str(home)}
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, main, list(args), env=environment, catch_exceptions=False
    )


async def synced_home(world: Any) -> tuple[Path, bytes]:
    engine = world.make_engine()
    await world.enable(engine)
    await linked_pair(world, engine)
    await world.close(engine)
    state = paths.state_file(world.home)
    return state, state.read_bytes()


def assert_cli_refused(result: Any, *words: str) -> None:
    assert result.exit_code == 1, result.output
    output = result.stderr or result.output
    assert output.startswith("reminder-sync: "), output
    assert "Traceback" not in result.output + (result.stderr or "")
    for word in words:
        assert word in output, output


async def test_an_empty_state_file_is_refused_and_left_alone(world) -> None:
    state, _ = await synced_home(world)
    state.write_bytes(b"")
    sf_before = world.snapshot()

    result = await cli(world.home, "sync")

    assert_cli_refused(result, "is empty", ".bak")
    assert state.read_bytes() == b""
    assert world.snapshot() == sf_before


async def test_a_truncated_state_file_is_refused_and_the_backup_restores_it(world) -> None:
    state, good = await synced_home(world)
    state.write_bytes(good[: len(good) // 2])

    result = await cli(world.home, "sync")

    assert_cli_refused(result, "cut short", "cp ")
    assert state.read_bytes() == good[: len(good) // 2]
    backup = state.with_name(state.name + ".bak")
    state.write_bytes(backup.read_bytes())  # what the message tells the user to do
    tasks_before = world.snapshot()
    # The .bak is the save before the last one; the journal still holds the create the last
    # save recorded, so the next run links the pair again instead of copying it twice.
    engine = world.make_engine()
    summary = await engine.run_once()
    await world.close(engine)
    assert summary.outcome is Outcome.DONE and summary.writes == 0, summary.message
    store = StateStore.open(state, read_only=True)
    try:
        assert len(store.links()) == 1
    finally:
        store.close()
    assert world.snapshot() == tasks_before  # nothing created twice, nothing rewritten


async def test_a_state_file_from_a_future_version_is_refused_untouched(world) -> None:
    state, good = await synced_home(world)
    data = json.loads(good)
    data["meta"] = {"1": {"schema_version": 99}}
    future = json.dumps(data).encode()
    state.write_bytes(future)

    result = await cli(world.home, "sync")

    assert_cli_refused(result, "newer")
    assert state.read_bytes() == future


async def test_a_symlinked_state_file_is_refused_and_its_target_untouched(
    world, tmp_path: Path
) -> None:
    state, good = await synced_home(world)
    target = tmp_path / "elsewhere.json"
    target.write_bytes(good)
    state.unlink()
    state.symlink_to(target)

    result = await cli(world.home, "sync")

    assert_cli_refused(result, "symbolic link")
    assert state.is_symlink() and target.read_bytes() == good


async def test_a_lock_held_by_a_running_process_is_refused_and_a_stale_one_is_not(world) -> None:
    state, _ = await synced_home(world)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from sync.store import StateStore; "
            "s = StateStore.open(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
            str(state),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = await cli(world.home, "sync")
        assert_cli_refused(result, "another reminder-sync is running", str(holder.pid))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert state.with_name(state.name + ".lock").exists()  # left behind by the killed holder

    engine = world.make_engine()  # the stale lock does not block
    world.sf.create_task(Subject="After the crash")
    summary = await engine.run_once()
    assert summary.outcome is Outcome.DONE, summary.message
    assert sc_names(world) == ["After the crash", "Call Jane"]


async def test_a_full_disk_during_the_save_after_a_create_loses_and_duplicates_nothing(
    world, monkeypatch
) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    await linked_pair(world, engine)
    world.sc.create_task(name="Send contract")
    disk_full = threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if disk_full.is_set():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    def fill_disk(code: int, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        disk_full.set()  # the create went through; from now on nothing can be saved
        return code, headers, body

    world.sf_proxy.add(Tamper(path="/composite/sobjects", method="POST", transform=fill_disk))
    state = paths.state_file(world.home)

    summary = await engine.run_once()

    assert_clear_failure(summary, "disk space")
    assert_state_loads(world)  # a complete version is on disk, never a half-written one
    assert not list(state.parent.glob(".*.tmp"))
    disk_full.clear()
    await world.close(engine)
    engine = world.make_engine()  # a restart, as a user would after freeing space
    await recovers(world, engine)
    assert sf_subjects(world) == ["Call Jane", "Send contract"]
    assert sc_names(world) == ["Call Jane", "Send contract"]
    assert len(engine.store.links()) == 2


# --- the keyring -------------------------------------------------------------------------


def run_cli_process(home: Path, *args: str, env: dict[str, str], stdin: str = "") -> Any:
    environment = {
        **os.environ,
        "REMINDER_SYNC_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        ("keyring.backends.fail.Keyring", "no usable backend"),
        ("keyring.backends.null.Keyring", "'null' backend"),
    ],
    ids=["no-backend", "null-backend"],
)
def test_connect_without_a_usable_keyring_says_so_and_writes_no_secret(
    world, tmp_path: Path, backend: str, words: str
) -> None:
    home = tmp_path / "fresh"
    secret = world.sc.client_secret
    result = run_cli_process(
        home,
        "connect",
        "salesconnect",
        "--base-url",
        world.sc_base_url,
        "--client-id",
        world.sc.client_id,
        "--secret-stdin",
        env={"PYTHON_KEYRING_BACKEND": backend},
        stdin=secret + "\n",
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("reminder-sync: ") and "Traceback" not in result.stderr
    assert words in result.stderr and "keyring" in result.stderr.lower()
    assert secret not in result.stdout + result.stderr
    for path in home.rglob("*") if home.exists() else []:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


class HangingBackend:
    """A keyring backend whose every call blocks, like a locked keyring waiting for a prompt."""

    priority = 1

    def __init__(self) -> None:
        self.release = threading.Event()

    def get_password(self, service: str, name: str) -> str | None:
        self.release.wait(30)
        return None

    def set_password(self, service: str, name: str, value: str) -> None:
        self.release.wait(30)

    def delete_password(self, service: str, name: str) -> None:
        self.release.wait(30)


async def test_a_keyring_call_that_hangs_fails_the_run_with_advice_and_changes_nothing(
    world,
) -> None:
    from sync.secrets import KeyringStore

    engine = world.make_engine()
    await world.enable(engine)
    await linked_pair(world, engine)
    links = dict(engine.store.links())
    await world.close(engine)
    backend = HangingBackend()
    hanging = world.make_engine(secrets=KeyringStore(backend=backend, timeout=0.5))
    world.sc.create_task(name="Send contract")
    try:
        summary = await asyncio.wait_for(hanging.run_once(), 20)
    finally:
        backend.release.set()

    assert_clear_failure(summary, "keyring", "unlock")
    assert dict(hanging.store.links()) == links
    assert sf_subjects(world) == ["Call Jane"]


# --- logins ------------------------------------------------------------------------------


def invalid_session() -> Any:
    error = {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    body = json.dumps([error])
    return raw(401, body)


async def test_invalid_grant_on_refresh_stops_the_run_and_says_log_in_again(world) -> None:
    engine = world.make_engine()
    await world.enable(engine)
    await linked_pair(world, engine)
    links = dict(engine.store.links())
    before = world.snapshot()
    world.sf_proxy.add(Tamper(path="/services/data/", respond=invalid_session(), times=None))
    refused = json.dumps({"error": "invalid_grant", "error_description": "expired access/refresh"})
    world.sf_proxy.add(Tamper(path="/services/oauth2/token", respond=raw(400, refused), times=None))
    world.sc.create_task(name="Send contract")

    summary = await engine.run_once()

    assert_clear_failure(summary, "log in again", "reminder-sync connect salesforce")
    assert dict(engine.store.links()) == links
    assert world.snapshot()[0] == before[0]  # nothing reached Salesforce
    await recovers(world, engine)
    assert sf_subjects(world) == ["Call Jane", "Send contract"]


LOOK_ALIKES = {
    "suffix": "https://acme.my.salesforce.com.evil.io",
    "userinfo": "https://acme.my.salesforce.com@evil.io",
    "port": "https://acme.my.salesforce.com:8443",
    "http": "http://acme.my.salesforce.com",
}


@pytest.mark.parametrize("instance_url", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
async def test_a_refresh_that_moves_the_instance_to_a_look_alike_host_is_refused(
    world, instance_url: str
) -> None:
    from sync.connectors.salesforce_auth import SECRET_ACCESS_TOKEN, SECRET_INSTANCE_URL

    engine = world.make_engine()
    await world.enable(engine)
    await linked_pair(world, engine)
    saved_instance = (await world.secrets.get(SECRET_INSTANCE_URL)).reveal()
    saved_token = (await world.secrets.get(SECRET_ACCESS_TOKEN)).reveal()
    world.sf_proxy.add(Tamper(path="/services/data/", respond=invalid_session()))

    def move(body: dict) -> None:
        body["instance_url"] = instance_url

    world.sf_proxy.add(Tamper(path="/services/oauth2/token", transform=json_edit(move)))
    summary = await engine.run_once()

    assert_clear_failure(summary, "Refusing the Salesforce instance URL")
    assert (await world.secrets.get(SECRET_INSTANCE_URL)).reveal() == saved_instance
    assert (await world.secrets.get(SECRET_ACCESS_TOKEN)).reveal() == saved_token
    assert all("evil" not in path for _, path, _ in world.sf_proxy.seen)
    await recovers(world, engine)


async def test_connect_refuses_a_login_whose_instance_is_a_look_alike_host(world, tmp_path) -> None:
    from sync.connections import connect_salesforce
    from sync.secrets import MemoryStore

    secrets = MemoryStore()

    def move(body: dict) -> None:
        body["instance_url"] = LOOK_ALIKES["suffix"]

    world.sf_proxy.add(Tamper(path="/services/oauth2/token", transform=json_edit(move)))
    with pytest.raises(ServiceError) as caught:
        await connect_salesforce(
            secrets,
            login_url=world.sf_login_url,
            client_id=world.sf.client_id,
            auth="client-credentials",
            secret=world.sf.client_secret,
            home=tmp_path / "other",
        )

    assert "evil.io" in caught.value.message and "Refusing" in caught.value.message
    assert await secrets.get("salesforce.access_token") is None
    store = StateStore.open(paths.state_file(tmp_path / "other"), read_only=True)
    try:
        assert store.connection(Side.SALESFORCE) is None
    finally:
        store.close()


async def test_a_rotated_refresh_token_is_saved_before_use_and_survives_a_restart(
    world, tmp_path: Path, monkeypatch
) -> None:
    import webbrowser

    from emulators.salesforce import SalesforceEmulatorConfig, create_app
    from sync.connections import connect_salesconnect, connect_salesforce
    from sync.connectors.salesforce_auth import SECRET_REFRESH_TOKEN
    from sync.engine import build_engine
    from sync.secrets import MemoryStore

    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # no desktop browser here
    app = create_app(SalesforceEmulatorConfig(rotate_refresh_tokens=True))
    emulator = app.state.emulator
    emulator.set_auto_approve(True)  # the user clicks "Allow"
    home = tmp_path / "pkce"
    secrets = MemoryStore()

    def approve(url: str) -> None:
        # The user's browser: open the page; the redirect reaches the login's listener.
        def browse() -> None:
            with httpx.Client(follow_redirects=True, timeout=10) as browser:
                browser.get(url)

        threading.Thread(target=browse, daemon=True).start()

    with serve_in_thread(app) as server:
        await connect_salesforce(
            secrets,
            login_url=server.base_url,
            client_id=emulator.config.client_id,
            announce=approve,
            home=home,
            redirect_port=0,
        )
        await connect_salesconnect(
            secrets,
            base_url=world.sc_base_url,
            client_id=world.sc.client_id,
            token_url=None,
            secret=world.sc.client_secret,
            home=home,
        )
        first = (await secrets.get(SECRET_REFRESH_TOKEN)).reveal()
        seen = [first]
        for restart in range(2):
            faults = {"kinds": ["expire_token"], "count": 1}
            httpx.post(server.base_url + "/__emulator__/faults", json=faults).raise_for_status()
            engine = build_engine(home, secrets)
            try:
                if restart == 0:
                    await engine.set_enabled(True, start=False)
                summary = await engine.run_once()
            finally:
                await engine.aclose()
            assert summary.outcome is Outcome.DONE, summary.message
            current = (await secrets.get(SECRET_REFRESH_TOKEN)).reveal()
            assert current not in seen  # rotated, and the new one was kept
            seen.append(current)
        old = httpx.post(
            server.base_url + "/services/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first,
                "client_id": emulator.config.client_id,
            },
        )
        assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


# --- clocks ------------------------------------------------------------------------------


async def test_clock_skew_between_the_services_and_this_machine_loses_no_edit(world) -> None:
    world.sf.set_clock(7 * 60)  # Salesforce 7 minutes ahead of this machine
    world.sc.set_clock(-6 * 60)  # Sales Connect 6 minutes behind
    engine = world.make_engine()  # its clock is this machine's
    await engine.set_enabled(True, start=False)
    await asyncio.sleep(0.01)
    link = await linked_pair(world, engine)
    sc_id = world.sc.create_task(name="Send contract")
    await engine.run_once()

    for round_number in range(3):
        world.sf.update_task(link.sf_id, Description=f"sf edit {round_number}")
        world.sc.update_task(link.sc_id, due_date=f"2026-12-0{round_number + 1}")
        world.sc.update_task(sc_id, priority="high" if round_number % 2 else "normal")
        summary = await engine.run_once()
        assert summary.outcome is Outcome.DONE, summary.message
        sc_task = world.sc.get_task(link.sc_id)
        sf_task = world.sf.get_task(link.sf_id)
        assert sc_task["details"] == f"sf edit {round_number}"
        assert sf_task["ActivityDate"] == f"2026-12-0{round_number + 1}"
        partner = world.sf.get_task(engine.store.link_by_sc(sc_id).sf_id)
        assert partner["Priority"] == ("High" if round_number % 2 else "Normal")
    assert (await engine.run_once()).writes == 0
