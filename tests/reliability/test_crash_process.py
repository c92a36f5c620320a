"""A real `reminder-sync sync` process, killed again and again, never loses or doubles a task.

Both emulators are served by this test over loopback; each round the "user" creates, edits and
deletes tasks on both services (through the emulators' Python API), then a `reminder-sync sync`
process starts and dies: SIGKILL after a random delay, or `os._exit` at a named fault point of
`sync.failpoints` (before/after a remote create, update or delete, after the journal confirm,
before/after the state save). The next round's process starts from whatever the dead one left.
At the end, runs without kills must settle everything: every task exactly once on each side,
every pair linked, every last edit present, every delete carried over, and a further run idle.

Each task is edited on the side where it was created only, so the expected end state is known
without conflicts: the point here is crashes, not conflict rules.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sync import failpoints
from sync.model import Side

ROOT = Path(__file__).resolve().parents[2]
KILLS_WANTED = 50
FAILPOINTS = failpoints.POINTS
CRASH_EXIT = failpoints.CRASH_EXIT_CODE
SC_TO_SF_STATUS = {"open": "Not Started", "complete": "Completed"}
SC_TO_SF_PRIORITY = {"normal": "Normal", "high": "High"}


@dataclass
class Expected:
    """What each task must look like at the end, by tag, in Sales Connect terms."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, Side] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # tag -> id on its origin side
    deleted: set[str] = field(default_factory=set)


class User:
    """Edits both services the way a user would between (and during) syncs."""

    def __init__(self, sf: Any, sc: Any, rng: random.Random) -> None:
        self.sf, self.sc, self.rng = sf, sc, rng
        self.expected = Expected()
        self.count = 0

    def create(self, side: Side) -> None:
        self.count += 1
        tag = f"c{self.count}"
        fields = {
            "name": f"{tag} call",
            "status": "open",
            "priority": self.rng.choice(("normal", "high")),
            "due_date": self.rng.choice((None, "2026-12-01", "2027-01-15")),
            "details": self.rng.choice(("", "notes")),
        }
        if side is Side.SALESCONNECT:
            task_id = self.sc.add_task(**fields)["id"]
        else:
            task_id = self.sf.add_task(**self._sf(fields))["Id"]
        self.expected.tasks[tag] = fields
        self.expected.origin[tag] = side
        self.expected.ids[tag] = task_id

    def edit(self) -> None:
        live = [t for t in self.expected.tasks if t not in self.expected.deleted]
        if not live:
            return
        tag = self.rng.choice(live)
        name, value = self.rng.choice(
            [
                ("name", f"{tag} {self.rng.choice(('call', 'email', 'visit', 'quote'))}"),
                ("status", self.rng.choice(("open", "complete"))),
                ("priority", self.rng.choice(("normal", "high"))),
                ("due_date", self.rng.choice((None, "2026-12-24", "2027-02-01"))),
                ("details", self.rng.choice(("", "edited", "line one\nline two"))),
            ]
        )
        task_id = self.expected.ids[tag]
        if self.expected.origin[tag] is Side.SALESCONNECT:
            self.sc.update(task_id, None, {name: value})
        else:
            self.sf.update_task(task_id, **self._sf({name: value}))
        self.expected.tasks[tag][name] = value

    def delete(self) -> None:
        live = [t for t in self.expected.tasks if t not in self.expected.deleted]
        if len(live) < 8:  # keep well clear of the mass-delete guard
            return
        tag = self.rng.choice(live)
        if self.expected.origin[tag] is Side.SALESCONNECT:
            self.sc.delete_task(self.expected.ids[tag])
        else:
            self.sf.delete_task(self.expected.ids[tag])
        self.expected.deleted.add(tag)

    @staticmethod
    def _sf(fields: dict[str, Any]) -> dict[str, Any]:
        names = {
            "name": "Subject",
            "status": "Status",
            "priority": "Priority",
            "due_date": "ActivityDate",
            "details": "Description",
        }
        out = {}
        for key, value in fields.items():
            if key == "status":
                value = SC_TO_SF_STATUS[value]
            elif key == "priority":
                value = SC_TO_SF_PRIORITY[value]
            out[names[key]] = value
        return out


def cli_env(home: Path, keyring_file: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REMINDER_SYNC_HOME": str(home),
        "PYTHON_KEYRING_BACKEND": "tests.reliability.file_keyring.FileKeyring",
        "REMINDER_SYNC_TEST_KEYRING": str(keyring_file),
        **extra,
    }


class ForkedSync:
    """One `reminder-sync sync` process forked by `SyncForker`; the parts of Popen used here."""

    def __init__(self, forker: SyncForker, pid: int, stderr: Path) -> None:
        self.forker, self.pid, self.stderr = forker, pid, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            line = self.forker.line(timeout=0)
            if line is not None:
                self.returncode = json.loads(line)["exit"]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # ended or not, the pid stays ours until the next start
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float) -> tuple[None, str]:
        if self.returncode is None:
            line = self.forker.line(timeout=timeout)
            if line is None:
                raise subprocess.TimeoutExpired("reminder-sync sync", timeout)
            self.returncode = json.loads(line)["exit"]
        return None, self.stderr.read_text()


class SyncForker:
    """Starts `reminder-sync sync` processes by forking them from one Python that has already
    imported the CLI (see `sync_forker.py`): each round's process is still a process of its own
    that SIGKILL or a fail point ends, but starting it takes milliseconds instead of ~0.5 s."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.sync_forker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        self._buffer = b""
        self.started = 0

    def line(self, timeout: float | None) -> str | None:
        """The forker's next line, or None if none came within `timeout` seconds."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._fd, 4096)
            assert chunk, f"the forker ended: {self.process.wait()}"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def start(self, env: dict[str, str]) -> ForkedSync:
        self.started += 1
        stderr = self.folder / f"stderr-{self.started}.txt"
        request = json.dumps({"env": env, "stderr": str(stderr)}) + "\n"
        assert self.process.stdin is not None
        self.process.stdin.write(request.encode())
        self.process.stdin.flush()
        line = self.line(timeout=60)
        assert line is not None, "the forker did not fork"
        return ForkedSync(self, json.loads(line)["pid"], stderr)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def wait_for_first_request(process: subprocess.Popen, sc: Any, timeout: float = 60) -> None:
    """Until `process` has sent its first request to Sales Connect (or has exited)."""
    seen = len(sc.requests)
    deadline = time.monotonic() + timeout
    while process.poll() is None and len(sc.requests) == seen and time.monotonic() < deadline:
        time.sleep(0.002)


@pytest.mark.timeout(600)
async def test_sigkilled_sync_processes_lose_and_double_nothing(servers: Any, tmp_path: Path):
    from sync.connections import connect_salesconnect, connect_salesforce
    from sync.engine import build_engine
    from sync.secrets import KeyringStore
    from tests.reliability.file_keyring import FileKeyring

    servers.reset()
    sf = servers.sf_app.state.emulator
    sc = servers.sc_app.state.emulator
    home, keyring_file = tmp_path / "home", tmp_path / "keyring.json"
    secrets = KeyringStore(backend=FileKeyring(keyring_file))
    await connect_salesforce(
        secrets,
        login_url=servers.sf_server.base_url,
        client_id=sf.config.client_id,
        auth="client-credentials",
        secret=sf.config.client_secret,
        home=home,
    )
    await connect_salesconnect(
        secrets,
        base_url=servers.sc_server.base_url + "/api/v1",
        client_id=sc.config.client_id,
        token_url=None,
        secret=sc.config.client_secret,
        home=home,
    )
    engine = build_engine(home, secrets)
    await engine.set_enabled(True, start=False)
    await engine.aclose()
    time.sleep(0.01)  # tasks made from now on are "after enabling"

    rng = random.Random(20261130)
    user = User(sf, sc, rng)
    for _ in range(6):
        user.create(Side.SALESCONNECT)
        user.create(Side.SALESFORCE)
    kills: Counter[str] = Counter()
    finished = 0
    rounds = 0
    # Each round's process is forked from one that has the imports done (see SyncForker); the
    # runs that settle everything afterwards are fresh `python -m tui.cli` processes.
    forker = SyncForker(cli_env(home, keyring_file), tmp_path)
    try:
        while sum(kills.values()) < KILLS_WANTED:
            rounds += 1
            assert rounds < KILLS_WANTED * 4, f"too few kills landed: {dict(kills)}"
            for _ in range(rng.randint(1, 4)):
                user.create(rng.choice(list(Side)))
            for _ in range(rng.randint(2, 6)):
                user.edit()
            if rng.random() < 0.3:
                user.delete()
            if rounds % 2:
                point = FAILPOINTS[(rounds // 2) % len(FAILPOINTS)]
                process = forker.start(cli_env(home, keyring_file, REMINDER_SYNC_FAILPOINT=point))
                label = point
            else:
                process = forker.start(cli_env(home, keyring_file))
                # Kill at a random instant of the run itself: wait for its first request, then up to
                # 0.15 s more (a run here takes ~0.08-0.17 s from there). A delay counted from the
                # start mostly fell after the run had ended (or in a fresh Python's imports).
                wait_for_first_request(process, sc)
                time.sleep(rng.uniform(0.0, 0.15))
                process.send_signal(signal.SIGKILL)
                label = "SIGKILL"
            try:
                _, err = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            if process.returncode in (-signal.SIGKILL, CRASH_EXIT):
                kills[label] += 1
            else:
                assert process.returncode in (0, 3), err  # finished before the kill: fine
                assert "Traceback" not in err
                finished += 1
    finally:
        forker.close()

    # Runs without kills settle everything.
    outcomes = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "tui.cli", "sync", "--json"],
            cwd=ROOT,
            env=cli_env(home, keyring_file),
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcomes.append((done.returncode, done.stdout, done.stderr))
    waiting = subprocess.run(
        [sys.executable, "-m", "tui.cli", "conflicts", "--json"],
        cwd=ROOT,
        env=cli_env(home, keyring_file),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    print(
        f"\ncrash test: {rounds} rounds, {sum(kills.values())} kills {dict(kills)}, "
        f"{finished} runs finished before their kill, {len(user.expected.tasks)} tasks, "
        f"{len(user.expected.deleted)} deleted"
    )
    check_nothing_doubled_or_lost(sf, sc, user.expected)
    # Every task was edited on one side only, so nothing may wait for the user.
    assert json.loads(waiting) == [], waiting
    assert outcomes[-1][0] == 0, outcomes
    assert json.loads(outcomes[-1][1])["planned"] == [], outcomes[-1][1]
    check_end_state(sf, sc, user.expected)


def check_nothing_doubled_or_lost(sf: Any, sc: Any, expected: Expected) -> None:
    """No task twice on a side; each task the user kept is still on the side they made it."""
    sc_tags = Counter(t["name"].split(" ", 1)[0] for t in sc.tasks())
    sf_tags = Counter(t["Subject"].split(" ", 1)[0] for t in sf.tasks())
    assert [t for t, n in sc_tags.items() if n > 1] == [], "a task exists twice in Sales Connect"
    assert [t for t, n in sf_tags.items() if n > 1] == [], "a task exists twice in Salesforce"
    for tag, side in expected.origin.items():
        on_origin = (sc_tags if side is Side.SALESCONNECT else sf_tags)[tag]
        assert on_origin == (0 if tag in expected.deleted else 1), (tag, side)


def check_end_state(sf: Any, sc: Any, expected: Expected) -> None:
    sc_tasks = sc.tasks()
    sf_tasks = [t for t in sf.tasks() if t["OwnerId"] == sf.config.user_id]
    sc_tags = Counter(t["name"].split(" ", 1)[0] for t in sc_tasks)
    sf_tags = Counter(t["Subject"].split(" ", 1)[0] for t in sf_tasks)
    assert [t for t, n in sc_tags.items() if n > 1] == [], "a task exists twice in Sales Connect"
    assert [t for t, n in sf_tags.items() if n > 1] == [], "a task exists twice in Salesforce"
    alive = {t for t in expected.tasks if t not in expected.deleted}
    assert set(sc_tags) == alive, (sorted(set(sc_tags) ^ alive), "Sales Connect")
    assert set(sf_tags) == alive, (sorted(set(sf_tags) ^ alive), "Salesforce")
    by_tag_sc = {t["name"].split(" ", 1)[0]: t for t in sc_tasks}
    by_tag_sf = {t["Subject"].split(" ", 1)[0]: t for t in sf_tasks}
    for tag in alive:
        want = expected.tasks[tag]
        got_sc = {k: by_tag_sc[tag][k] for k in want}
        got_sc["details"] = got_sc["details"] or ""
        assert got_sc == want, (tag, "Sales Connect")
        got_sf = by_tag_sf[tag]
        assert got_sf["Subject"] == want["name"], tag
        assert got_sf["Status"] == SC_TO_SF_STATUS[want["status"]], tag
        assert got_sf["Priority"] == SC_TO_SF_PRIORITY[want["priority"]], tag
        assert got_sf["ActivityDate"] == want["due_date"], tag
        assert (got_sf["Description"] or "") == want["details"], tag
