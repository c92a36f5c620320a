"""Demo data: a sales rep's week in both services, and a "chaos" switch that keeps it moving.

Seeding goes through each emulator's own Python seeding API (no HTTP, no code shared with
`sync/`). It happens in two steps around the first sync, because links exist only once the
app has synced:

1. `seed_demo(sc, sf, now)` before sync is switched on:
   - Salesforce tasks touched in the last 24 hours (imported into Sales Connect by the first
     sync, so they end up linked and in sync), a few with statuses and priorities Sales
     Connect cannot hold (In Progress, Waiting on someone else, Low...),
   - older Salesforce tasks (outside the first-sync window: they stay Salesforce-only),
   - Sales Connect tasks created days ago (before enabling: never pushed, rule 3).
2. `after_first_sync(sc, sf, now)` once the first sync linked them:
   - two real conflicts (the same field changed differently on both sides),
   - a few new Sales Connect tasks (created after enabling: pushed to Salesforce).

`Chaos(sc, sf).step()` edits one random task on a random side: what a colleague or the rep
would do in the other app while the dashboard is open.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

# Accounts and people a rep might work with (all fictional).
ACCOUNTS = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Soylent Foods",
    "Vandelay Imports",
    "Pied Piper",
    "Wonka Industries",
    "Cyberdyne Systems",
    "Tyrell Corp",
    "Massive Dynamic",
    "Oscorp",
)
PEOPLE = (
    "Jane Cooper",
    "Priya Shah",
    "Marcus Lee",
    "Ana Souza",
    "Tom Becker",
    "Yuki Tanaka",
    "Omar Haddad",
    "Lena Fischer",
    "Sam Okafor",
    "Chloe Martin",
    "Diego Ramos",
    "Nora Walsh",
)
TEMPLATES = (
    "Call {person} ({account}) about the renewal",
    "Send proposal to {account}",
    "Follow up with {person} on demo feedback",
    "Prep QBR deck for {account}",
    "Email pricing sheet to {person} at {account}",
    "Book onsite visit with {account}",
    "Confirm PO number with {person}",
    "Reply to {account} legal redlines",
    "Schedule discovery call with {person}",
    "Check in with {person} after the trial",
    "Send case study to {account}",
    "Intro {person} to our solutions engineer",
    "Update mutual action plan for {account}",
    "Chase signature on {account} order form",
    "Thank-you note to {person}",
)
DETAILS = (
    "",
    "",
    "Ask about budget timing and who signs.",
    "They asked for the security questionnaire too.\nAttach the SOC 2 letter.",
    "Champion is {person}; economic buyer not yet met.",
    "Discount approved up to 12% by finance.",
    "Bring the updated ROI numbers.",
)


@dataclass(frozen=True)
class DemoTask:
    """One task of the demo, in neutral terms (each side's adapter writes it its own way)."""

    name: str
    due_offset: int | None  # days from today; None = no due date
    complete: bool = False
    high: bool = False
    details: str = ""
    sf_status: str | None = None  # a Salesforce status with no Sales Connect equivalent
    sf_priority: str | None = None  # e.g. "Low"
    age_hours: float = 2.0  # how long ago it was created/last touched


def _name(rng: random.Random, index: int) -> tuple[str, str]:
    template = TEMPLATES[index % len(TEMPLATES)]
    person = PEOPLE[rng.randrange(len(PEOPLE))]
    account = ACCOUNTS[rng.randrange(len(ACCOUNTS))]
    details = DETAILS[rng.randrange(len(DETAILS))].format(person=person)
    return template.format(person=person, account=account), details


def _due(rng: random.Random) -> int | None:
    # A rep's week: most due today..next week, a few overdue, a few undated.
    return rng.choice((-2, -1, 0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 7, 9, None))


def demo_plan(seed: int = 7) -> dict[str, list[DemoTask]]:
    """The whole demo data set, deterministic for a given seed."""
    rng = random.Random(seed)
    counter = iter(range(10_000))

    def task(**overrides: Any) -> DemoTask:
        name, details = _name(rng, next(counter))
        values: dict[str, Any] = {
            "name": name,
            "due_offset": _due(rng),
            "complete": rng.random() < 0.15,
            "high": rng.random() < 0.2,
            "details": details,
        }
        values.update(overrides)
        return DemoTask(**values)

    linked = [task(age_hours=rng.uniform(1, 20)) for _ in range(34)]
    # Make sure the Command Center view has something to show today and tomorrow.
    for index in range(6):
        linked[index] = task(due_offset=index % 2, complete=False, age_hours=3 + index)
    unmapped = [
        task(sf_status="In Progress", due_offset=0, complete=False, age_hours=5),
        task(sf_status="Waiting on someone else", due_offset=1, complete=False, age_hours=6),
        task(sf_priority="Low", due_offset=1, high=False, age_hours=4),
        task(sf_status="Deferred", due_offset=3, complete=False, age_hours=7),
    ]
    old_salesforce = [task(age_hours=rng.uniform(30, 240)) for _ in range(14)]
    old_salesforce += [
        task(sf_status="In Progress", age_hours=72),
        task(sf_priority="Low", age_hours=96),
    ]
    old_salesconnect = [task(age_hours=rng.uniform(48, 400)) for _ in range(20)]
    new_salesconnect = [task(due_offset=rng.choice((0, 1, 2)), age_hours=0) for _ in range(5)]
    return {
        "linked": linked,
        "unmapped": unmapped,
        "old_salesforce": old_salesforce,
        "old_salesconnect": old_salesconnect,
        "new_salesconnect": new_salesconnect,
    }


# -- the two sides' seeding adapters -------------------------------------------------------


def _today(now: datetime, tz: Any = None) -> date:
    return now.astimezone(tz).date() if tz is not None else now.date()


def _sc_fields(task: DemoTask, today: date) -> dict[str, Any]:
    due = today + timedelta(days=task.due_offset) if task.due_offset is not None else None
    return {
        "name": task.name,
        "status": "complete" if task.complete else "open",
        "priority": "high" if task.high else "normal",
        "due_date": due.isoformat() if due else None,
        "details": task.details,
    }


def _sf_fields(task: DemoTask, today: date) -> dict[str, Any]:
    due = today + timedelta(days=task.due_offset) if task.due_offset is not None else None
    status = task.sf_status or ("Completed" if task.complete else "Not Started")
    priority = task.sf_priority or ("High" if task.high else "Normal")
    return {
        "Subject": task.name,
        "Status": status,
        "Priority": priority,
        "ActivityDate": due.isoformat() if due else None,
        "Description": task.details or None,
    }


def add_sc(sc: Any, task: DemoTask, now: datetime, today: date) -> dict[str, Any]:
    at = now - timedelta(hours=task.age_hours)
    return sc.add_task(created_at=at, updated_at=at, **_sc_fields(task, today))


def add_sf(sf: Any, task: DemoTask, now: datetime, today: date) -> dict[str, Any]:
    at = now - timedelta(hours=task.age_hours)
    fields = {k: v for k, v in _sf_fields(task, today).items() if v is not None}
    return sf.add_task(created_at=at, **fields)


@dataclass
class DemoSeed:
    """What was seeded, so the second step and the chaos switch can find their tasks."""

    today: date
    sf_linked_ids: list[str]
    plan: dict[str, list[DemoTask]]


def seed_demo(sc: Any, sf: Any, *, now: datetime | None = None, tz: Any = None) -> DemoSeed:
    """Step 1 (before sync is switched on). `sc`/`sf` are the emulators' seeding objects."""
    now = now or datetime.now(UTC)
    today = _today(now, tz)
    plan = demo_plan()
    linked_ids = [add_sf(sf, task, now, today)["Id"] for task in plan["linked"] + plan["unmapped"]]
    for task in plan["old_salesforce"]:
        add_sf(sf, task, now, today)
    for task in plan["old_salesconnect"]:
        add_sc(sc, task, now, today)
    return DemoSeed(today=today, sf_linked_ids=linked_ids, plan=plan)


def after_first_sync(sc: Any, sf: Any, seed: DemoSeed, *, now: datetime | None = None) -> None:
    """Step 2 (after the first sync linked the recent Salesforce tasks).

    Two conflicts: the rep moved a call to tomorrow in Sales Connect while a colleague moved it
    to Friday in Salesforce; and both renamed the proposal task, differently. Then a few new
    Sales Connect tasks, which the next run pushes to Salesforce.
    """
    now = now or datetime.now(UTC)
    today = seed.today
    first, second = seed.sf_linked_ids[0], seed.sf_linked_ids[1]
    sc_first = _sc_partner(sc, sf, first)
    sc_second = _sc_partner(sc, sf, second)
    if sc_first is not None:
        sc.update(sc_first["id"], None, {"due_date": (today + timedelta(days=1)).isoformat()})
        sf.update_task(first, ActivityDate=(today + timedelta(days=4)).isoformat())
    if sc_second is not None:
        name = sc_second["name"]
        sc.update(sc_second["id"], None, {"name": f"{name} (v2, 3-year term)"})
        sf.update_task(second, Subject=f"{name} - revised pricing")
    for task in seed.plan["new_salesconnect"]:
        add_sc(sc, task, now, today)


def _sc_partner(sc: Any, sf: Any, sf_id: str) -> dict[str, Any] | None:
    """The Sales Connect task the first sync created from this Salesforce task (same name)."""
    subject = sf.task(sf_id)["Subject"]
    for task in sc.tasks():
        if task["name"] == subject:
            return task
    return None


class Chaos:
    """Edits one random task on a random side: completes or reopens it, moves its due date,
    or raises its priority. Deterministic for a given seed."""

    def __init__(self, sc: Any, sf: Any, *, seed: int | None = None) -> None:
        self.sc = sc
        self.sf = sf
        self.rng = random.Random(seed)
        self.edits = 0

    def step(self) -> str:
        """One edit; returns a line saying what changed (for the demo's notification)."""
        message = self._edit_sc() if self.rng.random() < 0.5 else self._edit_sf()
        if message:
            self.edits += 1
        return message

    def _edit_sc(self) -> str:
        tasks = [t for t in self.sc.tasks() if t.get("deleted_at") is None]
        if not tasks:
            return ""
        task = self.rng.choice(tasks)
        kind = self.rng.choice(("status", "due", "priority"))
        if kind == "status":
            change = {"status": "open" if task["status"] == "complete" else "complete"}
        elif kind == "due":
            base = date.fromisoformat(task["due_date"]) if task.get("due_date") else date.today()
            change = {"due_date": (base + timedelta(days=self.rng.choice((1, 2, 7)))).isoformat()}
        else:
            change = {"priority": "normal" if task["priority"] == "high" else "high"}
        self.sc.update(task["id"], None, change)
        return f"Sales Connect: {task['name'][:40]} — {_describe(change)}"

    def _edit_sf(self) -> str:
        tasks = self.sf.tasks()
        if not tasks:
            return ""
        task = self.rng.choice(tasks)
        kind = self.rng.choice(("status", "due", "priority"))
        if kind == "status":
            closed = task.get("Status") == "Completed"
            change = {"Status": "Not Started" if closed else "Completed"}
        elif kind == "due":
            raw = task.get("ActivityDate")
            base = date.fromisoformat(raw) if raw else date.today()
            change = {
                "ActivityDate": (base + timedelta(days=self.rng.choice((1, 2, 7)))).isoformat()
            }
        else:
            change = {"Priority": "Normal" if task.get("Priority") == "High" else "High"}
        self.sf.update_task(task["Id"], **change)
        return f"Salesforce: {str(task.get('Subject', ''))[:40]} — {_describe(change)}"


def _describe(change: dict[str, Any]) -> str:
    return ", ".join(f"{key} → {value}" for key, value in change.items())
