"""KeyringStore against a real Secret Service: gnome-keyring, unlocked, in a private D-Bus session.

The keyring runs in a throwaway HOME, so the user's own keyring is never touched. CI installs
gnome-keyring, dbus and libsecret-tools (see .ci/run); without them this test fails on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NEEDED = ("dbus-run-session", "gnome-keyring-daemon", "secret-tool")

# Runs inside the D-Bus session: writes through KeyringStore, checks the value with an
# independent Secret Service client (libsecret's secret-tool), reads, deletes, checks again.
SESSION_PROGRAM = """
    import asyncio, json, subprocess, sys
    from sync.secrets import KeyringStore, Secret

    NAME = "salesforce:refresh_token"
    VALUE = sys.argv[1]

    def lookup():
        found = subprocess.run(
            ["secret-tool", "lookup", "service", "reminder-sync", "username", NAME],
            capture_output=True, text=True,
        )
        return found.stdout if found.returncode == 0 else None

    async def main():
        store = KeyringStore(timeout=20)
        backend = await store.backend()
        report = {"backend": f"{type(backend).__module__}.{type(backend).__name__}"}
        await store.set(NAME, Secret(VALUE))
        report["seen_by_secret_tool"] = lookup()
        got = await store.get(NAME)
        report["read_back"] = got.reveal() if got else None
        report["repr"] = repr(got)
        await store.set(NAME, VALUE + "-rotated")
        report["after_rotation"] = (await store.get(NAME)).reveal()
        await store.delete(NAME)
        report["after_delete"] = await store.get(NAME)
        report["secret_tool_after_delete"] = lookup()
        await store.delete(NAME)  # deleting again is harmless
        print("REPORT " + json.dumps(report), flush=True)

    asyncio.run(main())
"""


def test_keyring_store_round_trips_through_gnome_keyring(tmp_path: Path) -> None:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install the Debian packages gnome-keyring dbus "
            "dbus-x11 libsecret-tools (.ci/run does) to test the keyring on a real Secret Service"
        )
    program = tmp_path / "session_program.py"
    program.write_text(textwrap.dedent(SESSION_PROGRAM))
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    for directory in (home, runtime):
        directory.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_RUNTIME_DIR": str(runtime),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
    }
    value = "5Aep861-real-looking-refresh-token.value"
    script = (
        "printf %s unlock-pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && "
        f'exec "{sys.executable}" "{program}" "{value}"'
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, f"the session program did not finish:\n{result.stdout}\n{result.stderr}"
    report = json.loads(lines[0].removeprefix("REPORT "))
    assert report == {
        "backend": "keyring.backends.SecretService.Keyring",
        "seen_by_secret_tool": value,
        "read_back": value,
        "repr": "Secret('********')",
        "after_rotation": value + "-rotated",
        "after_delete": None,
        "secret_tool_after_delete": None,
    }
    assert value not in result.stderr
