"""A crash between a remote create and the state save produces no duplicate (rule 13).

A real `reminder-sync sync` process is killed (os._exit at a named fail point, like SIGKILL: no
cleanup, no save) right after the service created the task, then run again. Afterwards each
task exists exactly once on each side and the pair is linked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.failpoints import CRASH_EXIT_CODE, FAILPOINT_ENV
from sync.journal import Journal
from tests.conftest import enabled_home
from tests.integration.file_keyring import KEYRING_FILE_ENV, FileKeyring

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    return tmp_path / "keyring.json"


@pytest.fixture
def secrets(keyring_file: Path) -> Any:
    from sync.secrets import KeyringStore

    return KeyringStore(backend=FileKeyring(keyring_file))


def reminder_sync(home: Path, keyring_file: Path, *args: str, failpoint: str | None = None):
    env = {
        **os.environ,
        "REMINDER_SYNC_HOME": str(home),
        "PYTHON_KEYRING_BACKEND": "tests.integration.file_keyring.FileKeyring",
        KEYRING_FILE_ENV: str(keyring_file),
        "PYTHONPATH": str(ROOT),
    }
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def first_sync(home: Path, secrets: Any) -> None:
    """The run that links the pair, in this process (the crashes under test come after it)."""
    from sync.engine import build_engine
    from sync.events import Outcome

    engine = build_engine(home, secrets)
    try:
        summary = await engine.run_once()
    finally:
        await engine.aclose()
    assert summary.outcome is Outcome.DONE, summary.message


def crash_then_resume(home: Path, keyring_file: Path, failpoint: str) -> dict:
    crashed = reminder_sync(home, keyring_file, "sync", failpoint=failpoint)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    resumed = reminder_sync(home, keyring_file, "sync", "--json")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    return json.loads(resumed.stdout)


@pytest.mark.parametrize("failpoint", ["after_remote_create", "after_journal_confirm"])
async def test_a_crash_after_creating_in_sales_connect_produces_no_duplicate(
    sf, sc, home, secrets, keyring_file, failpoint
) -> None:
    await enabled_home(home, secrets, sf, sc)
    sf_id = sf.create_task(Subject="Call Jane before the crash")

    crash_then_resume(home, keyring_file, failpoint)

    copies = [t for t in sc.tasks() if t["name"] == "Call Jane before the crash"]
    assert len(copies) == 1
    state = json.loads((home / "state.json").read_text())
    pairs = [(d["sc_id"], d["sf_id"]) for d in state["links"].values()]
    assert pairs == [(copies[0]["id"], sf_id)]


async def test_a_crash_after_creating_in_salesforce_produces_no_duplicate(
    sf, sc, home, secrets, keyring_file
) -> None:
    await enabled_home(home, secrets, sf, sc)
    sc_id = sc.create_task(name="Send proposal before the crash")

    crash_then_resume(home, keyring_file, "after_remote_create")

    copies = [t for t in sf.tasks() if t["Subject"] == "Send proposal before the crash"]
    assert len(copies) == 1
    state = json.loads((home / "state.json").read_text())
    pairs = [(d["sc_id"], d["sf_id"]) for d in state["links"].values()]
    assert pairs == [(sc_id, copies[0]["Id"])]


async def test_a_crash_while_the_next_batch_of_creates_is_on_its_way_produces_no_duplicate(
    sf, sc, home, secrets, keyring_file
) -> None:
    """1,000 creates are five batches of 200; the ones after the first are journaled and sent
    (CREATES_AHEAD of them) before the first one's results are recorded. The process dies
    right when those results arrive: the batches after it may or may not have reached
    Salesforce, and the last one was never journaled. The next run links every task exactly
    once."""
    from sync.writer import BATCH_SIZE, CREATES_AHEAD

    total = 1000
    await enabled_home(home, secrets, sf, sc)
    names = {f"Follow up {n}" for n in range(total)}
    emulator = sc.app.state.emulator  # seeded directly: 1,000 calls over HTTP take seconds
    for name in names:
        emulator.add_task(name=name)

    crashed = reminder_sync(home, keyring_file, "sync", failpoint="after_remote_create")
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    sent = BATCH_SIZE * (CREATES_AHEAD + 1)
    assert sent < total  # so some batch was never sent
    with Journal.open(home / "journal.json") as journal:
        assert len(journal.pending()) == sent  # the batches sent, none recorded
    resumed = reminder_sync(home, keyring_file, "sync", "--json")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout

    subjects = [t["Subject"] for t in sf.tasks()]
    assert sorted(subjects) == sorted(names)
    state = json.loads((home / "state.json").read_text())
    assert len({d["sf_id"] for d in state["links"].values()}) == total


@pytest.mark.parametrize("sf_config", [{"external_id_field": None}])
async def test_a_crash_after_creating_in_an_org_without_the_key_field_produces_no_duplicate(
    sf, sc, home, secrets, keyring_file, sf_config
) -> None:
    await enabled_home(home, secrets, sf, sc)
    sc.create_task(name="Book the venue", due_date="2026-12-09", details="50 seats")

    crash_then_resume(home, keyring_file, "after_remote_create")

    copies = [t for t in sf.tasks() if t["Subject"] == "Book the venue"]
    assert len(copies) == 1
    assert copies[0]["ActivityDate"] == "2026-12-09"


def linked_sf_id(home: Path, sc_id: str) -> str:
    state = json.loads((home / "state.json").read_text())
    [sf_id] = [d["sf_id"] for d in state["links"].values() if d["sc_id"] == sc_id]
    return sf_id


@pytest.mark.parametrize("then", ["delete in salesforce", "edit the subject again"])
async def test_a_crash_after_an_update_leaves_no_false_conflict(
    sf, sc, home, secrets, keyring_file, then
) -> None:
    """The update reached Sales Connect but the run died before saving the new base: the next
    run must know the new name is its own write, so a later change in Salesforce (a delete,
    or another edit of the same field) is carried over, not parked as a conflict."""
    await enabled_home(home, secrets, sf, sc)
    sc_id = sc.create_task(name="Call Jane")
    await first_sync(home, secrets)
    sf_id = linked_sf_id(home, sc_id)
    sf.update_task(sf_id, Subject="Call Jane at 10")

    crashed = reminder_sync(home, keyring_file, "sync", failpoint="after_remote_update")

    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert sc.get_task(sc_id)["name"] == "Call Jane at 10"  # written; the state not saved
    if then == "delete in salesforce":
        sf.delete_task(sf_id)
    else:
        sf.update_task(sf_id, Subject="Call Jane at 11")

    resumed = reminder_sync(home, keyring_file, "sync", "--json")

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout  # not "conflicts wait"
    summary = json.loads(resumed.stdout)
    assert summary["conflicts"] == 0 and summary["errors"] == 0
    if then == "delete in salesforce":
        assert summary["deleted"] == {"salesconnect": 1}
        assert sc.get_task(sc_id) is None
    else:
        assert summary["updated"] == {"salesconnect": 1}
        assert sc.get_task(sc_id)["name"] == "Call Jane at 11"
    waiting = reminder_sync(home, keyring_file, "conflicts", "--json")
    assert json.loads(waiting.stdout) == []
    idle = reminder_sync(home, keyring_file, "sync", "--json")
    assert idle.returncode == 0 and json.loads(idle.stdout)["planned"] == []
    with Journal.open(home / "journal.json") as journal:
        assert journal.pending() == []  # settled, saved twice, dropped


async def test_two_crashes_in_a_row_after_updates_leave_no_false_conflict(
    sf, sc, home, secrets, keyring_file
) -> None:
    """Two runs die after updating the same task: the second run's write started from a base
    only the first crash's journal knew. The next run still settles both, so a delete in
    Salesforce afterwards is carried over instead of asking the user."""
    await enabled_home(home, secrets, sf, sc)
    sc_id = sc.create_task(name="Call Jane")
    await first_sync(home, secrets)
    sf_id = linked_sf_id(home, sc_id)
    for subject in ("Call Jane at 10", "Call Jane at 11"):
        sf.update_task(sf_id, Subject=subject)
        crashed = reminder_sync(home, keyring_file, "sync", failpoint="after_remote_update")
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
        assert sc.get_task(sc_id)["name"] == subject
    sf.delete_task(sf_id)

    resumed = reminder_sync(home, keyring_file, "sync", "--json")

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert json.loads(resumed.stdout)["deleted"] == {"salesconnect": 1}
    assert sc.get_task(sc_id) is None
    assert json.loads(reminder_sync(home, keyring_file, "conflicts", "--json").stdout) == []
