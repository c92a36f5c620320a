"""Target 3, against a naive client: the same N creates and a 10-edit incremental pass, done by
reminder-sync and by a script as a user would write it with simple-salesforce (one call per
record), side by side in one run. Ratios of SF API calls (the emulator's own counter) and of
wall time.

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
    first_run_seconds: float | None = None  # reminder-sync's creates: the run that made them


def measure(the_rig: Rig | RemoteRig, client: str, step: str, action: Any) -> tuple[Measured, Any]:
    sf_before, sc_before = the_rig.sf_calls(), the_rig.sc_calls()
    with Stopwatch() as watch:
        result = action()
    measured = Measured(
        client,
        step,
        the_rig.sf_calls() - sf_before,
        the_rig.sc_calls() - sc_before,
        watch.seconds,
        True,
    )
    return measured, result


async def run_naive(
    size: int, per_record_reads: bool, servers: str = "thread", latency_ms: float = 0
) -> list[Measured]:
    label = "naive script" + (" (per-record reads)" if per_record_reads else " (SOQL reads)")
    async with serve(servers) as the_rig:
        engine = the_rig.build_engine()  # only to switch sync on in SC, as the app would
        await engine.set_enabled(True, start=False)
        await the_rig.close_engine(engine)
        time.sleep(0.01)
        seed(the_rig, size)
        script = naive_script(the_rig)
        add_latency(the_rig, latency_ms)
        creates, _ = measure(the_rig, label, f"{size:,} creates", script.push_new_tasks)
        creates.ok = len(the_rig.sf.tasks()) == size
        the_rig.advance(hours=1)
        links = [_Link(sc, sf) for sc, sf in script.links.items()]
        expect = edit_both_sides(the_rig, links, EDITS)
        edits, writes = measure(
            the_rig,
            label,
            f"{EDITS} edits",
            lambda: script.sync_edits(per_record_reads=per_record_reads),
        )
        edits.ok = writes == EDITS and edits_arrived(the_rig, expect)
        script.sf.session.close()
        script.sc.close()
        return [creates, edits]


@dataclass(frozen=True)
class _Link:
    sc_id: str
    sf_id: str


async def run_engine(size: int, servers: str = "thread", latency_ms: float = 0) -> list[Measured]:
    label = "reminder-sync"
    async with serve(servers) as the_rig:
        engine = the_rig.build_engine()
        await engine.set_enabled(True, start=False)
        time.sleep(0.01)
        seed(the_rig, size)
        add_latency(the_rig, latency_ms)
        sf_before, sc_before = the_rig.sf_calls(), the_rig.sc_calls()
        with Stopwatch() as watch:
            with Stopwatch() as first_watch:
                first = await engine.run_once()
            # The next run reads back what the first one wrote; it belongs to the creates' cost.
            settle = await engine.run_once()
        creates = Measured(
            label,
            f"{size:,} creates (+ next idle run)",
            the_rig.sf_calls() - sf_before,
            the_rig.sc_calls() - sc_before,
            watch.seconds,
            first.outcome == "done" and settle.writes == 0 and len(the_rig.sf.tasks()) == size,
            first_run_seconds=first_watch.seconds,
        )
        # Steady state, as in bench.incremental: an hour later, after one earlier round of
        # edits (so the Salesforce watermark no longer sits at the import).
        the_rig.advance(hours=1)
        links = list(engine.store.links().values())
        edit_both_sides(the_rig, links, EDITS, " (earlier round)")
        await engine.run_once()
        the_rig.advance(minutes=5)
        expect = edit_both_sides(the_rig, links, EDITS)
        sf_before, sc_before = the_rig.sf_calls(), the_rig.sc_calls()
        with Stopwatch() as watch:
            summary = await engine.run_once()
        edits = Measured(
            label,
            f"{EDITS} edits",
            the_rig.sf_calls() - sf_before,
            the_rig.sc_calls() - sc_before,
            watch.seconds,
            summary.writes == EDITS and edits_arrived(the_rig, expect),
        )
        return [creates, edits]


def _ratio(naive: float, ours: float) -> str:
    return f"{naive / ours:.1f}x" if ours else "inf"


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
    results: dict[str, list[Measured]] = {key: [] for key in keys}
    for _ in range(rounds):
        results["engine"] += await run_engine(size, servers, latency_ms)
        results["naive"] += await run_naive(size, True, servers, latency_ms)
        if smarter:
            results["soql"] += await run_naive(size, False, servers, latency_ms)
    steps = len(results["engine"]) // rounds  # measurements per round
    rows = []
    for round_index in range(rounds):
        for key in keys:
            for m in results[key][round_index * steps : (round_index + 1) * steps]:
                rows.append(
                    (round_index + 1, m.client, m.step, m.sf_calls, m.sc_calls, m.seconds, m.ok)
                )
    print_table(
        f"Side by side, {where} (load average {load_average()})",
        ("round", "client", "step", "SF calls", "SC calls", "wall s", "result correct"),
        rows,
    )
    ratio_rows = []
    for key, name in (("naive", "per-record reads"), ("soql", "SOQL reads")):
        if key not in results:
            continue
        for step in range(steps):
            pairs = list(
                zip(results["engine"][step::steps], results[key][step::steps], strict=True)
            )
            call_ratio = statistics.median(t.sf_calls / max(1, o.sf_calls) for o, t in pairs)
            time_ratios = [t.seconds / o.seconds if o.seconds else float("inf") for o, t in pairs]
            time_ratio = statistics.median(time_ratios)
            ratio_rows.append(
                (
                    f"naive ({name})",
                    pairs[0][1].step,
                    f"{call_ratio:.1f}x",
                    ", ".join(f"{r:.1f}x" for r in time_ratios),
                    f"{time_ratio:.1f}x",
                    "(reference)"
                    if key != "naive"
                    else "(context: with latency)"
                    if latency_ms > 0
                    else verdict(
                        call_ratio >= CALL_RATIO_TARGET and time_ratio >= TIME_RATIO_TARGET
                    ),
                )
            )
            first_runs = [(o.first_run_seconds, t.seconds) for o, t in pairs]
            if key == "naive" and all(ours for ours, _ in first_runs):
                # Context only: the verdict counts the read-back in the next run as well.
                ratios = [naive / ours for ours, naive in first_runs if ours]
                ratio_rows.append(
                    (
                        f"naive ({name})",
                        f"{pairs[0][1].step}, reminder-sync's first run alone",
                        "-",
                        ", ".join(f"{r:.1f}x" for r in ratios),
                        f"{statistics.median(ratios):.1f}x",
                        "(context)",
                    )
                )
    print_table(
        f"Ratios, naive / reminder-sync (target: >= {CALL_RATIO_TARGET}x fewer SF calls, "
        f">= {TIME_RATIO_TARGET}x faster; the median of {rounds} round(s))",
        ("against", "step", "SF calls ratio", "wall time ratio, each round", "median", "target"),
        ratio_rows,
    )
    return results


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
