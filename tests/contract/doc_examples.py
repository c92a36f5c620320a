"""Read the request/response examples out of docs/salesconnect-api.md and replay them.

An example is a fenced ```http block holding a request, followed by a ```http block holding the
response (first line `HTTP/1.1 <status> ...`). Placeholders `<name>`: in a response body, a
string that is exactly `<name>` matches any non-empty string and remembers it; in a later request,
`<name>` is replaced by the remembered value (that is how the token flows from the token example
into `Authorization: Bearer <access_token>`). Headers shown in a response must match; headers not
shown are not checked. Bodies are compared as JSON, exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DOC = Path(__file__).resolve().parents[2] / "docs" / "salesconnect-api.md"
_FENCE = re.compile(r"^```http\n(.*?)^```", re.S | re.M)
_PLACEHOLDER = re.compile(r"^<([a-z_]+)>$")


@dataclass(frozen=True)
class Message:
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str


@dataclass(frozen=True)
class Example:
    line: int  # where the request starts in the document
    request: Message
    response: Message


@dataclass
class Replay:
    """Values captured from placeholders so far."""

    values: dict[str, str] = field(default_factory=dict)


def _message(text: str) -> Message:
    head, _, body = text.partition("\n\n")
    lines = head.strip("\n").split("\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Message(lines[0].strip(), tuple(headers), body.strip())


def parse_examples(text: str | None = None) -> list[Example]:
    text = DOC.read_text(encoding="utf-8") if text is None else text
    blocks = [
        (text.count("\n", 0, match.start()) + 1, _message(match.group(1)))
        for match in _FENCE.finditer(text)
    ]
    examples = []
    pending: tuple[int, Message] | None = None
    for line, message in blocks:
        is_response = message.start_line.startswith("HTTP/")
        if is_response:
            if pending is None:
                raise ValueError(f"line {line}: a response without a request before it")
            examples.append(Example(pending[0], pending[1], message))
            pending = None
        else:
            if pending is not None:
                raise ValueError(f"line {pending[0]}: a request without a response after it")
            pending = (line, message)
    if pending is not None:
        raise ValueError(f"line {pending[0]}: a request without a response after it")
    return examples


def _fill(text: str, replay: Replay) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in replay.values:
            raise AssertionError(f"placeholder <{name}> used before an example captured it")
        return replay.values[name]

    return re.sub(r"<([a-z_]+)>", value, text)


def match_json(expected: Any, actual: Any, replay: Replay, where: str = "$") -> None:
    """Assert `actual` equals `expected`, where "<name>" strings capture any non-empty string."""
    if isinstance(expected, str) and (placeholder := _PLACEHOLDER.match(expected)):
        assert isinstance(actual, str) and actual, f"{where}: expected a value, got {actual!r}"
        name = placeholder.group(1)
        if name in replay.values:
            assert actual == replay.values[name], f"{where}: <{name}> changed: {actual!r}"
        replay.values[name] = actual
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert sorted(expected) == sorted(actual), (
            f"{where}: keys differ: documented {sorted(expected)}, got {sorted(actual)}"
        )
        for key in expected:
            match_json(expected[key], actual[key], replay, f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: expected {len(expected)} items, got {actual!r}"
        )
        for index, (exp, act) in enumerate(zip(expected, actual, strict=True)):
            match_json(exp, act, replay, f"{where}[{index}]")
        return
    assert expected == actual and type(expected) is type(actual), (
        f"{where}: documented {expected!r}, got {actual!r}"
    )


def replay_example(client: httpx.Client, example: Example, replay: Replay) -> httpx.Response:
    """Send the documented request and assert the documented response. Returns the response."""
    request = example.request
    method, target, _version = request.start_line.split(" ")
    headers = {name: _fill(value, replay) for name, value in request.headers}
    body = _fill(request.body, replay).encode("utf-8") if request.body else None
    response = client.request(method, _fill(target, replay), headers=headers, content=body)

    expected = example.response
    status = int(expected.start_line.split(" ")[1])
    where = f"docs line {example.line} ({request.start_line})"
    assert response.status_code == status, (
        f"{where}: documented {status}, got {response.status_code}: {response.text}"
    )
    for name, value in expected.headers:
        actual = response.headers.get(name)
        if placeholder := _PLACEHOLDER.match(value):
            assert actual, f"{where}: header {name} missing"
            replay.values[placeholder.group(1)] = actual
        else:
            assert actual == value, f"{where}: header {name}: documented {value!r}, got {actual!r}"
    if expected.body:
        match_json(json.loads(expected.body), response.json(), replay, where)
    else:
        assert not response.content, f"{where}: documented no body, got {response.text}"
    return response
