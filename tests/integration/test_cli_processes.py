"""The CLI as real processes: `emulators` serves both services and prints how to reach them,
`run` keeps syncing until interrupted, and headless commands never load Textual."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.file_keyring import KEYRING_FILE_ENV, FileKeyring

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, keyring_file: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REMINDER_SYNC_HOME": str(home),
        "PYTHON_KEYRING_BACKEND": "tests.integration.file_keyring.FileKeyring",
        KEYRING_FILE_ENV: str(keyring_file),
        "PYTHONPATH": str(ROOT),
    }


def _cli(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        env=env,
        cwd=ROOT,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


# `reminder-sync ARGS` with Ctrl-C (SIGINT) handled as in a terminal, whatever this process does
# with it: a command started in the background by a non-interactive shell ignores SIGINT, and
# so would every process it starts (then `run` rightly keeps running, and the test fails).
_WITH_CTRL_C = (
    "import runpy, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "sys.argv[0] = 'reminder-sync'\n"
    "runpy.run_module('tui.cli', run_name='__main__', alter_sys=True)\n"
)


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=20)
        tail = (out or "")[-1500:], (err or "")[-1500:]
        raise AssertionError(f"no exit 20 s after SIGINT; stdout, stderr end: {tail}") from None


def test_emulators_print_one_json_line_per_service_that_connect_and_sync_can_use(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path / "home", tmp_path / "keyring.json")
    server = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "emulators"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [json.loads(server.stdout.readline()) for _ in range(2)]
        services = {line["service"]: line for line in lines}
        assert set(services) == {"salesforce", "salesconnect"}
        for line in lines:
            assert set(line) == {
                "service", "base_url", "token_url", "client_id", "client_secret", "username",
            }  # fmt: skip
            assert line["base_url"].startswith("http://127.0.0.1:")
        sf, sc = services["salesforce"], services["salesconnect"]

        # The SF emulator is its own login host; the SC base_url is the API root.
        connected = _cli(
            env, "connect", "salesforce", "--login-url", sf["base_url"], "--client-id",
            sf["client_id"], "--auth", "client-credentials", "--secret-stdin",
            input=sf["client_secret"],
        )  # fmt: skip
        assert connected.returncode == 0, connected.stderr
        connected = _cli(
            env, "connect", "salesconnect", "--base-url", sc["base_url"], "--client-id",
            sc["client_id"], "--token-url", sc["token_url"], "--secret-stdin",
            input=sc["client_secret"],
        )  # fmt: skip
        assert connected.returncode == 0, connected.stderr
        assert _cli(env, "enable").returncode == 0
        token = httpx.post(
            sf["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": sf["client_id"],
                "client_secret": sf["client_secret"],
            },
        ).json()["access_token"]
        httpx.post(
            sf["base_url"] + "/services/data/v62.0/sobjects/Task/",
            headers={"Authorization": f"Bearer {token}"},
            json={"Subject": "Seen by a real process", "Status": "Not Started"},
        ).raise_for_status()

        synced = _cli(env, "sync", "--json")

        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["created"] == {"salesconnect": 1}
        status = json.loads(_cli(env, "status", "--json").stdout)
        assert status["links"] == 1
    finally:
        assert _stop(server) == 0
    # Secrets stayed out of the state file.
    state = (tmp_path / "home" / "state.json").read_text()
    assert sf["client_secret"] not in state and sc["client_secret"] not in state
    assert "access_token" not in state


async def _connected_and_enabled(home: Path, keyring_file: Path, sf: Any, sc: Any) -> None:
    """`connect salesforce`, `connect salesconnect` and `enable`, done in this process (the
    processes of the test above run them as commands)."""
    from sync.secrets import KeyringStore
    from tests.conftest import enabled_home

    await enabled_home(home, KeyringStore(backend=FileKeyring(keyring_file)), sf, sc)


def test_run_keeps_syncing_until_interrupted(tmp_path: Path, sf, sc) -> None:
    env = _env(tmp_path / "home", tmp_path / "keyring.json")
    asyncio.run(_connected_and_enabled(tmp_path / "home", tmp_path / "keyring.json", sf, sc))
    sf.create_task(Subject="Picked up by run")
    runner = subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "Picked up by run" not in sc.by_name():
            assert time.monotonic() < deadline, "run did not sync"
            assert runner.poll() is None, runner.stderr.read()
            time.sleep(0.2)
    finally:
        code = _stop(runner)
    out = runner.stdout.read()
    assert code == 0
    assert "sync done" in out
    assert "Traceback" not in runner.stderr.read()


def test_headless_commands_never_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tui.cli import main\n"
        "for args in (['--help'], ['status', '--json'], ['conflicts'], ['sync', '--help']):\n"
        "    CliRunner().invoke(main, args)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    env = _env(tmp_path / "home", tmp_path / "keyring.json")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_reader_that_goes_away_stops_output_quietly(tmp_path: Path) -> None:
    # `reminder-sync status | head -0`: the pipe is closed before the first line is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tui.cli", "status"],
            env=_env(tmp_path / "home", tmp_path / "keyring.json"),
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1
