"""With both services failing about one request in ten, repeated runs reach the same end state
as a run against healthy services.

The same scenario (tasks made on both sides, synced, then edited, completed, deleted and made
again on the side where each was made) is played twice on reset emulators: once without faults,
once with both emulators injecting faults into ~10% of the requests: 429 with and without
Retry-After, 503 with Salesforce's HTML page, UNABLE_TO_LOCK_ROW, a hanging response, connections
reset before and after the request was handled, and expired tokens. Runs repeat (faults still
on) until one has nothing left to do; then the faults stop and a last run must write nothing.
The two end states, task by task on both sides, must be equal. The engine runs with its real
retry policy (real backoff, real Retry-After).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from sync.events import Outcome

SF_FAULTS = {
    "kinds": ["429", "503_html", "lock", "hang", "reset", "reset_after", "expire_token", "500"],
    "rate": 0.1,
    "seed": 11,
    "retry_after": 1,
    "hang_seconds": 2,
}
SC_FAULTS = {
    "seed": 12,
    "rules": [
        {"fault": "rate_limit", "probability": 0.03, "times": None, "retry_after": 1},
        {"fault": "rate_limit", "probability": 0.02, "times": None, "retry_after": None},
        {"fault": "unavailable", "probability": 0.02, "times": None},
        {"fault": "hang", "probability": 0.01, "times": None, "delay_seconds": 2},
        {"fault": "drop", "probability": 0.01, "times": None},
        {"fault": "drop", "probability": 0.01, "times": None, "phase": "after"},
    ],
}
DAYS = 20  # days of edits after the first sync (each ends with runs until quiet)
SF_NAMES = {
    "name": "Subject",
    "status": "Status",
    "priority": "Priority",
    "due_date": "ActivityDate",
    "details": "Description",
}
SF_VALUES = {"open": "Not Started", "complete": "Completed", "normal": "Normal", "high": "High"}


def to_sf(fields: dict[str, Any]) -> dict[str, Any]:
    return {SF_NAMES[k]: SF_VALUES.get(v, v) if k in ("status", "priority") else v
            for k, v in fields.items()}  # fmt: skip


class Scenario:
    """One user's day, the same every time (seeded)."""

    def __init__(self, sf: Any, sc: Any) -> None:
        self.sf, self.sc = sf, sc
        self.rng = random.Random(5)
        self.ids: dict[str, tuple[str, str]] = {}  # tag -> (side, id)
        self.count = 0

    def create(self, side: str) -> None:
        self.count += 1
        tag = f"f{self.count}"
        fields = {
            "name": f"{tag} call",
            "priority": self.rng.choice(("normal", "high")),
            "due_date": self.rng.choice((None, "2026-12-01")),
        }
        if side == "sc":
            self.ids[tag] = ("sc", self.sc.add_task(**fields)["id"])
        else:
            self.ids[tag] = ("sf", self.sf.add_task(**to_sf(fields))["Id"])

    def first_day(self) -> None:
        for _ in range(8):
            self.create("sc")
            self.create("sf")

    def next_day(self) -> None:
        tags = sorted(self.ids)
        for tag in self.rng.sample(tags, 8):
            side, task_id = self.ids[tag]
            field, value = self.rng.choice(
                [
                    ("name", f"{tag} {self.rng.choice(('email', 'visit'))}"),
                    ("status", "complete"),
                    ("priority", "high"),
                    ("due_date", "2027-01-15"),
                    ("details", "agenda\nprices"),
                ]
            )
            if side == "sc":
                self.sc.update(task_id, None, {field: value})
            else:
                self.sf.update_task(task_id, **to_sf({field: value}))
        for tag in self.rng.sample(tags, 1):
            side, task_id = self.ids.pop(tag)
            (self.sc.delete_task if side == "sc" else self.sf.delete_task)(task_id)
        self.create("sc")
        self.create("sf")


def end_state(sf: Any, sc: Any) -> dict[str, Any]:
    """Both sides, task by task (by tag), as the user sees them."""
    state: dict[str, Any] = {}
    for task in sc.tasks():
        tag = task["name"].split(" ", 1)[0]
        fields = (task["name"], task["status"], task["priority"], task["due_date"])
        state.setdefault(tag, {}).setdefault("sc", []).append((*fields, task["details"] or ""))
    for task in sf.tasks():
        tag = task["Subject"].split(" ", 1)[0]
        fields = (task["Subject"], task["Status"], task["Priority"], task["ActivityDate"])
        state.setdefault(tag, {}).setdefault("sf", []).append((*fields, task["Description"] or ""))
    return state


async def until_idle(engine: Any, tally: dict[str, int], limit: int = 30) -> None:
    for _ in range(limit):
        summary = await engine.run_once()
        tally["runs"] += 1
        tally["failed"] += summary.outcome is Outcome.FAILED
        if (
            summary.outcome in (Outcome.DONE, Outcome.CONFLICTS)
            and summary.writes == 0
            and not engine.store.errors()
        ):
            return
    raise AssertionError(f"no quiet run after {limit} runs: {summary.outcome} {summary.message}")


async def play(world: Any, faults: bool, tally: dict[str, int]) -> dict[str, Any]:
    world.servers.reset()
    world.home = world.home.with_name("faulty" if faults else "clean")  # a fresh state each
    sf = world.servers.sf_app.state.emulator
    sc = world.servers.sc_app.state.emulator
    await world.connect(direct=True)  # resets must reach the engine as resets
    engine = world.make_engine()
    await world.enable(engine)
    scenario = Scenario(sf, sc)

    def faults_on(day: int) -> None:
        if faults:  # a new seed each day, or every day would replay the same draws
            sf.set_fault(**{**SF_FAULTS, "seed": SF_FAULTS["seed"] + day})
            sc.faults.configure({**SC_FAULTS, "seed": SC_FAULTS["seed"] + day})
            sc.expire_tokens()

    def faults_off() -> None:
        if faults:
            tally["injected"] += sf.faults.plan.injected if sf.faults.plan else 0
            tally["injected"] += sum(r["fired"] for r in sc.faults.as_json()["rules"])
        sf.clear_faults()
        sc.faults.clear()

    scenario.first_day()
    faults_on(0)
    await until_idle(engine, tally)
    faults_off()
    for day in range(1, DAYS + 1):
        scenario.next_day()
        faults_on(day)
        await until_idle(engine, tally)
        faults_off()
    last = await engine.run_once()
    assert last.outcome is Outcome.DONE and last.writes == 0, (last.outcome, last.planned)
    await world.close(engine)
    return end_state(sf, sc)


@pytest.mark.timeout(600)
async def test_ten_percent_faults_converge_to_the_fault_free_end_state(world) -> None:
    clean_tally = {"runs": 0, "failed": 0, "injected": 0}
    faulty_tally = {"runs": 0, "failed": 0, "injected": 0}

    clean = await play(world, faults=False, tally=clean_tally)
    faulty = await play(world, faults=True, tally=faulty_tally)

    print(f"\nfaults converge: fault-free {clean_tally}, with faults {faulty_tally}")
    assert all(len(sides.get("sc", [])) == 1 and len(sides.get("sf", [])) == 1
               for sides in clean.values()), clean  # fmt: skip
    assert faulty == clean
    assert clean_tally["failed"] == 0 and faulty_tally["injected"] >= 5
