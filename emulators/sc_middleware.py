"""ASGI middleware of the Sales Connect emulator: fault injection and the request log.

Faults act on the wire, around the application: a 429/503 answers before the request is
processed; "slow" and "hang" hold the request before or after processing; "slow_body" dribbles
the response body. The test namespace and `/openapi.json` are never faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from emulators.sc_rules import ApiError
from emulators.sc_state import SalesConnectEmulator, rate_limited

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

_BODY_PIECES = 8


def error_response(error: ApiError) -> JSONResponse:
    body = error.envelope()
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class _Receiver:
    """Wraps `receive` so the middleware can watch for a disconnect while it holds a request,
    and still hand every body message to the application afterwards."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._buffer: list[Message] = []
        self._pending: asyncio.Future[Message] | None = None
        self.disconnected = False

    async def __call__(self) -> Message:
        if self._buffer:
            return self._buffer.pop(0)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return await pending
        return await self._receive()

    async def wait(self, seconds: float, still_current: Callable[[], bool]) -> bool:
        """Wait up to `seconds`; True when the client went away meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while still_current():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._receive())
            done, _ = await asyncio.wait({self._pending}, timeout=min(0.05, remaining))
            if done:
                message = self._pending.result()
                self._pending = None
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    return True
                self._buffer.append(message)
        return False

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                self._pending.exception()


class FaultMiddleware:
    def __init__(self, app: ASGIApp, emulator: SalesConnectEmulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        arrived = time.monotonic()
        status = 0

        recorded = False

        async def logged_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # logged before the client can have the whole answer (tests count requests)
                self.emulator.record(method, path, status, arrived)
                recorded = True
            await send(message)

        receiver = _Receiver(receive)
        try:
            if path.startswith("/__emulator__/") or path == "/openapi.json":
                await self.app(scope, receiver, logged_send)
            else:
                await self._faulted(scope, receiver, logged_send, method, path)
        finally:
            receiver.close()
            if not recorded:
                self.emulator.record(method, path, status, arrived)

    async def _faulted(
        self,
        scope: MutableMapping[str, Any],
        receiver: _Receiver,
        send: Send,
        method: str,
        path: str,
    ) -> None:
        rule = self.emulator.faults.take(method, path)
        if rule is None:
            await self.app(scope, receiver, send)
            return
        generation = self.emulator.generation

        def still_current() -> bool:
            return self.emulator.generation == generation

        if rule.fault == "rate_limit":
            await error_response(rate_limited(rule.retry_after))(scope, receiver, send)
            return
        if rule.fault == "unavailable":
            await error_response(_unavailable(rule.retry_after))(scope, receiver, send)
            return
        if rule.fault == "slow_body":
            await self.app(scope, receiver, _dribbling(send, rule.delay_seconds))
            return
        if rule.fault == "drop":
            await self._drop(scope, receiver, send, rule.phase)
            return
        # slow / hang
        if rule.phase == "before":
            if await receiver.wait(rule.delay_seconds, still_current):
                return  # the client gave up before we started: drop the request unprocessed
            await self.app(scope, receiver, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receiver, hold)
        if await receiver.wait(rule.delay_seconds, still_current):
            return  # processed, but the client never sees the answer
        for message in held:
            await send(message)

    async def _drop(
        self, scope: MutableMapping[str, Any], receiver: _Receiver, send: Send, phase: str
    ) -> None:
        """Close the connection with no answer: the response head goes out, then the request
        fails, so uvicorn cuts the connection and the client sees an incomplete response."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        if phase == "after":
            await self.app(scope, receiver, hold)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ConnectionDropped("fault: connection dropped on purpose")


class ConnectionDropped(Exception):
    """Raised to make the server cut a connection (the "drop" fault)."""


def _dribbling(send: Send, delay: float) -> Send:
    async def dribble(message: Message) -> None:
        if message["type"] != "http.response.body" or not message.get("body"):
            await send(message)
            return
        body: bytes = message["body"]
        size = max(1, -(-len(body) // _BODY_PIECES))
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            more = message.get("more_body", False) if last else True
            await send({"type": "http.response.body", "body": piece, "more_body": more})
            if not last:
                await asyncio.sleep(delay)

    return dribble


def _unavailable(retry_after: int | None) -> ApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(
        503,
        "unavailable",
        "the service is briefly unavailable; the request was not processed, try again",
        "transient",
        retryable=True,
        headers=headers,
    )
