"""The Sales Connect emulator over HTTP: validation, tombstones, keys, paging, faults, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from emulators.salesconnect import SalesConnectConfig, create_app
from emulators.server import RunningServer, serve_in_thread
from tests.conftest import TLS_CONTEXT

DEMO = {"grant_type": "client_credentials", "client_id": "reminder-sync-demo"}
BASE = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[RunningServer, Any]]:
    app = create_app()
    with serve_in_thread(app) as server:
        yield server, app.state.emulator


@pytest.fixture
def emulator(running: tuple[RunningServer, Any]) -> Any:
    running[1].reset()
    return running[1]


@pytest.fixture
def http(running: tuple[RunningServer, Any], emulator: Any) -> Iterator[httpx.Client]:
    server = running[0]
    with httpx.Client(base_url=server.base_url, timeout=10, verify=TLS_CONTEXT) as client:
        token = client.post(
            "/api/v1/oauth/token", data={**DEMO, "client_secret": "demo-secret"}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"code", "message", "category", "retryable", "details"}
    return body


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "status": "done"}, "status"),
        ({"name": "x", "priority": "low"}, "priority"),
        ({"name": "x", "due_date": "2025-02-30"}, "due_date"),
        ({"name": "x", "due_date": "20250301"}, "due_date"),
        ({"name": "x", "due_date": "2025-03-01T00:00:00Z"}, "due_date"),
        ({"name": ""}, "name"),
        ({"name": "x" * 501}, "name"),
        ({"name": "x", "details": "d" * 65_536}, "details"),
        ({"name": 123}, "name"),
        ({"name": "x", "details": None}, "details"),
        ({"name": "x", "owner": "me"}, "owner"),
        ({"name": "x", "version": 4}, "version"),
        ({"name": "x", "person": {"email": "a@b.c"}}, "person.name"),
        ({"name": "x", "type": "meeting"}, "type"),
        ({"name": "x", "assignee_id": ""}, "assignee_id"),
        ({"status": "open"}, "name"),
    ],
)
def test_bad_task_fields_are_400_and_create_nothing(
    http: httpx.Client, emulator: Any, body: dict[str, Any], field: str
) -> None:
    error = error_of(http.post("/api/v1/tasks", json=body), 400)
    assert error["category"] == "validation" and error["retryable"] is False
    assert error["details"]["field"] == field
    assert emulator.tasks() == []


def test_limits_are_inclusive(http: httpx.Client) -> None:
    response = http.post("/api/v1/tasks", json={"name": "n" * 500, "details": "d" * 65_535})
    assert response.status_code == 201
    assert error_of(http.post("/api/v1/tasks", json={"name": "n" * 501}), 400)["code"] == "too_long"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"name": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"name=x", "text/plain", 415),
        (b'{"name": "\\ud800"}', "application/json", 400),
    ],
)
def test_malformed_bodies(
    http: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    response = http.post("/api/v1/tasks", content=content, headers={"Content-Type": content_type})
    error_of(response, status)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=abc",
        "updated_since=yesterday",
        "updated_since=2025-03-03T09:00:00",
        "include_deleted=yes",
        "include_deleted=",
        "cursor=!!!",
        "limit=5&limit=6",
    ],
)
def test_bad_list_parameters_are_400(http: httpx.Client, query: str) -> None:
    assert error_of(http.get(f"/api/v1/tasks?{query}"), 400)["category"] == "validation"


def test_a_cursor_only_works_with_its_own_filters(http: httpx.Client, emulator: Any) -> None:
    for n in range(3):
        emulator.add_task(name=f"t{n}", created_at=BASE)
    first = http.get("/api/v1/tasks", params={"limit": 1, "updated_since": "2025-03-03T09:00:00Z"})
    cursor = first.json()["next_cursor"]
    other = http.get("/api/v1/tasks", params={"limit": 1, "cursor": cursor})
    assert error_of(other, 400)["code"] == "cursor_mismatch"
    same = http.get(
        "/api/v1/tasks",
        params={"limit": 5, "cursor": cursor, "updated_since": "2025-03-03T10:00:00+01:00"},
    )
    # The same instant written in another zone is the same filter.
    rest = same.json()["tasks"]
    assert len(rest) == 2 and first.json()["tasks"][0]["id"] not in {t["id"] for t in rest}


def test_unknown_paths_and_methods(http: httpx.Client) -> None:
    assert error_of(http.get("/api/v1/nothing"), 404)["code"] == "not_found"
    response = http.put("/api/v1/tasks", json={})
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


# -- versions, keys, tombstones -----------------------------------------------------------------


def test_if_match_rules(http: httpx.Client, emulator: Any) -> None:
    task = emulator.add_task(name="t")
    url = f"/api/v1/tasks/{task['id']}"
    assert error_of(http.patch(url, json={"name": "u"}, headers={"If-Match": "v1"}), 400)
    same = http.patch(url, json={"name": "t"}, headers={"If-Match": "1"})
    assert same.json()["version"] == 1  # nothing changed, nothing moves
    assert http.patch(url, json={"name": "u"}, headers={"If-Match": "*"}).json()["version"] == 2
    stale = error_of(http.delete(url, headers={"If-Match": '"1"'}), 412)
    assert stale["details"]["current"]["name"] == "u"
    assert http.delete(url, headers={"If-Match": '"2"'}).json()["version"] == 3
    assert error_of(http.patch(url, json={"name": "v"}), 404)["code"] == "not_found"


def test_tombstones_are_kept_15_days(http: httpx.Client, emulator: Any) -> None:
    task = emulator.add_task(name="gone")
    emulator.delete_task(task["id"])
    emulator.set_clock_offset(14 * 86_400)
    listed = http.get("/api/v1/tasks", params={"include_deleted": "true"}).json()["tasks"]
    assert [t["id"] for t in listed] == [task["id"]]
    assert http.get("/api/v1/tasks").json()["tasks"] == []
    emulator.set_clock_offset(15 * 86_400 + 60)
    assert http.get("/api/v1/tasks", params={"include_deleted": "true"}).json()["tasks"] == []
    assert http.get(f"/api/v1/tasks/{task['id']}?include_deleted=true").status_code == 404


def test_idempotency_keys_last_24_hours(http: httpx.Client, emulator: Any) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = http.post("/api/v1/tasks", json={"name": "a"}, headers=headers).json()
    emulator.set_clock_offset(23 * 3600)
    assert http.post("/api/v1/tasks", json={"name": "a"}, headers=headers).json() == first
    emulator.set_clock_offset(25 * 3600)
    later = http.post("/api/v1/tasks", json={"name": "a"}, headers=headers).json()
    assert later["id"] != first["id"]
    assert error_of(
        http.post("/api/v1/tasks", json={"name": "a"}, headers={"Idempotency-Key": "sp ace"}), 400
    )


def test_tombstones_and_keys_expire_at_the_exact_millisecond(
    http: httpx.Client, emulator: Any
) -> None:
    """Retention is "older than 15 days" and "older than 24 hours", to the millisecond, however
    many tasks and keys there are, and whatever order they were made in."""
    ms = timedelta(milliseconds=1)
    emulator.freeze_clock(BASE)
    tasks = [emulator.add_task(name=f"t{n}") for n in range(3)]
    keys = {}
    for n, moment in enumerate((BASE + 2 * ms, BASE, BASE + ms)):  # keys made out of order
        emulator.freeze_clock(moment)
        reply = http.post(
            "/api/v1/tasks", json={"name": f"k{n}"}, headers={"Idempotency-Key": f"k{n}"}
        )
        keys[f"k{n}"] = (moment, reply.json()["id"])
    for task, moment in zip(tasks, (BASE + ms, BASE, BASE + 2 * ms), strict=True):
        emulator.freeze_clock(moment)
        emulator.delete_task(task["id"])

    def kept_tombstones() -> set[str]:
        listed = http.get("/api/v1/tasks", params={"include_deleted": "true"}).json()["tasks"]
        return {t["id"] for t in listed if t["deleted_at"]}

    def replayed(key: str) -> bool:
        n = key[1:]
        reply = http.post("/api/v1/tasks", json={"name": f"k{n}"}, headers={"Idempotency-Key": key})
        return reply.json()["id"] == keys[key][1]

    emulator.freeze_clock(BASE + timedelta(hours=24) + ms)  # k2 is exactly 24 h old: kept
    assert replayed("k0") and replayed("k2") and not replayed("k1")  # k1: 24 h + 1 ms
    emulator.freeze_clock(BASE + timedelta(hours=24) + 2 * ms)
    assert replayed("k0") and not replayed("k2")  # k2 is now 24 h + 1 ms old
    emulator.freeze_clock(BASE + timedelta(days=15))
    assert kept_tombstones() == {t["id"] for t in tasks}  # 15 days exactly: still kept
    emulator.freeze_clock(BASE + timedelta(days=15) + ms)
    assert kept_tombstones() == {tasks[0]["id"], tasks[2]["id"]}
    emulator.freeze_clock(BASE + timedelta(days=15) + 3 * ms)
    assert kept_tombstones() == set()
    emulator.freeze_clock(BASE)  # a clock set back brings nothing back
    assert kept_tombstones() == set()
    assert all(t["deleted_at"] is None for t in emulator.tasks(include_deleted=True))


def test_many_creates_and_reads_keep_every_live_task(http: httpx.Client, emulator: Any) -> None:
    """The purge before each request drops only what expired (heaps, not a scan)."""
    emulator.freeze_clock(BASE)
    gone = [emulator.add_task(name=f"old {n}") for n in range(50)]
    for task in gone:
        emulator.delete_task(task["id"])
    emulator.freeze_clock(BASE + timedelta(days=10))
    made = [
        http.post(
            "/api/v1/tasks", json={"name": f"new {n}"}, headers={"Idempotency-Key": f"n{n}"}
        ).json()["id"]
        for n in range(50)
    ]
    emulator.freeze_clock(BASE + timedelta(days=15, hours=1))  # old tombstones expire
    assert [t["id"] for t in emulator.tasks(include_deleted=True)] == sorted(
        made, key=lambda i: (emulator.get(i)["updated_at"], i)
    )
    assert http.get(f"/api/v1/tasks/{made[0]}").status_code == 200


def test_batch_envelope_is_checked_as_a_whole(http: httpx.Client) -> None:
    too_many = [{"op": "delete", "id": f"t{n}"} for n in range(201)]
    for body in (
        {"operations": []},
        {"operations": too_many},
        {"ops": []},
        {"operations": [{"op": "merge"}]},
        {"operations": [{"op": "delete", "id": 5}]},
    ):
        assert (
            error_of(http.post("/api/v1/tasks/batch", json=body), 400)["category"] == "validation"
        )
    results = http.post(
        "/api/v1/tasks/batch",
        json={
            "operations": [
                {"op": "create", "task": {"name": "no key"}},
                {"op": "update", "id": "x"},
            ]
        },
    ).json()["results"]
    assert [r["error"]["details"]["field"] for r in results] == ["idempotency_key", "changes"]


# -- clock, reset, settings ---------------------------------------------------------------------


def test_clock_offset_makes_tasks_in_the_past(http: httpx.Client, emulator: Any) -> None:
    http.post("/__emulator__/clock", json={"offset_seconds": -30 * 3600}).raise_for_status()
    created = http.post("/api/v1/tasks", json={"name": "old"}).json()
    age = datetime.now(UTC) - datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    assert timedelta(hours=29, minutes=59) < age < timedelta(hours=30, minutes=5)
    assert error_of(http.post("/__emulator__/clock", json={"offset_seconds": "x"}), 400)


def test_reset_empties_but_keeps_tokens(http: httpx.Client, emulator: Any) -> None:
    http.post("/api/v1/tasks", json={"name": "a"}).raise_for_status()
    http.put("/api/v1/settings", json={"salesforce_sync_enabled": True}).raise_for_status()
    http.post("/__emulator__/reset").raise_for_status()
    assert http.get("/api/v1/tasks").json() == {"tasks": [], "next_cursor": None}
    assert http.get("/api/v1/settings").json()["salesforce_sync_enabled"] is False


def test_settings_record_enabled_at_and_reject_junk(http: httpx.Client, emulator: Any) -> None:
    emulator.freeze_clock(BASE)
    on = http.put("/api/v1/settings", json={"salesforce_sync_enabled": True}).json()
    assert on["enabled_at"] == "2025-03-03T09:00:00.000Z"
    emulator.freeze_clock(BASE + timedelta(hours=1))
    again = http.put("/api/v1/settings", json={**on, "salesforce_sync_enabled": True}).json()
    assert again["enabled_at"] == on["enabled_at"]  # already on: the moment stays
    assert (
        http.put("/api/v1/settings", json={"salesforce_sync_enabled": False}).json()["enabled_at"]
        is None
    )
    assert error_of(http.put("/api/v1/settings", json={"sync": True}), 400)
    assert error_of(http.put("/api/v1/settings", json={"salesforce_sync_enabled": "yes"}), 400)


def test_seeding_api_validates_like_the_api(emulator: Any) -> None:
    with pytest.raises(ValueError, match="status"):
        emulator.add_task(name="x", status="done")
    task = emulator.add_task(
        name="x",
        created_at=BASE,
        updated_at=BASE + timedelta(hours=1),
        assignee_id="usr_other",
        due_date="2025-03-04",
    )
    assert (task["created_at"], task["updated_at"]) == (
        "2025-03-03T09:00:00.000Z",
        "2025-03-03T10:00:00.000Z",
    )
    assert task["assignee_id"] == "usr_other"
    emulator.delete_task(task["id"])
    assert emulator.tasks() == [] and len(emulator.tasks(include_deleted=True)) == 1


# -- tokens -------------------------------------------------------------------------------------


def test_token_endpoint_errors_and_basic_auth(
    running: tuple[RunningServer, Any], emulator: Any
) -> None:
    with httpx.Client(base_url=running[0].base_url) as client:
        url = "/api/v1/oauth/token"
        wrong = client.post(url, data={**DEMO, "client_secret": "nope"})
        assert error_of(wrong, 401)["error"] == "invalid_client"
        grant = client.post(
            url, data={"grant_type": "password", "client_id": "a", "client_secret": "b"}
        )
        assert error_of(grant, 400)["error"] == "unsupported_grant_type"
        assert error_of(client.post(url, json={"grant_type": "client_credentials"}), 400)
        basic = client.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=("reminder-sync-demo", "demo-secret"),
        )
        assert basic.status_code == 200 and basic.headers["cache-control"] == "no-store"
        assert error_of(client.get("/api/v1/me"), 401)["code"] == "missing_token"
        bad = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
        assert error_of(bad, 401)["code"] == "invalid_token"
        assert "invalid_token" in bad.headers["www-authenticate"]


def test_tokens_expire_after_their_lifetime() -> None:
    app = create_app(SalesConnectConfig(token_lifetime=0))
    with serve_in_thread(app) as server, httpx.Client(base_url=server.base_url) as client:
        token = client.post("/api/v1/oauth/token", data={**DEMO, "client_secret": "demo-secret"})
        assert token.json()["expires_in"] == 0
        me = client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
        )
        assert error_of(me, 401)["code"] == "token_expired"


def test_configured_rate_limit_answers_429_with_retry_after() -> None:
    app = create_app(SalesConnectConfig(rate_limit_per_minute=3))
    with serve_in_thread(app) as server, httpx.Client(base_url=server.base_url) as client:
        token = client.post("/api/v1/oauth/token", data={**DEMO, "client_secret": "demo-secret"})
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 200]
        limited = client.get("/api/v1/me")
        error = error_of(limited, 429)
        assert error["retryable"] is True and error["category"] == "rate_limit"
        assert 1 <= int(limited.headers["retry-after"]) <= 60


# -- faults -------------------------------------------------------------------------------------


def test_fault_rules_count_deterministically(http: httpx.Client) -> None:
    rules = {
        "rules": [
            {"fault": "unavailable", "after": 1, "times": 2, "retry_after": 3, "path": "/api/v1/me"}
        ]
    }
    state = http.post("/__emulator__/faults", json=rules).json()
    assert state["rules"][0]["remaining"] == 2
    statuses = [http.get("/api/v1/me").status_code for _ in range(5)]
    assert statuses == [200, 503, 503, 200, 200]
    assert http.get("/__emulator__/faults").json()["rules"][0]["fired"] == 2
    http.post("/__emulator__/faults", json=rules)
    http.get("/api/v1/me")
    unavailable = http.get("/api/v1/me")
    assert unavailable.headers["retry-after"] == "3"
    assert error_of(unavailable, 503)["category"] == "transient"


def test_probability_is_reproducible_with_a_seed(http: httpx.Client) -> None:
    def pattern() -> list[int]:
        http.post(
            "/__emulator__/faults",
            json={
                "seed": 11,
                "rules": [
                    {"fault": "rate_limit", "probability": 0.5, "times": None, "path": "/api/v1/me"}
                ],
            },
        )
        return [http.get("/api/v1/me").status_code for _ in range(16)]

    first = pattern()
    assert first == pattern()
    assert 200 in first and 429 in first


@pytest.mark.parametrize(
    "rules",
    [
        {"rules": [{"fault": "explode"}]},
        {"rules": [{"fault": "slow", "delay_seconds": -1}]},
        {"rules": [{"fault": "rate_limit", "phase": "after"}]},
        {"rules": "all"},
        {"rules": [], "colour": "red"},
    ],
)
def test_bad_fault_sets_are_400(http: httpx.Client, rules: dict[str, Any]) -> None:
    assert error_of(http.post("/__emulator__/faults", json=rules), 400)["category"] == "validation"


def test_a_hang_before_processing_leaves_nothing_done(http: httpx.Client, emulator: Any) -> None:
    http.post("/__emulator__/faults", json={"rules": [{"fault": "hang", "delay_seconds": 20}]})
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v1/tasks", json={"name": "never"}, timeout=0.5)
    http.post("/__emulator__/reset")  # wakes the held request: it must not run afterwards
    assert emulator.tasks() == []


def test_a_slow_answer_after_processing_did_the_write(http: httpx.Client, emulator: Any) -> None:
    http.post(
        "/__emulator__/faults",
        json={"rules": [{"fault": "slow", "phase": "after", "delay_seconds": 5}]},
    )
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v1/tasks", json={"name": "done anyway"}, timeout=0.5)
    assert [t["name"] for t in emulator.tasks()] == ["done anyway"]


def test_expire_tokens_fault(http: httpx.Client) -> None:
    assert http.get("/api/v1/me").status_code == 200
    http.post("/__emulator__/faults", json={"expire_tokens": True}).raise_for_status()
    assert error_of(http.get("/api/v1/me"), 401)["code"] == "token_expired"
