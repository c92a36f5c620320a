"""Small pieces shared by the REST handlers: the call context and JSON body parsing."""

from __future__ import annotations

import json
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
