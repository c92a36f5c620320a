"""Fault injection and the test-only /__emulator__/ namespace, over loopback sockets."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable

import httpx
import pytest

from emulators.salesforce import SalesforceEmulator

V = "/services/data/v62.0"
QUERY = {"q": "SELECT Id FROM Task"}


@pytest.fixture
def env(
    sf_emulator: SalesforceEmulator, sf_client: Callable[..., httpx.Client]
) -> tuple[httpx.Client, httpx.Client, SalesforceEmulator]:
    data = sf_client(V, timeout=5)
    root = sf_client(authorized=False, timeout=5)
    return data, root, sf_emulator


# A dropped connection surfaces as one or the other, depending on whether the client is still
# reading when the server closes (peer reset) or the close arrives first (no response).
CONNECTION_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def set_faults(root: httpx.Client, body: dict) -> httpx.Response:
    response = root.post("/__emulator__/faults", json=body)
    assert response.status_code == 200, response.text
    return response


def test_429_with_retry_after_then_normal_again(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["429"], "count": 2, "retry_after": 3})
    first = data.get("/query", params=QUERY)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert first.json()[0]["errorCode"] == "TOO_MANY_REQUESTS"
    assert data.get("/query", params=QUERY).status_code == 429
    assert data.get("/query", params=QUERY).status_code == 200


def test_503_html_is_not_json(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["503_html"], "count": 1})
    response = data.get("/limits")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "Service Unavailable" in response.text
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("503", 503, "SERVER_UNAVAILABLE"), ("500", 500, "UNKNOWN_EXCEPTION")],
)
def test_json_server_errors_do_not_write(env, kind: str, status: int, code: str) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": [kind], "count": 1})
    response = data.post("/sobjects/Task", json={"Subject": "x"})
    assert response.status_code == status
    assert response.json()[0]["errorCode"] == code
    assert emulator.tasks() == []


def test_lock_applies_to_writes_only_and_writes_nothing(env) -> None:
    data, root, emulator = env
    task = emulator.add_task(Subject="before")
    set_faults(root, {"kinds": ["lock"], "count": 2})
    assert data.get(f"/sobjects/Task/{task['Id']}").status_code == 200  # reads pass, no count used
    locked = data.patch(f"/sobjects/Task/{task['Id']}", json={"Subject": "after"})
    assert locked.status_code == 400
    error = locked.json()[0]
    assert error["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert task["Id"] in error["message"]
    assert emulator.task(task["Id"])["Subject"] == "before"

    batch = data.post(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": "Task"}, "Subject": "a"}]},
    )
    assert batch.status_code == 200
    assert batch.json()[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert len(emulator.tasks()) == 1
    assert data.patch(f"/sobjects/Task/{task['Id']}", json={"Subject": "after"}).status_code == 204


def test_expire_token_invalidates_the_token_used(env) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": ["expire_token"], "count": 1})
    first = data.get("/limits")
    assert first.status_code == 401
    assert first.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert data.get("/limits").status_code == 401  # the token stays dead
    data.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
    assert data.get("/limits").status_code == 200


def test_limit_fault_exhausts_the_daily_allowance(env) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": ["limit"], "count": 1})
    refused = data.get("/limits")
    assert refused.status_code == 403
    assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert data.get("/limits").status_code == 403
    used, maximum = emulator.api_usage()
    assert used == maximum
    root.post("/__emulator__/clock", json={"offset_seconds": 24 * 3600 + 5})
    data.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
    assert data.get("/limits").status_code == 200


def test_reset_drops_the_connection_before_anything_is_written(env) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": ["reset"], "count": 1})
    with pytest.raises(CONNECTION_DROPPED):
        data.post("/sobjects/Task", json={"Subject": "x"})
    assert emulator.tasks() == []
    assert data.post("/sobjects/Task", json={"Subject": "x"}).status_code == 201


def test_reset_after_writes_but_loses_the_response(env) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": ["reset_after"], "count": 1})
    with pytest.raises(CONNECTION_DROPPED):
        data.post("/sobjects/Task", json={"Subject": "x"})
    assert [t["Subject"] for t in emulator.tasks()] == ["x"]


def test_hang_delays_the_answer_past_a_client_deadline(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["hang"], "count": 1, "hang_seconds": 3})
    with pytest.raises(httpx.ReadTimeout):
        data.get("/limits", timeout=0.5)
    assert data.get("/limits").status_code == 200


def test_a_released_hang_answers_at_once(env) -> None:
    data, root, emulator = env
    set_faults(root, {"kinds": ["hang"], "count": 2, "hang_seconds": 30})
    pool = concurrent.futures.ThreadPoolExecutor(1)
    held = pool.submit(data.get, "/limits", timeout=20)
    time.sleep(0.3)
    assert not held.done()  # held by the fault
    started = time.monotonic()
    emulator.release_hangs()
    assert held.result(timeout=10).status_code == 200
    assert data.get("/limits", timeout=5).status_code == 200  # released: no more waiting
    assert time.monotonic() - started < 5
    pool.shutdown()


def test_drip_sends_the_whole_body_slowly(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["drip"], "count": 1, "drip_seconds": 0.05, "drip_chunk_bytes": 100})
    chunks = []
    with data.stream("GET", "/limits") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            chunks.append(chunk)
    body = b"".join(chunks)
    assert len(chunks) > 3
    assert b"DailyApiRequests" in body


def test_filters_skip_and_path(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["500"], "path_contains": "/query", "skip": 1, "methods": ["GET"]})
    assert data.get("/limits").status_code == 200  # path does not match
    assert data.get("/query", params=QUERY).status_code == 200  # skipped
    assert data.get("/query", params=QUERY).status_code == 500
    assert data.get("/query", params=QUERY).status_code == 500  # no count: keeps going


def test_seeded_faults_are_deterministic(env) -> None:
    data, root, _ = env

    def run() -> list[int]:
        set_faults(root, {"kinds": ["429", "503"], "rate": 0.5, "seed": 42})
        return [data.get("/limits").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert {200, 429, 503} <= set(first)


def test_clearing_faults_and_bad_fault_bodies(env) -> None:
    data, root, _ = env
    set_faults(root, {"kinds": ["500"]})
    assert data.get("/limits").status_code == 500
    cleared = set_faults(root, {})
    assert cleared.json() == {"faults": None}
    assert data.get("/limits").status_code == 200
    for body in ({"kinds": ["meteor"]}, {"rate": 2}, {"kinds": ["500"], "colour": "red"}, []):
        response = root.post("/__emulator__/faults", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "bad_request"


def test_faults_never_touch_the_test_namespace(env) -> None:
    _, root, _ = env
    set_faults(root, {"kinds": ["500", "reset", "hang"]})
    assert root.get("/__emulator__/state").status_code == 200
    assert root.post("/__emulator__/reset").status_code == 200


def test_faults_on_the_token_endpoint(env) -> None:
    _, root, emulator = env
    set_faults(root, {"kinds": ["503_html", "lock", "expire_token"], "count": 1})
    cfg = emulator.config
    form = {
        "grant_type": "client_credentials",
        "client_id": cfg.client_id,
        "client_secret": cfg.client_secret,
    }
    assert root.post("/services/oauth2/token", data=form).status_code == 503
    assert root.post("/services/oauth2/token", data=form).status_code == 200


def test_clock_endpoint_shifts_record_times(env) -> None:
    data, root, emulator = env
    response = root.post("/__emulator__/clock", json={"offset_seconds": -30 * 3600})
    assert response.status_code == 200
    data.headers["Authorization"] = f"Bearer {emulator.issue_access_token()}"
    created = data.post("/sobjects/Task", json={"Subject": "yesterday"}).json()
    root.post("/__emulator__/clock", json={"offset_seconds": 0})
    record = emulator.task(created["id"])
    age = emulator.now() - emulator.store.records[created["id"]]["CreatedDate"]
    assert 29.9 * 3600 < age.total_seconds() < 30.1 * 3600
    assert record["CreatedDate"].endswith("+0000")
    assert root.post("/__emulator__/clock", json={"offset": 1}).status_code == 400


def test_reset_endpoint_empties_everything(env) -> None:
    data, root, emulator = env
    emulator.add_task(Subject="x")
    set_faults(root, {"kinds": ["429"], "path_contains": "/nothing"})
    root.post("/__emulator__/clock", json={"offset_seconds": 99})
    assert root.post("/__emulator__/reset").json() == {"reset": True}
    state = root.get("/__emulator__/state").json()
    assert state["tasks"] == 0 and state["faults"] is None and state["offset_seconds"] == 0
    assert state["api_usage"]["used"] == 0
    assert data.get("/limits").status_code == 401  # tokens are gone too


def test_set_fault_python_api(env) -> None:
    data, _, emulator = env
    emulator.set_fault(kinds=["503"], count=1)
    assert data.get("/limits").status_code == 503
    emulator.set_fault(kinds=["503"])
    emulator.clear_faults()
    assert data.get("/limits").status_code == 200
    with pytest.raises(ValueError, match="kinds"):
        emulator.set_fault(kinds=["nope"])
