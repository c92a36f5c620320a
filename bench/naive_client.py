"""Target 3, against a naive client: the same N creates and a 10-edit incremental pass, done by
reminder-sync and by a script as a user would write it with simple-salesforce (one call per
record), side by side in one run. Ratios of SF API calls (the emulator's own counter) and of
wall time.

The sequence is the issue's: the creates, then the 10-edit pass, and every run reminder-sync
makes is measured and counted once. Its run after the import also reads the created tasks
back (Salesforce gives them a new SystemModstamp, and the next change query returns them), so
that cost falls in the edit pass, as it does for a user. The verdict takes the creates, the
edit pass and both together. Two context rows follow: the steady-state edit pass (a run 5
minutes later, target 2's case), and the creates charged with the next run as well, which is
how sessions 6-8 counted them.

Both clients get the same Salesforce emulator over TLS (simple-salesforce only builds https://
URLs; the engine trusts the same self-signed certificate), each its own fresh pair of emulators.

Where the emulators run (`--servers`): on threads of this process (`thread`, the default, as
`bench.common.rig`), so their CPU shares the GIL with the client under test; or in a child
process (`process`, `bench.emulator_process.remote_rig`), as real services would be. Both
clients face the same setup in one run.

    .venv/bin/python -m bench.naive_client               # 10,000 tasks
    .venv/bin/python -m bench.naive_client --size 200
    .venv/bin/python -m bench.naive_client --servers process
    .venv/bin/python -m bench.naive_client --servers process --no-soql --rounds 3
    .venv/bin/python -m bench.naive_client --size 2000 --latency-ms 25 --no-soql

`--latency-ms N` makes both emulators wait N ms before every data call (their own fault
switches: Salesforce's `hang`, Sales Connect's `slow`), as a round trip to a real service
would: context for the loopback figures, which stay the target's measure (no verdict is given
with a latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from simple_salesforce import Salesforce

from bench.common import (
    SC_API_PATH,
    Rig,
    Stopwatch,
    edit_both_sides,
    edits_arrived,
    header,
    load_average,
    parser,
    print_table,
    rig,
    seed_sc_tasks,
    verdict,
)
from bench.emulator_process import RemoteRig, remote_rig

EDITS = 10
SF_VERSION = "62.0"
CALL_RATIO_TARGET = 50
TIME_RATIO_TARGET = 10
SERVERS = {
    "thread": "emulators on threads of this process",
    "process": "emulators in a child process",
}

# ----------------------------------------------------------------------------- the naive script
# What a rep's "quick script" looks like: list Sales Connect, then one Salesforce call per task.

STATUS_TO_SF = {"open": "Not Started", "complete": "Completed"}
STATUS_TO_SC = {v: k for k, v in STATUS_TO_SF.items()}
PRIORITY_TO_SF = {"normal": "Normal", "high": "High"}
PRIORITY_TO_SC = {v: k for k, v in PRIORITY_TO_SF.items()}


def sc_to_sf(task: dict) -> dict:
    return {
        "Subject": task["name"][:255],
        "Status": STATUS_TO_SF[task["status"]],
        "Priority": PRIORITY_TO_SF[task["priority"]],
        "ActivityDate": task["due_date"],
        "Description": task["details"] or None,
    }


def sc_fields(task: dict) -> tuple:
    return (task["name"], task["status"], task["priority"], task["due_date"], task["details"] or "")


def sf_fields(record: dict) -> tuple:
    return (
        record["Subject"],
        STATUS_TO_SC.get(record["Status"], "open"),
        PRIORITY_TO_SC.get(record["Priority"], "normal"),
        record["ActivityDate"],
        record["Description"] or "",
    )


@dataclass
class NaiveScript:
    sf: Salesforce
    sc: requests.Session
    sc_base: str
    state_file: Path
    links: dict[str, str] = field(default_factory=dict)  # SC id -> SF id
    base: dict[str, tuple] = field(default_factory=dict)  # SC id -> fields as last synced

    def sc_tasks(self) -> Iterator[dict]:
        params: dict[str, Any] = {"limit": 200}
        while True:
            response = self.sc.get(self.sc_base + "/tasks", params=params)
            response.raise_for_status()
            body = response.json()
            yield from body["tasks"]
            if not body["next_cursor"]:
                return
            params["cursor"] = body["next_cursor"]

    def save(self) -> None:
        self.state_file.write_text(json.dumps({"links": self.links, "base": self.base}))

    def push_new_tasks(self) -> None:
        for task in self.sc_tasks():
            if task["id"] in self.links:
                continue
            created = self.sf.Task.create(sc_to_sf(task))
            self.links[task["id"]] = created["id"]
            self.base[task["id"]] = sc_fields(task)
        self.save()

    def sync_edits(self, *, per_record_reads: bool) -> int:
        """Copy changed fields either way; returns the number of writes. Salesforce is read one
        record at a time (`per_record_reads`) or, as a more careful script would, by one SOQL
        query over the user's tasks."""
        if per_record_reads:
            sf_now = {sf_id: self.sf.Task.get(sf_id) for sf_id in self.links.values()}
        else:
            soql = (
                "SELECT Id, Subject, Status, Priority, ActivityDate, Description FROM Task "
                "WHERE IsDeleted = false"
            )
            sf_now = {r["Id"]: r for r in self.sf.query_all(soql)["records"]}
        writes = 0
        for task in self.sc_tasks():
            sc_id = task["id"]
            sf_id = self.links.get(sc_id)
            if sf_id is None or sf_id not in sf_now:
                continue
            base, on_sc, on_sf = self.base[sc_id], sc_fields(task), sf_fields(sf_now[sf_id])
            if on_sc != base:
                self.sf.Task.update(sf_id, sc_to_sf(task))
                self.base[sc_id] = on_sc
                writes += 1
            elif on_sf != base:
                record = sf_now[sf_id]
                body = {
                    "name": record["Subject"],
                    "status": on_sf[1],
                    "priority": on_sf[2],
                    "due_date": record["ActivityDate"],
                    "details": record["Description"] or "",
                }
                response = self.sc.patch(
                    f"{self.sc_base}/tasks/{sc_id}",
                    json=body,
                    headers={"If-Match": str(task["version"])},
                )
                response.raise_for_status()
                self.base[sc_id] = on_sf
                writes += 1
        self.save()
        return writes


def _endpoints(the_rig: Rig | RemoteRig) -> tuple[dict[str, str], str]:
    """The emulators' URLs and credentials (as `bench.common.connect_home` takes them) and the
    certificate Salesforce is served with, wherever the emulators run."""
    if isinstance(the_rig, RemoteRig):
        assert the_rig.certfile is not None
        return the_rig.endpoints, the_rig.certfile
    assert the_rig.cert is not None
    sf_config, sc_config = the_rig.sf.config, the_rig.sc.config
    endpoints = {
        "sf_url": the_rig.sf_server.base_url,
        "sf_client_id": sf_config.client_id,
        "sf_secret": sf_config.client_secret,
        "sc_url": the_rig.sc_base_url,
        "sc_client_id": sc_config.client_id,
        "sc_secret": sc_config.client_secret,
    }
    return endpoints, the_rig.cert.certfile


def naive_script(the_rig: Rig | RemoteRig) -> NaiveScript:
    """simple-salesforce and requests, logged in as a user would (client credentials)."""
    endpoints, certfile = _endpoints(the_rig)
    sf_session = requests.Session()
    sf_session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment beats .verify
    sf_session.verify = certfile
    token = sf_session.post(
        endpoints["sf_url"] + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": endpoints["sf_client_id"],
            "client_secret": endpoints["sf_secret"],
        },
    ).json()
    sf = Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        version=SF_VERSION,
        session=sf_session,
    )
    sc_session = requests.Session()
    sc_session.trust_env = False
    sc_token = sc_session.post(
        endpoints["sc_url"] + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": endpoints["sc_client_id"],
            "client_secret": endpoints["sc_secret"],
        },
    ).json()["access_token"]
    sc_session.headers["Authorization"] = f"Bearer {sc_token}"
    return NaiveScript(sf, sc_session, endpoints["sc_url"], the_rig.home.parent / "naive.json")


@contextlib.asynccontextmanager
async def serve(servers: str) -> AsyncIterator[Rig | RemoteRig]:
    """A fresh pair of emulators (Salesforce over TLS) and a state home connected to both."""
    if servers == "thread":
        async with rig(tls=True) as the_rig:
            yield the_rig
    elif servers == "process":
        async with remote_rig(tls=True) as remote:
            yield remote
    else:
        raise ValueError(f"servers: {servers!r} (thread or process)")


def add_latency(the_rig: Rig | RemoteRig, milliseconds: float) -> None:
    """Every data call to either emulator waits `milliseconds` first, from now on (a service's
    round trip; token calls and the emulators' test namespace are left alone)."""
    if milliseconds <= 0:
        return
    endpoints, certfile = _endpoints(the_rig)
    seconds = milliseconds / 1000
    sf = {"kinds": ["hang"], "hang_seconds": seconds, "path_contains": "/services/data/"}
    sc = {"rules": [{"fault": "slow", "delay_seconds": seconds, "times": None}]}
    sc_root = endpoints["sc_url"].removesuffix(SC_API_PATH)
    with requests.Session() as session:
        session.trust_env = False
        for url, body, verify in (
            (endpoints["sf_url"], sf, certfile),
            (sc_root, sc, True),
        ):
            session.post(url + "/__emulator__/faults", json=body, verify=verify).raise_for_status()


def seed(the_rig: Rig | RemoteRig, size: int) -> None:
    """`size` new Sales Connect tasks, made by the emulator's seeding API where it runs."""
    if isinstance(the_rig, RemoteRig):
        the_rig.seed_sc_tasks(size)
    else:
        seed_sc_tasks(the_rig.sc, size)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    client: str
    step: str
    sf_calls: int
    sc_calls: int
    seconds: float
    ok: bool


@dataclass(frozen=True)
class Comparison:
    """One ratio row: the sum of reminder-sync's measured runs `ours` (indexes into what
    `run_engine` returns) against the naive script's steps `theirs` (`run_naive`)."""

    label: str  # formatted with size= and edits=
    ours: tuple[int, ...]
    theirs: tuple[int, ...]
    judged: bool  # part of the verdict, or context


# The sequence: the creates, then the 10-edit pass. Every run reminder-sync makes is
# counted once: the run after the import also reads the created tasks back (their
# SystemModstamp is new), so that cost is in the edit pass, where it falls for a user.
COMPARISONS = (
    Comparison("{size:,} creates", (0,), (0,), judged=True),
    Comparison("{edits} edits (reminder-sync: the run after the import)", (1,), (1,), judged=True),
    Comparison("both steps together", (0, 1), (0, 1), judged=True),
    Comparison("{edits} edits, steady state (target 2's run)", (2,), (1,), judged=False),
    Comparison(
        "{size:,} creates, charged with the next run as well (as sessions 6-8 counted)",
        (0, 1),
        (0,),
        judged=False,
    ),
)


@contextlib.contextmanager
def measuring(the_rig: Rig | RemoteRig, client: str, step: str) -> Iterator[Measured]:
    """The calls each emulator counted and the wall time of the block (`ok` is the caller's)."""
    measured = Measured(client, step, 0, 0, 0.0, True)
    sf_before, sc_before = the_rig.sf_calls(), the_rig.sc_calls()
    with Stopwatch() as watch:
        yield measured
    measured.sf_calls = the_rig.sf_calls() - sf_before
    measured.sc_calls = the_rig.sc_calls() - sc_before
    measured.seconds = watch.seconds


async def run_naive(
    size: int, per_record_reads: bool, servers: str = "thread", latency_ms: float = 0
) -> list[Measured]:
    """The script's two steps: the creates, then (an hour later) the 10-edit pass."""
    label = "naive script" + (" (per-record reads)" if per_record_reads else " (SOQL reads)")
    async with serve(servers) as the_rig:
        engine = the_rig.build_engine()  # only to switch sync on in SC, as the app would
        await engine.set_enabled(True, start=False)
        await the_rig.close_engine(engine)
        time.sleep(0.01)
        seed(the_rig, size)
        script = naive_script(the_rig)
        add_latency(the_rig, latency_ms)
        with measuring(the_rig, label, f"{size:,} creates") as creates:
            script.push_new_tasks()
        creates.ok = len(the_rig.sf.tasks()) == size
        the_rig.advance(hours=1)
        links = [_Link(sc, sf) for sc, sf in script.links.items()]
        expect = edit_both_sides(the_rig, links, EDITS)
        with measuring(the_rig, label, f"{EDITS} edits") as edits:
            writes = script.sync_edits(per_record_reads=per_record_reads)
        edits.ok = writes == EDITS and edits_arrived(the_rig, expect)
        script.sf.session.close()
        script.sc.close()
        return [creates, edits]


@dataclass(frozen=True)
class _Link:
    sc_id: str
    sf_id: str


async def run_engine(size: int, servers: str = "thread", latency_ms: float = 0) -> list[Measured]:
    """reminder-sync's runs, each measured: the run that makes the creates; an hour later, the
    run after 10 edits (it also reads the creates back); 5 minutes later, the run after 10
    more edits, in steady state as in `bench.incremental`."""
    label = "reminder-sync"
    async with serve(servers) as the_rig:
        engine = the_rig.build_engine()
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)
        seed(the_rig, size)
        add_latency(the_rig, latency_ms)

        async def measured_run(step: str) -> tuple[Measured, Any]:
            with measuring(the_rig, label, step) as measured:
                summary = await engine.run_once()
            measured.ok = summary.outcome == "done"
            return measured, summary

        creates, summary = await measured_run(f"{size:,} creates")
        creates.ok &= summary.writes == size and len(the_rig.sf.tasks()) == size
        the_rig.advance(hours=1)
        links = list(engine.store.links().values())
        expect = edit_both_sides(the_rig, links, EDITS)
        after, summary = await measured_run(f"{EDITS} edits, the run after the import")
        after.ok &= summary.writes == EDITS and edits_arrived(the_rig, expect)
        the_rig.advance(minutes=5)
        expect = edit_both_sides(the_rig, links, EDITS, " (steady state)")
        steady, summary = await measured_run(f"{EDITS} edits, steady state")
        steady.ok &= summary.writes == EDITS and edits_arrived(the_rig, expect)
        return [creates, after, steady]


def _total(measured: list[Measured], indexes: tuple[int, ...]) -> tuple[int, float]:
    return (
        sum(measured[i].sf_calls for i in indexes),
        sum(measured[i].seconds for i in indexes),
    )


def ratio_rows(
    ours: list[list[Measured]],
    theirs: list[list[Measured]],
    name: str,
    size: int,
    instead: str | None = None,
) -> tuple[list[tuple], bool]:
    """One row per comparison, over the rounds (each round: one list of measured runs per
    client); the verdict on the median ratios, or `instead` of one (a reference, or a run with
    latency). Returns the rows and whether every judged comparison holds."""
    rows, holds = [], True
    for comparison in COMPARISONS:
        calls, times = [], []
        for our_runs, their_runs in zip(ours, theirs, strict=True):
            our_calls, our_seconds = _total(our_runs, comparison.ours)
            their_calls, their_seconds = _total(their_runs, comparison.theirs)
            calls.append(their_calls / max(1, our_calls))
            times.append(their_seconds / our_seconds if our_seconds else float("inf"))
        call_ratio, time_ratio = statistics.median(calls), statistics.median(times)
        ok = call_ratio >= CALL_RATIO_TARGET and time_ratio >= TIME_RATIO_TARGET
        if not comparison.judged:
            target = "(context)"
        elif instead:
            target = instead
        else:
            target = verdict(ok)
            holds &= ok
        rows.append(
            (
                f"naive ({name})",
                comparison.label.format(size=size, edits=EDITS),
                f"{call_ratio:.1f}x",
                ", ".join(f"{r:.1f}x" for r in times),
                f"{time_ratio:.1f}x",
                target,
            )
        )
    return rows, holds


async def main(
    size: int,
    smarter: bool = True,
    servers: str = "thread",
    rounds: int = 1,
    latency_ms: float = 0,
) -> dict[str, list[Measured]]:
    """`rounds` rounds, each reminder-sync then the naive script(s) on fresh emulators: the
    naive script's time drifts with the machine's load far more than the engine's (20-44 s
    over a day for 10,000 creates), so the verdict is on the median of the rounds' ratios.
    `latency_ms`: every data call waits that long first (context; no verdict then)."""
    where = SERVERS[servers]
    if latency_ms > 0:
        where += f", {latency_ms:g} ms added to every data call"
    header(f"reminder-sync against a naive simple-salesforce script, {size:,} tasks, {where}")
    keys = ("engine", "naive", "soql") if smarter else ("engine", "naive")
    by_round: dict[str, list[list[Measured]]] = {key: [] for key in keys}
    for _ in range(rounds):
        by_round["engine"].append(await run_engine(size, servers, latency_ms))
        by_round["naive"].append(await run_naive(size, True, servers, latency_ms))
        if smarter:
            by_round["soql"].append(await run_naive(size, False, servers, latency_ms))
    rows = [
        (round_index + 1, m.client, m.step, m.sf_calls, m.sc_calls, m.seconds, m.ok)
        for round_index in range(rounds)
        for key in keys
        for m in by_round[key][round_index]
    ]
    print_table(
        f"Side by side, {where} (load average {load_average()})",
        ("round", "client", "step", "SF calls", "SC calls", "wall s", "result correct"),
        rows,
    )
    with_latency = "(context: with latency)" if latency_ms > 0 else None
    ratios, holds = ratio_rows(
        by_round["engine"], by_round["naive"], "per-record reads", size, with_latency
    )
    if smarter:
        ours, theirs = by_round["engine"], by_round["soql"]
        ratios += ratio_rows(ours, theirs, "SOQL reads", size, with_latency or "(reference)")[0]
    print_table(
        f"Ratios, naive / reminder-sync (target: >= {CALL_RATIO_TARGET}x fewer SF calls, "
        f">= {TIME_RATIO_TARGET}x faster; the median of {rounds} round(s))",
        ("against", "step", "SF calls ratio", "wall time ratio, each round", "median", "target"),
        ratios,
    )
    if not with_latency:
        print(f"Target 3, every judged row: {verdict(holds)}\n")
    return {key: [m for runs in by_round[key] for m in runs] for key in keys}


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0], 10_000)
    p.add_argument("--no-soql", action="store_true", help="skip the SOQL-reading script")
    p.add_argument(
        "--servers",
        choices=tuple(SERVERS),
        default="thread",
        help="where the emulators run: threads of this process, or a child process "
        "(default %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of reminder-sync then the naive script; the verdict is on the median "
        "ratio (default %(default)s)",
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="milliseconds every data call to either emulator waits first, as a round trip to "
        "a real service would (context; the target is judged without; default %(default)s)",
    )
    args = p.parse_args()
    asyncio.run(
        main(
            args.size,
            smarter=not args.no_soql,
            servers=args.servers,
            rounds=args.rounds,
            latency_ms=args.latency_ms,
        )
    )
