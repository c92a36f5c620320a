"""Small pieces shared by the REST handlers: the call context, JSON body parsing and the
`Date` header."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from emulators.sf_errors import ApiError


@dataclass
class Call:
    """One authenticated data-API request."""

    request: Request
    version: str
    user_id: str
    now: datetime
    fault: str | None  # "lock" when the fault switch chose it for this request

    @property
    def locked(self) -> bool:
        return self.fault == "lock"


async def read_json(request: Request) -> Any:
    """The body as JSON, or Salesforce's JSON_PARSER_ERROR (400)."""
    raw = await request.body()
    try:
        return json.loads(raw.decode("utf-8") if raw else "")
    except UnicodeDecodeError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Invalid UTF-8 start byte") from None
    except json.JSONDecodeError as error:
        shown = error.doc[error.pos] if error.pos < len(error.doc) else "EOF"
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character ('{shown}' (code {ord(shown) if len(shown) == 1 else -1})): "
            "expected a valid value (number, String, array, object, 'true', 'false' or 'null') "
            f"at [line:{error.lineno}, column:{error.colno}]",
        ) from None


async def read_object(request: Request) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject out of "
            f"{'START_ARRAY' if isinstance(body, list) else 'VALUE'} token at [line:1, column:1]",
        )
    return body


def lock_error_message(ids: list[str]) -> str:
    return f"unable to obtain exclusive access to this record or {len(ids)} records: " + ",".join(
        ids
    )


class DateHeaderMiddleware:
    """Pure ASGI middleware: every response says the emulator's time in its `Date` header.

    Salesforce's `Date` is the org's clock; clients use it as the time a query ran. The
    emulator's clock can be shifted (tests, the demo), so the header must come from that clock,
    not from the server's real one (uvicorn runs with ``date_header=False``). Whole seconds,
    rounded down, RFC 7231 format in GMT, as a real server sends it.
    """

    def __init__(self, app: Any, clock: Callable[[], datetime]):
        self.app = app
        self.clock = clock

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                stamp = email.utils.format_datetime(self.clock(), usegmt=True)
                headers.append((b"date", stamp.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)
