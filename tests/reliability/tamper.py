"""A tampering reverse proxy on loopback, for responses the emulators never send.

The engine is connected to the proxy, the proxy forwards every request to the real emulator
(keeping the Host header, so the emulator's own URLs point back at the proxy), and a rule can
replace or rewrite one kind of response on the way back:

    proxy.add(Tamper(path="/query", transform=json_edit(lambda body: {**body, "done": False})))
    proxy.add(Tamper(path="/query", respond=raw(302, b"", {"location": "http://evil/"})))

`transform` sees the upstream answer (the request *was* processed upstream: a write happened),
`respond` answers instead of the upstream (nothing reached the emulator). Rules fire in order,
`times` bounds how often (None = every matching request). `proxy.seen` lists every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# status, headers, body -> status, headers, body
Transform = Callable[[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
Responder = Callable[[], tuple[int, dict[str, str], bytes]]

_HOP_HEADERS = {
    "content-length",
    "transfer-encoding",
    "connection",
    "content-encoding",
    "keep-alive",
}


@dataclass
class Tamper:
    path: str  # substring of the request path
    method: str | None = None
    query: str | None = None  # substring of the decoded query string
    times: int | None = 1
    transform: Transform | None = None
    respond: Responder | None = None
    fired: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method and method != self.method:
            return False
        if self.path not in path:
            return False
        return self.query is None or self.query in query


def json_edit(edit: Callable[[Any], Any], *, status: int | None = None) -> Transform:
    """A transform that rewrites the JSON body with `edit` (which may mutate and return it)."""

    def transform(code: int, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        data = json.loads(body)
        new = edit(data)
        data = data if new is None else new
        headers = {**headers, "content-type": "application/json"}
        return status or code, headers, json.dumps(data).encode()

    return transform


def replace_with(code: int, body: bytes | str, headers: dict[str, str] | None = None) -> Transform:
    """A transform that throws the upstream answer away (after the upstream processed it)."""
    payload = body.encode() if isinstance(body, str) else body

    def transform(_code: int, _headers: dict[str, str], _body: bytes) -> tuple[int, dict, bytes]:
        return code, dict(headers or {"content-type": "application/json"}), payload

    return transform


def raw(code: int, body: bytes | str, headers: dict[str, str] | None = None) -> Responder:
    """A responder: answer without forwarding (the upstream never sees the request)."""
    payload = body.encode() if isinstance(body, str) else body
    return lambda: (code, dict(headers or {"content-type": "application/json"}), payload)


@dataclass
class TamperProxy:
    upstream: str
    rules: list[Tamper] = field(default_factory=list)
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    def add(self, rule: Tamper) -> Tamper:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def _take(self, method: str, path: str, query: str) -> Tamper | None:
        with self._lock:
            self.seen.append((method, path, query))
            for rule in self.rules:
                if rule.matches(method, path, query):
                    rule.fired += 1
                    return rule
        return None

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            from urllib.parse import unquote_plus

            body = await request.body()
            path = request.url.path
            query = unquote_plus(request.url.query)
            rule = self._take(request.method, path, query)
            if rule is not None and rule.respond is not None:
                code, headers, payload = rule.respond()
                return Response(payload, code, headers)
            headers = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in request.headers.raw
                if k.decode("latin-1").lower() not in _HOP_HEADERS | {"accept-encoding"}
            ]
            target = path + (f"?{request.url.query}" if request.url.query else "")
            async with httpx.AsyncClient(
                base_url=self.upstream, timeout=120, verify=False
            ) as client:
                answer = await client.request(request.method, target, headers=headers, content=body)
            code = answer.status_code
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            payload = answer.content
            if rule is not None and rule.transform is not None:
                code, out, payload = rule.transform(code, out, payload)
            return Response(payload, code, out)

        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
