"""No secret leaks: a login, a crashed run, a refresh, a forced traceback, all at DEBUG level.

Real `reminder-sync` processes run against both emulators over loopback, with every logger at
DEBUG written to a file, the keyring pointed at a file (`file_keyring.py`: the one place the
secrets may be). Then every byte the tool left behind (log files, stdout and stderr of every
process, the crash output, the state directory, the screenshots) is searched for every secret
that existed during the test: the access and refresh tokens both emulators issued, the client
secrets, and the authorization code of the PKCE login. Zero hits.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from sync.events import Outcome
from tests.reliability.conftest import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
BROWSER = "the user's browser"  # its own log lines are not the tool's: filtered out

# A CLI process with every logger at DEBUG into a file; FORCE_CRASH=1 makes the run blow up
# with an unexpected exception after it has talked to both services (a traceback to log).
DRIVER = """
import logging, os, sys
logging.basicConfig(
    level=logging.DEBUG, filename=sys.argv[1],
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
sys.argv = ["reminder-sync", *sys.argv[2:]]
if os.environ.get("FORCE_CRASH"):
    import sync.writer

    async def crash(self):
        raise RuntimeError("forced crash in the middle of a run")

    sync.writer.StateSaver.checkpoint = crash
from tui.cli import main
main()
"""


class Run:
    def __init__(self, home: Path, keyring_file: Path, logs: Path) -> None:
        self.home = home
        self.keyring_file = keyring_file
        self.logs = logs
        self.outputs: list[str] = []
        self.count = 0

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.count += 1
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REMINDER_SYNC_HOME": str(self.home),
            "PYTHON_KEYRING_BACKEND": "tests.reliability.file_keyring.FileKeyring",
            "REMINDER_SYNC_TEST_KEYRING": str(self.keyring_file),
            **env,
        }
        log = self.logs / f"run-{self.count}.log"
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(log), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environment,
            timeout=120,
        )
        self.outputs += [done.stdout, done.stderr]
        return done


def deliver_login(url: str, codes: list[str]) -> None:
    """The user's browser: open the authorize URL, note the code, follow to the listener."""

    def browse() -> None:
        with httpx.Client(timeout=10) as browser:
            answer = browser.get(url)
            location = answer.headers["location"]
            codes.append(httpx.URL(location).params["code"])
            browser.get(location)

    threading.Thread(target=browse, name=BROWSER, daemon=True).start()


async def test_no_token_secret_or_code_reaches_a_log_the_output_or_a_file(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import webbrowser

    from emulators.salesconnect import SalesConnectConfig
    from emulators.salesconnect import create_app as sc_app
    from emulators.salesforce import SalesforceEmulatorConfig
    from emulators.salesforce import create_app as sf_app
    from sync.connections import connect_salesconnect, connect_salesforce
    from sync.secrets import KeyringStore
    from tests.reliability.file_keyring import FileKeyring

    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # no desktop browser here
    sf_secret = "sf-client-secret-" + uuid.uuid4().hex
    sc_secret = "sc-client-secret-" + uuid.uuid4().hex
    sf = sf_app(SalesforceEmulatorConfig(client_secret=sf_secret, rotate_refresh_tokens=True))
    sc = sc_app(SalesConnectConfig(client_secret=sc_secret))
    sf_emulator, sc_emulator = sf.state.emulator, sc.state.emulator
    sf_emulator.set_auto_approve(True)
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    keyring_file = tmp_path / "keyring.json"
    secrets = KeyringStore(backend=FileKeyring(keyring_file))
    codes: list[str] = []

    with serve_in_thread(sf) as sf_server, serve_in_thread(sc) as sc_server:
        # 1. log in (PKCE, in this process, with every logger at DEBUG into a file)
        handler = logging.FileHandler(logs / "login.log")
        handler.addFilter(lambda record: record.threadName != BROWSER)
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            await connect_salesforce(
                secrets,
                login_url=sf_server.base_url,
                client_id=sf_emulator.config.client_id,
                secret=sf_secret,
                announce=lambda url: deliver_login(url, codes),
                home=home,
                redirect_port=0,
            )
            await connect_salesconnect(
                secrets,
                base_url=sc_server.base_url + "/api/v1",
                client_id=sc_emulator.config.client_id,
                token_url=None,
                secret=sc_secret,
                home=home,
            )
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            handler.close()
        assert len(codes) == 1
        issued: set[str] = set()

        def harvest() -> None:
            """Every secret that exists now: in the keyring file and in both emulators."""
            issued.update(v for v in json.loads(keyring_file.read_text()).values() if v)
            issued.update([*sf_emulator.oauth.access, *sf_emulator.oauth.refresh])
            issued.update(sc_emulator._tokens)

        harvest()

        # 2. real processes: enable, a run killed after a remote create, a refresh, a crash
        run = Run(home, keyring_file, logs)
        assert run("enable").returncode == 0, run.outputs
        harvest()
        sf_emulator.add_task(Subject="Call Jane", OwnerId=sf_emulator.config.user_id)
        sc_emulator.add_task(name="Send contract", assignee_id=sc_emulator.config.user_id)

        killed = run("sync", REMINDER_SYNC_FAILPOINT="after_remote_create")
        assert killed.returncode == 86, killed.stderr  # died mid-run, as a SIGKILL would
        harvest()

        httpx.post(
            sf_server.base_url + "/__emulator__/faults",
            json={"kinds": ["expire_token"], "count": 1},
        ).raise_for_status()
        httpx.post(
            sc_server.base_url + "/__emulator__/faults", json={"expire_tokens": True}
        ).raise_for_status()
        crashed = run("sync", FORCE_CRASH="1", REMINDER_SYNC_DEBUG="1")
        assert crashed.returncode == 1
        assert "RuntimeError" in crashed.stderr and "Traceback" not in crashed.stderr
        harvest()

        finished = run("sync", "--json")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        for command in (("status", "--json"), ("conflicts", "--json"), ("status",)):
            assert run(*command).returncode == 0, run.outputs[-1]
        harvest()

    loopback = {sf_server.base_url, sc_server.base_url}
    leaked = sorted({*codes, sf_secret, sc_secret, *issued} - loopback)
    sf_refresh = [t for t in leaked if t.startswith("5Aep")]
    sf_access = [t for t in leaked if t.startswith("00D")]
    sc_access = [t for t in leaked if t.startswith("scat_")]
    assert len(sf_refresh) >= 2  # the refresh token did rotate
    assert len(sf_access) >= 2 and len(sc_access) >= 2  # and both services issued new tokens
    log_text = "".join(p.read_text() for p in logs.iterdir())
    assert "DEBUG" in log_text and "forced crash" in log_text  # logging was on, crash logged
    # The secrets were real and findable: the keyring file holds the latest ones.
    keyring_text = keyring_file.read_text()
    assert sc_secret in keyring_text and sf_secret in keyring_text

    haystack: dict[str, bytes] = {f"output {i}": o.encode() for i, o in enumerate(run.outputs)}
    for path in [*logs.iterdir(), *home.rglob("*"), *(ROOT / "screenshots").glob("*")]:
        if path.is_file():
            haystack[str(path)] = path.read_bytes()
    hits = [
        (where, secret[:12] + "…")
        for where, data in haystack.items()
        for secret in leaked
        if secret and secret.encode() in data
    ]
    assert hits == []

    # 3. the files the tool wrote are private
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = [p for p in home.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"state.json", "state.json.bak", "journal.json"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    summary_outcome = Outcome.DONE.value
    assert f'"outcome": "{summary_outcome}"' in finished.stdout
