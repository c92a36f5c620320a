"""Both emulators in a child process, for benchmarks of the app's own responsiveness.

In `bench.common.rig` the emulators serve from threads of the benchmark's process, so their CPU
shares the GIL with the engine and the UI. That is fair for comparing clients, but it is not
what a user's terminal sees: Salesforce and Sales Connect run elsewhere. Here they run in a
child process (`python -m bench.emulator_process`), driven over stdin/stdout one JSON line at a
time: seed Sales Connect tasks, move the emulators' clocks, read the Salesforce API counter.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    SC_API_PATH,
    EngineHost,
    connect_home,
    seed_sc_tasks,
    served_emulators,
)

ROOT = Path(__file__).resolve().parents[1]


def _serve() -> None:
    """The child: serve both emulators until stdin says stop (or closes)."""
    with served_emulators(workdir=Path(tempfile.gettempdir())) as (sf_app, sc_app, sf, sc, _):
        sf_emulator, sc_emulator = sf_app.state.emulator, sc_app.state.emulator
        hello = {  # the arguments of bench.common.connect_home
            "sf_url": sf.base_url,
            "sf_client_id": sf_emulator.config.client_id,
            "sf_secret": sf_emulator.config.client_secret,
            "sc_url": sc.base_url + SC_API_PATH,
            "sc_client_id": sc_emulator.config.client_id,
            "sc_secret": sc_emulator.config.client_secret,
        }
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            answer: Any = None
            if op == "seed_sc":
                answer = len(seed_sc_tasks(sc_emulator, command["count"]))
            elif op == "clock":
                sf_emulator.set_clock_offset(command["offset"])
                sc_emulator.set_clock_offset(command["offset"])
            elif op == "sf_calls":
                answer = sf_emulator.api_usage()[0]
            print(json.dumps({"ok": answer}), flush=True)
            if op == "stop":
                break


@dataclass
class RemoteRig(EngineHost):
    """Emulators in a child process plus a state home connected to both."""

    child: subprocess.Popen
    home: Path
    secrets: Any
    engines: list[Any] = field(default_factory=list)
    clock_offset: timedelta = timedelta()

    def _ask(self, **command: Any) -> Any:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps(command) + "\n")
        self.child.stdin.flush()
        return json.loads(self.child.stdout.readline())["ok"]

    def advance(self, **delta: float) -> None:
        self.clock_offset += timedelta(**delta)
        self._ask(op="clock", offset=self.clock_offset.total_seconds())

    def seed_sc_tasks(self, count: int) -> int:
        return self._ask(op="seed_sc", count=count)

    def sf_calls(self) -> int:
        return self._ask(op="sf_calls")


@contextlib.asynccontextmanager
async def remote_rig() -> AsyncIterator[RemoteRig]:
    base = Path(tempfile.mkdtemp(prefix="reminder-sync-bench-"))
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator_process"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        hello = json.loads(child.stdout.readline())
        home = base / "home"
        secrets = await connect_home(home, **hello)
        the_rig = RemoteRig(child, home, secrets)
        try:
            yield the_rig
        finally:
            await the_rig.close_all()
            with contextlib.suppress(Exception):
                the_rig._ask(op="stop")
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
        if child.poll() is None:
            child.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    _serve()
