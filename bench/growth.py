"""Target 4, growth: first-import time, state-save time and a 10-edit run at 1k, 10k and 50k links;
peak RSS of the engine process at each size.

The emulators run in this process; the engine runs in a child process (`--child`), driven over
stdin/stdout one JSON line at a time, so its peak RSS (resource.getrusage) is the app's alone and
its CPU is not shared with the servers'.

    .venv/bin/python -m bench.growth                      # 1,000 10,000 50,000
    .venv/bin/python -m bench.growth --sizes 200 1000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    CONNECT_KEYS,
    Rig,
    connect_home,
    edit_both_sides,
    edits_arrived,
    header,
    load_average,
    print_table,
    rig,
    seed_sc_tasks,
    verdict,
)

EDITS = 10
RSS_TARGET_MB = 300
RSS_TARGET_SIZE = 50_000

# ----------------------------------------------------------------------------- the child


class Child:
    """The engine side: one engine over the state home, commands from stdin."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.setup = setup
        self.offset = timedelta()
        self.engine: Any = None
        self.phases: list[tuple[str, float]] = []

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def open(self) -> dict[str, Any]:
        from sync.engine import build_engine
        from sync.events import SyncProgress

        s = self.setup
        home = Path(s["home"])
        secrets = await connect_home(home, **{key: s[key] for key in CONNECT_KEYS})
        started = time.perf_counter()
        self.engine = build_engine(home, secrets, clock=self.now)
        opened = time.perf_counter() - started

        def on_event(event: Any) -> None:
            if isinstance(event, SyncProgress) and (
                not self.phases or self.phases[-1][0] != event.phase
            ):
                self.phases.append((event.phase, time.perf_counter()))

        self.engine.subscribe(on_event)
        return {"open_seconds": opened}

    async def enable(self) -> dict[str, Any]:
        await self.engine.set_enabled(True, start=False)
        return {}

    async def run(self, offset_seconds: float) -> dict[str, Any]:
        self.offset = timedelta(seconds=offset_seconds)
        store = self.engine.store
        saves: list[float] = []
        original = store.save

        def timed_save() -> bool:
            start = time.perf_counter()
            wrote = original()
            if wrote:
                saves.append(time.perf_counter() - start)
            return wrote

        store.save = timed_save
        self.phases = []
        cpu, started = time.process_time(), time.perf_counter()
        try:
            summary = await self.engine.run_once()
        finally:
            store.save = original
        ended = time.perf_counter()
        marks = [*self.phases, ("end", ended)]
        phases = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
        return {
            "outcome": str(summary.outcome),
            "message": summary.message,
            "writes": summary.writes,
            "seconds": ended - started,
            "cpu": time.process_time() - cpu,
            "saves": saves,
            "phases": phases,
            "links": len(store.links()),
        }

    async def save(self) -> dict[str, Any]:
        """One full save of the state as it is (what every save costs at this size)."""
        store = self.engine.store
        store._storage.mark_dirty()  # force a write of the unchanged state
        cpu, started = time.process_time(), time.perf_counter()
        store.save()
        return {
            "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "bytes": store.path.stat().st_size,
        }

    async def close(self) -> dict[str, Any]:
        import resource

        await self.engine.aclose()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"peak_rss_mb": rss}


async def child_main() -> None:
    child: Child | None = None
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "setup":
            child = Child(command)
            reply = await child.open()
        else:
            assert child is not None
            reply = await getattr(child, name)(**command)
        print(json.dumps(reply), flush=True)
        if name == "close":
            return


# ----------------------------------------------------------------------------- the parent


class EngineProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.growth", "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"engine process ended during {cmd!r} (exit {self.proc.wait()})")
        return json.loads(line)

    def finish(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


@dataclass
class Growth:
    size: int
    import_seconds: float
    import_cpu: float
    import_saves: list[float]
    save_seconds: float
    save_cpu: float
    state_mb: float
    run: dict[str, Any]
    arrived: bool
    peak_rss_mb: float


def _setup(the_rig: Rig) -> dict[str, Any]:
    sf, sc = the_rig.sf.config, the_rig.sc.config
    return {
        "home": str(the_rig.home),
        "sf_url": the_rig.sf_server.base_url,
        "sf_client_id": sf.client_id,
        "sf_secret": sf.client_secret,
        "sc_url": the_rig.sc_base_url,
        "sc_client_id": sc.client_id,
        "sc_secret": sc.client_secret,
    }


async def measure(size: int) -> Growth:
    async with rig() as the_rig:
        engine = EngineProcess()
        try:
            offset = lambda: the_rig.clock_offset.total_seconds()  # noqa: E731
            await asyncio.to_thread(engine.ask, "setup", **_setup(the_rig))
            await asyncio.to_thread(engine.ask, "enable")
            time.sleep(0.01)
            seed_sc_tasks(the_rig.sc, size)
            first = await asyncio.to_thread(engine.ask, "run", offset_seconds=offset())
            if first["outcome"] != "done" or first["links"] != size:
                raise RuntimeError(f"import of {size} failed: {first}")
            the_rig.advance(minutes=5)
            settle = await asyncio.to_thread(engine.ask, "run", offset_seconds=offset())
            assert settle["writes"] == 0, settle
            the_rig.advance(hours=1)
            save = await asyncio.to_thread(engine.ask, "save")
            links = _links(the_rig, size)
            expect = edit_both_sides(the_rig, links, EDITS)
            run = await asyncio.to_thread(engine.ask, "run", offset_seconds=offset())
            closed = await asyncio.to_thread(engine.ask, "close")
        finally:
            engine.finish()
        return Growth(
            size,
            first["seconds"],
            first["cpu"],
            first["saves"],
            save["seconds"],
            save["cpu"],
            save["bytes"] / 1e6,
            run,
            run["writes"] == EDITS and edits_arrived(the_rig, expect),
            closed["peak_rss_mb"],
        )


@dataclass(frozen=True)
class _Link:
    sc_id: str
    sf_id: str


def _links(the_rig: Rig, size: int) -> list[_Link]:
    """The links as the state file holds them (read-only, while the engine process has it)."""
    from sync import paths
    from sync.store import StateStore

    with StateStore.open(paths.state_file(the_rig.home), read_only=True) as store:
        links = [_Link(link.sc_id, link.sf_id) for link in store.links().values()]
    assert len(links) == size
    return links


def _phases(run: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in run["phases"].items())


def report(results: list[Growth]) -> None:
    print_table(
        f"Growth: first import of N new Sales Connect tasks (load average {load_average()})",
        (
            "links",
            "import s",
            "engine CPU s",
            "state saves",
            "all saves s",
            "one save s",
            "state MB",
        ),
        [
            (
                f"{g.size:,}",
                g.import_seconds,
                g.import_cpu,
                len(g.import_saves),
                sum(g.import_saves),
                f"{g.save_seconds:.3f} ({g.save_cpu:.3f})",
                f"{g.state_mb:.1f}",
            )
            for g in results
        ],
    )
    print_table(
        f"Growth: a run with {EDITS} edits among N links, an hour after the import",
        ("links", "run s", "engine CPU s", "state saves", "saves s", "phases s", "edits arrived"),
        [
            (
                f"{g.size:,}",
                g.run["seconds"],
                g.run["cpu"],
                len(g.run["saves"]),
                sum(g.run["saves"]),
                _phases(g.run),
                g.arrived,
            )
            for g in results
        ],
    )
    print_table(
        f"Peak RSS of the engine process (target: < {RSS_TARGET_MB} MB at {RSS_TARGET_SIZE:,})",
        ("links", "peak RSS MB", "target"),
        [
            (
                f"{g.size:,}",
                f"{g.peak_rss_mb:.0f}",
                verdict(g.peak_rss_mb < RSS_TARGET_MB) if g.size >= RSS_TARGET_SIZE else "-",
            )
            for g in results
        ],
    )


async def main(sizes: list[int]) -> list[Growth]:
    header(f"Growth at {', '.join(f'{s:,}' for s in sizes)} links")
    results = []
    for size in sizes:
        results.append(await measure(size))
    report(results)
    for small, big in itertools.pairwise(results):
        factor = big.size / small.size
        print(
            f"{small.size:,} -> {big.size:,} links (x{factor:g}): import x"
            f"{big.import_seconds / small.import_seconds:.1f}, one save x"
            f"{big.save_seconds / small.save_seconds:.1f}, 10-edit run x"
            f"{big.run['seconds'] / small.run['seconds']:.1f}"
        )
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        asyncio.run(child_main())
    else:
        asyncio.run(main(args.sizes))
