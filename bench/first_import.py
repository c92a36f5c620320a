"""Target 1, first import: N Salesforce tasks into Sales Connect, and N new Sales Connect tasks
into Salesforce, each by one first sync. SF API calls (the emulator's own counter) against the
lower bound; wall time of the run.

    .venv/bin/python -m bench.first_import            # 10,000 each way
    .venv/bin/python -m bench.first_import --size 200
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.common import (
    CpuSnapshot,
    Rig,
    Stopwatch,
    counting_saves,
    header,
    load_average,
    parser,
    print_table,
    rig,
    seed_sc_tasks,
    seed_sf_tasks,
    sf_allowed,
    sf_lower_bound,
    verdict,
)

WALL_TARGET = 20.0


@dataclass
class ImportResult:
    direction: str
    tasks: int
    sf_calls: int
    bound: int
    sc_calls: int
    seconds: float
    saves: int
    save_seconds: float
    linked: int
    arrived: int
    cpu: CpuSnapshot

    @property
    def allowed(self) -> float:
        return sf_allowed(self.bound)

    @property
    def calls_ok(self) -> bool:
        return self.sf_calls <= self.allowed

    @property
    def complete(self) -> bool:
        return self.linked == self.tasks and self.arrived == self.tasks


async def _run_first_sync(the_rig: Rig, engine: Any) -> tuple[Any, ...]:
    sf_before, sc_before, cpu_before = the_rig.sf_calls(), the_rig.sc_calls(), the_rig.cpu()
    with counting_saves(engine.store) as saves, Stopwatch() as watch:
        summary = await engine.run_once()
    sf_calls = the_rig.sf_calls() - sf_before
    sc_calls = the_rig.sc_calls() - sc_before
    return summary, sf_calls, sc_calls, watch.seconds, saves, the_rig.cpu() - cpu_before


async def sf_to_sc(size: int) -> ImportResult:
    async with rig() as the_rig:
        seed_sf_tasks(the_rig.sf, size)
        engine = the_rig.build_engine()
        await engine.set_enabled(True, start=False)
        summary, sf_calls, sc_calls, seconds, saves, cpu = await _run_first_sync(the_rig, engine)
        assert summary.outcome == "done", summary.message
        arrived = len(the_rig.sc.tasks())
        return ImportResult(
            "Salesforce -> Sales Connect",
            size,
            sf_calls,
            # reads every SF task; writes none to SF
            sf_lower_bound(read=size, written=0),
            sc_calls,
            seconds,
            len(saves),
            sum(saves),
            len(engine.store.links()),
            arrived,
            cpu,
        )


async def sc_to_sf(size: int) -> ImportResult:
    async with rig() as the_rig:
        engine = the_rig.build_engine()
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)  # the tasks are made strictly after enabling (rule 3)
        seed_sc_tasks(the_rig.sc, size)
        summary, sf_calls, sc_calls, seconds, saves, cpu = await _run_first_sync(the_rig, engine)
        assert summary.outcome == "done", summary.message
        arrived = len(the_rig.sf.tasks())
        return ImportResult(
            "Sales Connect -> Salesforce",
            size,
            sf_calls,
            # one (empty) page to learn SF has nothing new, one collection per 200 creates
            sf_lower_bound(read=0, written=size),
            sc_calls,
            seconds,
            len(saves),
            sum(saves),
            len(engine.store.links()),
            arrived,
            cpu,
        )


def report(results: list[ImportResult]) -> str:
    rows = [
        (
            r.direction,
            r.tasks,
            r.sf_calls,
            r.bound,
            f"{r.allowed:.1f}",
            f"{r.sf_calls / r.bound:.2f}x",
            r.sc_calls,
            r.seconds,
            f"{r.cpu.engine:.2f} / {r.cpu.sf:.2f} / {r.cpu.sc:.2f}",
            f"{r.saves} ({r.save_seconds:.2f} s)",
            f"{r.linked}/{r.arrived}",
            verdict(r.calls_ok and r.seconds < WALL_TARGET and r.complete),
        )
        for r in results
    ]
    return print_table(
        "First import (target: SF calls <= 1.05 x bound + 6, wall < 20 s); "
        f"load average {load_average()}",
        (
            "direction",
            "tasks",
            "SF calls",
            "bound",
            "allowed",
            "calls/bound",
            "SC calls",
            "wall s",
            "CPU s engine/SF/SC",
            "state saves (wall)",
            "linked/arrived",
            "target",
        ),
        rows,
    )


async def main(size: int) -> list[ImportResult]:
    header(f"First import, {size:,} tasks each way")
    results = [await sf_to_sc(size), await sc_to_sf(size)]
    report(results)
    return results


if __name__ == "__main__":
    args = parser(__doc__.splitlines()[0], 10_000).parse_args()
    asyncio.run(main(args.size))
