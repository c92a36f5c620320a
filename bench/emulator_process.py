"""Both emulators in a child process, for benchmarks of the app's own responsiveness.

In `bench.common.rig` the emulators serve from threads of the benchmark's process, so their CPU
shares the GIL with the engine and the UI. That is fair for comparing clients, but it is not
what a user's terminal sees: Salesforce and Sales Connect run elsewhere. Here they run in a
child process (`python -m bench.emulator_process`), driven over stdin/stdout one JSON line at a
time: seed Sales Connect tasks, move the emulators' clocks, read the Salesforce API counter and
the Sales Connect request log, and call any public method of either emulator's Python API
(`RemoteRig.sf` / `RemoteRig.sc`, e.g. to edit a task or read one back). With `tls`, Salesforce
is served over TLS as in `bench.common.rig(tls=True)`, and the engine trusts its certificate.
"""

from __future__ import annotations

import contextlib
import json
import os
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
    CONNECT_KEYS,
    SC_API_PATH,
    EngineHost,
    connect_home,
    seed_sc_tasks,
    served_emulators,
)

ROOT = Path(__file__).resolve().parents[1]


def _serve(tls_dir: str | None = None) -> None:
    """The child: serve both emulators until stdin says stop (or closes). With `tls_dir`,
    Salesforce is served over TLS with a certificate written there."""
    workdir = Path(tls_dir) if tls_dir else Path(tempfile.gettempdir())
    with served_emulators(tls=tls_dir is not None, workdir=workdir) as served:
        sf_app, sc_app, sf, sc, cert = served
        sf_emulator, sc_emulator = sf_app.state.emulator, sc_app.state.emulator
        emulators = {"sf": sf_emulator, "sc": sc_emulator}
        hello = {  # the arguments of bench.common.connect_home, and the certificate to trust
            "sf_url": sf.base_url,
            "sf_client_id": sf_emulator.config.client_id,
            "sf_secret": sf_emulator.config.client_secret,
            "sc_url": sc.base_url + SC_API_PATH,
            "sc_client_id": sc_emulator.config.client_id,
            "sc_secret": sc_emulator.config.client_secret,
            "certfile": cert.certfile if cert is not None else None,
        }
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            answer: Any = None
            try:
                if op == "seed_sc":
                    answer = len(seed_sc_tasks(sc_emulator, command["count"]))
                elif op == "clock":
                    sf_emulator.set_clock_offset(command["offset"])
                    sc_emulator.set_clock_offset(command["offset"])
                elif op == "sf_calls":
                    answer = sf_emulator.api_usage()[0]
                elif op == "sc_calls":
                    answer = len(sc_emulator.requests)
                elif op == "call":
                    method = command["method"]
                    if method.startswith("_"):
                        raise AttributeError(f"not a public method: {method}")
                    call = getattr(emulators[command["side"]], method)
                    answer = call(*command["args"], **command["kwargs"])
            except Exception as error:  # reported to the parent, which raises it there
                print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
                continue
            print(json.dumps({"ok": answer}, default=str), flush=True)
            if op == "stop":
                break


class RemoteEmulator:
    """One emulator's Python API in the child: `rig.sf.update_task(id, Subject="x")` runs
    there and returns its answer as JSON (datetimes as strings)."""

    def __init__(self, the_rig: RemoteRig, side: str) -> None:
        self._rig, self._side = the_rig, side

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._rig._ask(
                op="call", side=self._side, method=method, args=args, kwargs=kwargs
            )

        return call


@dataclass
class RemoteRig(EngineHost):
    """Emulators in a child process plus a state home connected to both."""

    child: subprocess.Popen
    home: Path
    secrets: Any
    engines: list[Any] = field(default_factory=list)
    clock_offset: timedelta = timedelta()
    endpoints: dict[str, str] = field(default_factory=dict)  # CONNECT_KEYS: URLs, credentials
    certfile: str | None = None  # Salesforce's certificate, when served over TLS

    def _ask(self, **command: Any) -> Any:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps(command) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            raise RuntimeError(f"emulator process ended (exit code {self.child.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"emulator process: {answer['error']}")
        return answer["ok"]

    @property
    def sf(self) -> RemoteEmulator:
        """The Salesforce emulator's Python API, called in the child."""
        return RemoteEmulator(self, "sf")

    @property
    def sc(self) -> RemoteEmulator:
        return RemoteEmulator(self, "sc")

    @property
    def sc_base_url(self) -> str:
        return self.endpoints["sc_url"]

    def advance(self, **delta: float) -> None:
        self.clock_offset += timedelta(**delta)
        self._ask(op="clock", offset=self.clock_offset.total_seconds())

    def seed_sc_tasks(self, count: int) -> int:
        return self._ask(op="seed_sc", count=count)

    def sf_calls(self) -> int:
        return self._ask(op="sf_calls")

    def sc_calls(self) -> int:
        """Requests the Sales Connect emulator served (its request log)."""
        return self._ask(op="sc_calls")


@contextlib.asynccontextmanager
async def remote_rig(*, tls: bool = False) -> AsyncIterator[RemoteRig]:
    """As `bench.common.rig`, with the emulators in a child process. With `tls`, Salesforce is
    served over TLS and the engine's httpx clients trust its certificate (SSL_CERT_FILE)."""
    base = Path(tempfile.mkdtemp(prefix="reminder-sync-bench-"))
    command = [sys.executable, "-m", "bench.emulator_process"]
    if tls:
        command += ["--tls-dir", str(base / "tls")]
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    old_cert_env = os.environ.get("SSL_CERT_FILE")
    try:
        assert child.stdout is not None
        hello = json.loads(child.stdout.readline())
        endpoints = {key: hello[key] for key in CONNECT_KEYS}
        certfile = hello.get("certfile")
        if certfile is not None:
            os.environ["SSL_CERT_FILE"] = certfile
        home = base / "home"
        secrets = await connect_home(home, **endpoints)
        the_rig = RemoteRig(child, home, secrets, endpoints=endpoints, certfile=certfile)
        try:
            yield the_rig
        finally:
            await the_rig.close_all()
            with contextlib.suppress(Exception):
                the_rig._ask(op="stop")
    finally:
        if old_cert_env is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert_env
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
        if child.poll() is None:
            child.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    _serve(sys.argv[2] if sys.argv[1:2] == ["--tls-dir"] else None)
