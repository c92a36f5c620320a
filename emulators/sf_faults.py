"""Fault injection for the Salesforce emulator, switched by ``POST /__emulator__/faults``.

The JSON body (every key optional; ``{}`` switches faults off)::

    {
      "kinds": ["429", "503_html"],   # which faults; one is drawn per injected request
      "rate": 0.5,                    # chance that a matching request gets a fault (default 1.0)
      "count": 3,                     # stop after this many injections (default: no end)
      "skip": 1,                      # let the first N matching requests through untouched
      "path_contains": "/query",      # only requests whose path contains this text
      "methods": ["GET"],             # only these HTTP methods
      "seed": 7,                      # seeds the draws: same requests, same faults
      "retry_after": 2,               # seconds, for "429"
      "hang_seconds": 30,             # for "hang"
      "drip_seconds": 1.0,            # pause between body chunks, for "drip"
      "drip_chunk_bytes": 64
    }

Kinds:

- ``429``: 429 with ``Retry-After`` and ``[{"errorCode": "TOO_MANY_REQUESTS"}]``; not processed.
- ``503``: 503 with ``[{"errorCode": "SERVER_UNAVAILABLE"}]``; not processed.
- ``503_html``: 503 with Salesforce's HTML maintenance page (not JSON); not processed.
- ``500``: 500 ``UNKNOWN_EXCEPTION`` with an ErrorId; not processed.
- ``hang``: waits ``hang_seconds`` before handling (a client that gave up may still see its
  write applied, as with a real slow server). ``SalesforceEmulator.release_hangs()`` ends the
  wait of the plan's held requests at once (and the plan's later hangs do not wait).
- ``drip``: handles the request, then sends the body in small chunks, slowly.
- ``reset``: the connection drops mid-response before the request is handled (nothing written).
- ``reset_after``: the request is handled (writes applied), then the connection drops
  mid-response: the client cannot know the outcome.
- ``lock``: writes only (POST/PATCH/DELETE under /services/data): UNABLE_TO_LOCK_ROW, nothing
  written (400 for one record; per-record errors in a collection).
- ``expire_token``: the request's access token expires now: 401 INVALID_SESSION_ID (a refresh
  works).
- ``limit``: the daily API allowance is used up now: 403 REQUEST_LIMIT_EXCEEDED on this and
  every later data request until 24 h pass on the emulator clock (or reset).

Faults never touch ``/__emulator__/``. A kind that cannot apply to a request (``lock`` on a GET,
``expire_token`` on the token endpoint) is not drawn for it and uses up nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "429", "503", "503_html", "500", "hang", "drip", "reset", "reset_after", "lock",
    "expire_token", "limit",
)  # fmt: skip
DATA_PREFIX = "/services/data/"
WRITE_METHODS = {"POST", "PATCH", "DELETE", "PUT"}


@dataclass
class FaultPlan:
    kinds: tuple[str, ...] = ()
    rate: float = 1.0
    count: int | None = None
    skip: int = 0
    path_contains: str | None = None
    methods: tuple[str, ...] | None = None
    seed: int | None = None
    retry_after: int = 1
    hang_seconds: float = 30.0
    drip_seconds: float = 1.0
    drip_chunk_bytes: int = 64
    injected: int = 0
    skipped: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_json(cls, body: Any) -> FaultPlan:
        """Build a plan from the endpoint's JSON, or raise ValueError saying what is wrong."""
        if not isinstance(body, dict):
            raise ValueError("the faults body must be a JSON object")
        known = {
            "kinds", "rate", "count", "skip", "path_contains", "methods", "seed",
            "retry_after", "hang_seconds", "drip_seconds", "drip_chunk_bytes",
        }  # fmt: skip
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(unknown)}")
        kinds = body.get("kinds", [])
        if not isinstance(kinds, list) or any(k not in KINDS for k in kinds):
            raise ValueError(f"kinds must be a list drawn from {', '.join(KINDS)}")
        rate = body.get("rate", 1.0)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError("rate must be a number between 0 and 1")
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a non-negative integer")
        methods = body.get("methods")
        if methods is not None and not (
            isinstance(methods, list) and all(isinstance(m, str) for m in methods)
        ):
            raise ValueError("methods must be a list of HTTP method names")
        seed = body.get("seed")
        plan = cls(
            kinds=tuple(kinds),
            rate=float(rate),
            count=count,
            skip=int(body.get("skip", 0)),
            path_contains=body.get("path_contains"),
            methods=tuple(m.upper() for m in methods) if methods else None,
            seed=seed,
            retry_after=int(body.get("retry_after", 1)),
            hang_seconds=float(body.get("hang_seconds", 30.0)),
            drip_seconds=float(body.get("drip_seconds", 1.0)),
            drip_chunk_bytes=max(1, int(body.get("drip_chunk_bytes", 64))),
        )
        plan.rng = random.Random(seed)
        return plan

    def describe(self) -> dict:
        return {
            "kinds": list(self.kinds),
            "rate": self.rate,
            "count": self.count,
            "skip": self.skip,
            "path_contains": self.path_contains,
            "methods": list(self.methods) if self.methods else None,
            "seed": self.seed,
            "injected": self.injected,
        }


def applicable_kinds(kinds: tuple[str, ...], method: str, path: str, has_token: bool) -> list:
    data = path.startswith(DATA_PREFIX)
    out = []
    for kind in kinds:
        if kind == "lock" and not (data and method in WRITE_METHODS and "/query" not in path):
            continue
        if kind in ("limit",) and not data:
            continue
        if kind == "expire_token" and not has_token:
            continue
        out.append(kind)
    return out


class FaultSwitch:
    """The active plan; ``draw`` decides, request by request, which fault (if any) applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan: FaultPlan | None = None

    def set(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self.plan = plan if plan and plan.kinds else None

    def release_hangs(self) -> None:
        """Let the requests the current plan holds ("hang") go on now, and hold no more."""
        with self._lock:
            if self.plan is not None:
                self.plan.released.set()

    def draw(self, method: str, path: str, has_token: bool) -> tuple[str, FaultPlan] | None:
        with self._lock:
            plan = self.plan
            if plan is None or path.startswith("/__emulator__"):
                return None
            if plan.count is not None and plan.injected >= plan.count:
                return None
            if plan.path_contains and plan.path_contains not in path:
                return None
            if plan.methods and method.upper() not in plan.methods:
                return None
            kinds = applicable_kinds(plan.kinds, method.upper(), path, has_token)
            if not kinds:
                return None
            if plan.skipped < plan.skip:
                plan.skipped += 1
                return None
            if plan.rng.random() >= plan.rate:
                return None
            kind = kinds[0] if len(kinds) == 1 else plan.rng.choice(kinds)
            plan.injected += 1
            return kind, plan


# ----------------------------------------------------------------------------- ASGI layer

# Kinds the REST handlers carry out themselves (they need the token, the counter, the rows).
HANDLER_KINDS = {"lock", "expire_token", "limit"}
FAULT_STATE_KEY = "emulator_fault"

_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
    b"<h1>Service Unavailable</h1><p>Salesforce is down for maintenance or is temporarily "
    b"unavailable. Please try again later.</p></body></html>"
)


class DeliberateConnectionDrop(Exception):
    """Raised after a partial response so that uvicorn closes the connection mid-body."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DeliberateConnectionDrop)


def install_log_filter() -> None:
    """Keep deliberate connection drops out of uvicorn's error log."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def _json_body(entries: list[dict]) -> bytes:
    return json.dumps(entries).encode()


class FaultMiddleware:
    """Pure ASGI middleware: draws a fault per request and plays the transport-level ones."""

    def __init__(self, app: Any, switch: FaultSwitch):
        self.app = app
        self.switch = switch

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        drawn = self.switch.draw(scope["method"], scope["path"], "authorization" in headers)
        if drawn is None:
            await self.app(scope, receive, send)
            return
        kind, plan = drawn
        if kind in HANDLER_KINDS:
            scope.setdefault("state", {})[FAULT_STATE_KEY] = kind
            await self.app(scope, receive, send)
        elif kind == "429":
            body = _json_body(
                [{"message": "Too many requests, retry later", "errorCode": "TOO_MANY_REQUESTS"}]
            )
            await _respond(send, 429, body, "application/json", {"retry-after": plan.retry_after})
        elif kind == "503":
            body = _json_body(
                [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
            )
            await _respond(send, 503, body, "application/json")
        elif kind == "503_html":
            await _respond(send, 503, _MAINTENANCE_PAGE, "text/html;charset=UTF-8")
        elif kind == "500":
            error_id = f"{plan.rng.randrange(10**9)}-{plan.rng.randrange(10**5)}"
            message = (
                "An unexpected error occurred. Please include this ErrorId if you contact "
                f"support: {error_id} (-1)"
            )
            body = _json_body([{"message": message, "errorCode": "UNKNOWN_EXCEPTION"}])
            await _respond(send, 500, body, "application/json")
        elif kind == "hang":
            # Hold the request (body already received) until the time is up or the client
            # leaves; then handle it anyway, as a slow server would.
            messages = await _read_request(receive)
            await _wait_for_disconnect(receive, plan.hang_seconds, plan.released)
            await self.app(scope, _replay(messages, receive), send)
        elif kind == "reset":
            await _drop(send, b'[{"message":')
        elif kind == "reset_after":
            status, hdrs, body = await _capture(self.app, scope, receive)
            await _drop(send, body[: len(body) // 2], status, hdrs)
        elif kind == "drip":
            status, hdrs, body = await _capture(self.app, scope, receive)
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            step = plan.drip_chunk_bytes
            for start in range(0, len(body), step):
                await send(
                    {"type": "http.response.body", "body": body[start : start + step],
                     "more_body": True}
                )  # fmt: skip
                if await _wait_for_disconnect(receive, plan.drip_seconds):
                    return  # the client gave up; stop dripping
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_request(receive: Any) -> list[dict]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[dict], receive: Any) -> Any:
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


async def _wait_for_disconnect(
    receive: Any, seconds: float, released: threading.Event | None = None
) -> bool:
    """Sleep up to ``seconds`` (or until ``released`` is set); True when the client
    disconnected meanwhile.

    Only call once the request body has been read: then ``receive`` yields nothing but
    ``http.disconnect``.
    """

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    if released is None:
        try:
            await asyncio.wait_for(disconnected(), timeout=seconds)
        except TimeoutError:
            return False
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    waiter = asyncio.ensure_future(disconnected())
    try:
        while not released.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            done, _ = await asyncio.wait({waiter}, timeout=min(0.02, remaining))
            if done:
                return True
        return False
    finally:
        waiter.cancel()


async def _respond(
    send: Any, status: int, body: bytes, content_type: str, extra: dict | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    for key, value in (extra or {}).items():
        headers.append((key.encode(), str(value).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _capture(app: Any, scope: dict, receive: Any) -> tuple[int, list, bytes]:
    status = 500
    headers: list = []
    chunks: list[bytes] = []

    async def capture_send(message: dict) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture_send)
    return status, headers, b"".join(chunks)


async def _drop(send: Any, partial: bytes, status: int = 200, headers: list | None = None) -> None:
    """Promise a longer body than is sent, then abort: the client sees the connection die."""
    kept = [(k, v) for k, v in (headers or []) if k.lower() != b"content-length"]
    kept.append((b"content-length", b"%d" % (len(partial) + 4096)))
    if not any(k.lower() == b"content-type" for k, _ in kept):
        kept.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": partial, "more_body": True})
    raise DeliberateConnectionDrop("connection dropped on purpose (fault injection)")
