"""Every request/response example in docs/salesconnect-api.md, replayed against the emulator."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.doc_examples import DOC, Replay, parse_examples, replay_example
from tests.contract.openapi_check import validate_response


def test_the_doc_shows_every_endpoint_of_the_contract() -> None:
    shown = {
        e.request.start_line.split(" ")[0] + " " + e.request.start_line.split(" ")[1].split("?")[0]
        for e in parse_examples()
    }
    for call in (
        "POST /api/v1/oauth/token",
        "GET /api/v1/me",
        "GET /api/v1/settings",
        "PUT /api/v1/settings",
        "GET /api/v1/tasks",
        "POST /api/v1/tasks",
        "POST /api/v1/tasks/batch",
        "PATCH /api/v1/tasks/tsk_629fd82c07cd",
        "DELETE /api/v1/tasks/tsk_e3e7c2094cac",
        "POST /__emulator__/clock",
        "POST /__emulator__/faults",
        "POST /__emulator__/reset",
    ):
        assert call in shown, f"{DOC.name} has no example of {call}"


def test_every_doc_example_matches_the_running_emulator(sc_http: httpx.Client) -> None:
    openapi = sc_http.get("/openapi.json").json()
    replay = Replay()
    examples = parse_examples()
    assert len(examples) >= 25
    for example in examples:
        response = replay_example(sc_http, example, replay)
        if response.request.url.path.startswith("/api/"):
            validate_response(openapi, response)
    assert replay.values["access_token"].startswith("scat_")


def test_a_wrong_doc_example_is_caught(sc_http: httpx.Client) -> None:
    """The replay is strict: a documented value that differs from the emulator's fails."""
    text = DOC.read_text(encoding="utf-8")
    opening = text[: text.index("## Authentication")]
    doctored = opening.replace(
        '"now": "2025-03-03T09:00:00.000Z"', '"now": "2025-03-03T09:00:01.000Z"'
    )
    assert doctored != opening
    reset, clock = parse_examples(doctored)
    replay = Replay()
    replay_example(sc_http, reset, replay)
    with pytest.raises(AssertionError, match="09:00:01"):
        replay_example(sc_http, clock, replay)
