"""The emulator's answers validate against its OpenAPI document (jsonschema), status by status."""

from __future__ import annotations

import httpx

from tests.contract.openapi_check import validate_response

DEMO = {"grant_type": "client_credentials", "client_id": "reminder-sync-demo"}


def test_every_operation_answers_as_documented(sc_http: httpx.Client) -> None:
    openapi = sc_http.get("/openapi.json").json()
    assert openapi["openapi"].startswith("3.1")
    seen: set[tuple[str, str, int]] = set()

    def check(response: httpx.Response) -> httpx.Response:
        validate_response(openapi, response)
        template = response.request.url.path.replace("/api/v1", "")
        if template.startswith("/tasks/") and template != "/tasks/batch":
            template = "/tasks/{task_id}"
        seen.add((response.request.method, template, response.status_code))
        return response

    token_url = "/api/v1/oauth/token"
    token = check(sc_http.post(token_url, data={**DEMO, "client_secret": "demo-secret"}))
    check(sc_http.post(token_url, data={**DEMO, "client_secret": "wrong"}))
    check(sc_http.post(token_url, data={"grant_type": "password"}))
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    api = "/api/v1"

    check(sc_http.get(api + "/me", headers=auth))
    check(sc_http.get(api + "/me"))
    check(sc_http.get(api + "/settings", headers=auth))
    check(sc_http.get(api + "/settings", headers={"Authorization": "Bearer not-a-token"}))
    check(sc_http.put(api + "/settings", headers=auth, json={"salesforce_sync_enabled": True}))
    check(sc_http.put(api + "/settings", headers=auth, json={"on": True}))
    check(sc_http.put(api + "/settings", headers=auth, content=b"x", params={}))

    created = check(
        sc_http.post(
            api + "/tasks",
            headers={**auth, "Idempotency-Key": "k1"},
            json={"name": "a", "person": {"name": "P", "email": None}, "due_date": "2025-03-04"},
        )
    ).json()
    check(
        sc_http.post(api + "/tasks", headers={**auth, "Idempotency-Key": "k1"}, json={"name": "b"})
    )
    check(sc_http.post(api + "/tasks", headers=auth, json={"name": "a", "status": "x"}))
    check(
        sc_http.post(api + "/tasks", headers={**auth, "Content-Type": "text/plain"}, content=b"a")
    )
    check(sc_http.get(api + "/tasks", headers=auth, params={"limit": 1}))
    check(sc_http.get(api + "/tasks", headers=auth, params={"limit": 0}))
    task_url = f"{api}/tasks/{created['id']}"
    check(sc_http.get(task_url, headers=auth))
    check(sc_http.get(task_url, headers=auth, params={"include_deleted": "maybe"}))
    check(sc_http.patch(task_url, headers={**auth, "If-Match": '"1"'}, json={"status": "complete"}))
    check(sc_http.patch(task_url, headers={**auth, "If-Match": '"1"'}, json={"status": "open"}))
    check(sc_http.patch(task_url, headers=auth, json={}))
    check(sc_http.patch(task_url, headers={**auth, "Content-Type": "text/plain"}, content=b"a"))
    check(sc_http.delete(task_url, headers={**auth, "If-Match": "1"}))
    check(sc_http.delete(task_url, headers={**auth, "If-Match": "x"}))
    check(sc_http.delete(task_url, headers=auth))
    check(sc_http.get(task_url, headers=auth))
    check(sc_http.get(task_url, headers=auth, params={"include_deleted": "true"}))
    check(
        sc_http.post(
            api + "/tasks/batch",
            headers=auth,
            json={
                "operations": [
                    {"op": "create", "idempotency_key": "k2", "task": {"name": "c"}},
                    {"op": "update", "id": created["id"], "changes": {"name": "d"}},
                ]
            },
        )
    )
    check(sc_http.post(api + "/tasks/batch", headers=auth, json={"operations": []}))
    check(
        sc_http.post(
            api + "/tasks/batch", headers={**auth, "Content-Type": "text/csv"}, content=b"a"
        )
    )

    sc_http.post("/__emulator__/faults", json={"rules": [{"fault": "rate_limit", "times": 1}]})
    check(sc_http.get(api + "/tasks", headers=auth))
    sc_http.post("/__emulator__/faults", json={"rules": [{"fault": "unavailable", "times": 1}]})
    check(sc_http.post(api + "/tasks/batch", headers=auth, json={"operations": []}))

    documented = {
        (method.upper(), path, int(status))
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        for status in operation["responses"]
    }
    assert seen <= documented
    # Every operation was seen succeeding and failing.
    for method, path, _status in documented:
        statuses = {s for m, p, s in seen if (m, p) == (method, path)}
        assert any(s < 300 for s in statuses), f"{method} {path}: no success checked"
        assert any(s >= 400 for s in statuses), f"{method} {path}: no error checked"
