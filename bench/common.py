"""Shared parts of the benchmarks: both emulators on loopback, a connected state home, tables.

Every benchmark runs the real pieces: the emulators are real HTTP servers on 127.0.0.1 (uvicorn
via `emulators.server.serve_in_thread`), the engine talks to them over sockets with its own
connectors, and Salesforce API calls are counted by the emulator's own daily API counter (the
number it reports in `Sforce-Limit-Info`), never by the client under test.

The emulators run on threads of the benchmark's own process, so their CPU time shares the GIL
with the client being measured: wall times are pessimistic for every client alike.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emulators.salesconnect import SalesConnectConfig
from emulators.salesconnect import create_app as create_sc_app
from emulators.salesforce import SalesforceEmulatorConfig
from emulators.salesforce import create_app as create_sf_app
from emulators.server import RunningServer, TlsCertificate, self_signed_certificate, serve_in_thread

# Large enough that no benchmark (the naive client makes one call per record) hits the limit.
BENCH_DAILY_API_LIMIT = 10_000_000
SF_QUERY_PAGE = 2000  # records per query page (the org's default batch size)
SF_COLLECTION = 200  # records per sObject Collections call
SC_API_PATH = "/api/v1"


# ----------------------------------------------------------------------------- the bound


def sf_lower_bound(*, read: int, written: int) -> int:
    """The fewest SF data API calls that can move these records: one query page per 2,000
    records read (at least one page, to learn that nothing changed) plus one collection call per
    200 records written. Metadata calls (user id, picklists, deleted records) are the "+ 6"
    allowance of the target, not part of the bound."""
    return max(1, math.ceil(read / SF_QUERY_PAGE)) + math.ceil(written / SF_COLLECTION)


def sf_allowed(bound: int) -> float:
    """Target 1: at most 1.05 x the bound + 6."""
    return 1.05 * bound + 6


# ----------------------------------------------------------------------------- the rig


class EngineHost:
    """Engines over one connected state home, on the benchmark's shifted clock (a rig's
    `home`, `secrets`, `engines` and `clock_offset`)."""

    home: Path
    secrets: Any
    engines: list[Any]
    clock_offset: timedelta

    def now(self) -> datetime:
        """One clock for both emulators and every engine built here."""
        return datetime.now(UTC) + self.clock_offset

    def build_engine(self, **kwargs: Any) -> Any:
        from sync.engine import build_engine

        kwargs.setdefault("clock", self.now)
        engine = build_engine(self.home, self.secrets, **kwargs)
        self.engines.append(engine)
        return engine

    async def close_engine(self, engine: Any) -> None:
        await engine.aclose()
        if engine in self.engines:
            self.engines.remove(engine)

    async def close_all(self) -> None:
        """Close every engine still open (at the end of a rig; a failure here hides nothing)."""
        for engine in list(self.engines):
            with contextlib.suppress(Exception):
                await engine.aclose()


@dataclass
class Rig(EngineHost):
    """Both emulators served on loopback plus a state home already connected to both."""

    sf_server: RunningServer
    sc_server: RunningServer
    sf_app: Any
    sc_app: Any
    home: Path
    secrets: Any
    cert: TlsCertificate | None = None
    engines: list[Any] = field(default_factory=list)
    clock_offset: timedelta = timedelta()

    def advance(self, **delta: float) -> None:
        """Let time pass (e.g. hours=1) for both emulators and the engines alike."""
        self.clock_offset += timedelta(**delta)
        self.sf.set_clock_offset(self.clock_offset.total_seconds())
        self.sc.set_clock_offset(self.clock_offset.total_seconds())

    @property
    def sf(self) -> Any:
        """The Salesforce emulator's Python API (seeding, inspection, its API counter)."""
        return self.sf_app.state.emulator

    @property
    def sc(self) -> Any:
        return self.sc_app.state.emulator

    @property
    def sc_base_url(self) -> str:
        return self.sc_server.base_url + SC_API_PATH

    def sf_calls(self) -> int:
        """Data API calls counted by the emulator (the figure of Sforce-Limit-Info)."""
        return self.sf.api_usage()[0]

    def sc_calls(self) -> int:
        """Requests the Sales Connect emulator served (its request log)."""
        return len(self.sc.requests)

    def cpu(self) -> CpuSnapshot:
        """CPU seconds so far of the engine (this process but the emulators' server threads:
        the engine saves and plans on worker threads) and of each emulator's server thread."""
        sf, sc = thread_cpu(self.sf_server), thread_cpu(self.sc_server)
        return CpuSnapshot(time.process_time() - sf - sc, sf, sc)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds of the engine (every thread but the emulators') and of the emulators."""

    engine: float
    sf: float
    sc: float

    def __sub__(self, other: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(self.engine - other.engine, self.sf - other.sf, self.sc - other.sc)


def thread_cpu(server: RunningServer) -> float:
    """CPU seconds used by a server's thread (Linux per-thread clock)."""
    thread = server._thread  # the uvicorn thread serve_in_thread started
    if thread.ident is None or not thread.is_alive():
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def load_average() -> str:
    """The 1-minute load average: the machine is shared, so every table says how busy it was."""
    with contextlib.suppress(OSError):
        return f"{os.getloadavg()[0]:.1f}"
    return "?"


@contextlib.contextmanager
def served_emulators(*, tls: bool = False, workdir: Path) -> Iterator[tuple[Any, ...]]:
    """Start both emulators; Salesforce over TLS when `tls` (for clients that insist on it)."""
    sf_app = create_sf_app(SalesforceEmulatorConfig(daily_api_limit=BENCH_DAILY_API_LIMIT))
    sc_app = create_sc_app(SalesConnectConfig())
    cert = self_signed_certificate(workdir / "tls") if tls else None
    with (
        serve_in_thread(sf_app, tls=cert) as sf_server,
        serve_in_thread(sc_app) as sc_server,
    ):
        yield sf_app, sc_app, sf_server, sc_server, cert


CONNECT_KEYS = ("sf_url", "sf_client_id", "sf_secret", "sc_url", "sc_client_id", "sc_secret")


async def connect_home(
    home: Path,
    *,
    sf_url: str,
    sf_client_id: str,
    sf_secret: str,
    sc_url: str,
    sc_client_id: str,
    sc_secret: str,
) -> Any:
    """`connect salesforce` (client credentials) and `connect salesconnect` for `home`, with
    the secrets in memory; returns that secret store."""
    from sync.connections import connect_salesconnect, connect_salesforce
    from sync.secrets import MemoryStore

    secrets = MemoryStore()
    await connect_salesforce(
        secrets,
        login_url=sf_url,
        client_id=sf_client_id,
        auth="client-credentials",
        secret=sf_secret,
        home=home,
        announce=lambda _message: None,
    )
    await connect_salesconnect(
        secrets,
        base_url=sc_url,
        client_id=sc_client_id,
        token_url=None,
        secret=sc_secret,
        home=home,
    )
    return secrets


@contextlib.asynccontextmanager
async def rig(*, tls: bool = False, workdir: Path | None = None) -> AsyncIterator[Rig]:
    """Emulators up, a fresh state home connected to both (client credentials), secrets in
    memory. With `tls`, the engine's httpx clients trust the emulator's certificate through
    SSL_CERT_FILE, the standard variable httpx honours."""

    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="reminder-sync-bench-")) if own_dir else workdir
    assert base is not None
    old_cert_env = os.environ.get("SSL_CERT_FILE")
    try:
        with served_emulators(tls=tls, workdir=base) as (sf_app, sc_app, sf_srv, sc_srv, cert):
            if cert is not None:
                os.environ["SSL_CERT_FILE"] = cert.certfile
            home = base / "home"
            sf_config = sf_app.state.emulator.config
            sc_config = sc_app.state.emulator.config
            secrets = await connect_home(
                home,
                sf_url=sf_srv.base_url,
                sf_client_id=sf_config.client_id,
                sf_secret=sf_config.client_secret,
                sc_url=sc_srv.base_url + SC_API_PATH,
                sc_client_id=sc_config.client_id,
                sc_secret=sc_config.client_secret,
            )
            the_rig = Rig(sf_srv, sc_srv, sf_app, sc_app, home, secrets, cert)
            try:
                yield the_rig
            finally:
                await the_rig.close_all()
    finally:
        if old_cert_env is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert_env
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- seeding

SUBJECTS = (
    "Call {n} about the renewal",
    "Send proposal #{n}",
    "Follow up on demo {n}",
    "Prep QBR deck {n}",
    "Confirm PO number {n}",
)


def task_fields(n: int) -> dict[str, Any]:
    """Canonical-ish values for task number `n`: varied, all mapped on both sides."""
    return {
        "name": SUBJECTS[n % len(SUBJECTS)].format(n=n),
        "complete": n % 7 == 0,
        "high": n % 5 == 0,
        "due": (datetime(2026, 12, 1) + timedelta(days=n % 60)).date().isoformat(),
        "details": "" if n % 3 else f"Notes for task {n}: ask about budget timing.",
    }


def seed_sf_tasks(sf: Any, count: int, *, start: int = 0, age: timedelta | None = None) -> list:
    """`count` Salesforce tasks owned by the connected user, touched `age` ago (default: one
    hour, inside the first-sync window); returns their ids. Uses the emulator's seeding API."""
    when = sf.now() - (age if age is not None else timedelta(hours=1))
    ids = []
    for n in range(start, start + count):
        f = task_fields(n)
        record = sf.add_task(
            created_at=when,
            Subject=f["name"],
            Status="Completed" if f["complete"] else "Not Started",
            Priority="High" if f["high"] else "Normal",
            ActivityDate=f["due"],
            Description=f["details"] or None,
        )
        ids.append(record["Id"])
    return ids


def seed_sc_tasks(sc: Any, count: int, *, start: int = 0) -> list[str]:
    """`count` Sales Connect tasks of the connected user, created now; returns their ids."""
    ids = []
    for n in range(start, start + count):
        f = task_fields(n)
        task = sc.add_task(
            name=f["name"],
            status="complete" if f["complete"] else "open",
            priority="high" if f["high"] else "normal",
            due_date=f["due"],
            details=f["details"],
        )
        ids.append(task["id"])
    return ids


# ----------------------------------------------------------------------------- measuring


class Stopwatch:
    """`with Stopwatch() as sw: ...; sw.seconds`"""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


@contextlib.contextmanager
def counting_saves(store: Any) -> Iterator[list[float]]:
    """Record the duration of every state save that writes the file (a clean save is free)."""
    durations: list[float] = []
    original = store.save

    def timed_save() -> bool:
        start = time.perf_counter()
        wrote = original()
        if wrote:
            durations.append(time.perf_counter() - start)
        return wrote

    store.save = timed_save
    try:
        yield durations
    finally:
        store.save = original


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, min) wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


# ----------------------------------------------------------------------------- output


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a Markdown table: ready to paste into docs/benchmarks.md."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def verdict(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def parser(description: str, default_size: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--size", type=int, default=default_size, help="tasks/links (default %(default)s)"
    )
    return p


def now_utc() -> datetime:
    return datetime.now(UTC)


def header(name: str) -> None:
    print(f"## {name}\n\nmachine: {machine()}\n", flush=True)


def flush() -> None:
    sys.stdout.flush()


# ----------------------------------------------------------------------------- shared scenarios


@dataclass
class Imported:
    """What `import_links` did: the first sync, then one idle "settling" run."""

    links: int
    seconds: float
    saves: list[float]
    settle_sf_calls: int
    settle_seconds: float


async def import_links(the_rig: Rig, size: int) -> Imported:
    """Make `size` links the way a user does: enable sync, then `size` new Sales Connect tasks
    are pushed to Salesforce by the first run. A second, idle run follows, so the state is the
    steady state of a user who syncs regularly (that run reads back what the first one wrote)."""
    engine = the_rig.build_engine()
    try:
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)  # the tasks are made strictly after enabling (rule 3)
        seed_sc_tasks(the_rig.sc, size)
        with counting_saves(engine.store) as saves, Stopwatch() as first:
            summary = await engine.run_once()
        if summary.outcome != "done":
            raise RuntimeError(f"first sync did not finish: {summary.outcome} {summary.message}")
        before = the_rig.sf_calls()
        with Stopwatch() as settle:
            summary = await engine.run_once()
        if summary.outcome != "done" or summary.writes:
            raise RuntimeError(f"settling run was not idle: {summary.outcome} {summary.writes}")
        links = len(engine.store.links())
        return Imported(links, first.seconds, saves, the_rig.sf_calls() - before, settle.seconds)
    finally:
        await the_rig.close_engine(engine)


def edit_both_sides(
    the_rig: Rig, links: Sequence[Any], count: int, tag: str = ""
) -> dict[str, dict]:
    """Edit `count` linked tasks, half in Sales Connect and half in Salesforce (as the rep would
    in each app); returns what each side must show afterwards: {"sc": {id: name}, "sf": {...}}."""
    expect: dict[str, dict] = {"sc": {}, "sf": {}}
    step = max(1, len(links) // max(1, count))
    chosen = list(links)[::step][:count]
    for index, link in enumerate(chosen):
        if index % 2 == 0:
            name = f"Edited in Sales Connect #{index}{tag}"
            the_rig.sc.update(link.sc_id, None, {"name": name})
            expect["sf"][link.sf_id] = name
        else:
            name = f"Edited in Salesforce #{index}{tag}"
            the_rig.sf.update_task(link.sf_id, Subject=name)
            expect["sc"][link.sc_id] = name
    return expect


def edits_arrived(the_rig: Rig, expect: dict[str, dict]) -> bool:
    sf_ok = all((the_rig.sf.task(i) or {}).get("Subject") == n for i, n in expect["sf"].items())
    sc_ok = all(the_rig.sc.get(i)["name"] == n for i, n in expect["sc"].items())
    return sf_ok and sc_ok
