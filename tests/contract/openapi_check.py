"""Validate a live response against the OpenAPI document the emulator serves (jsonschema)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import httpx
import jsonschema

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATETIME.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    date.fromisoformat(value)
    return True


def _operation(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    root = doc["servers"][0]["url"]
    assert path.startswith(root), f"{path} is outside the API root {root}"
    relative = path[len(root) :]
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, relative) and method.lower() in item:
            return item[method.lower()]
    raise AssertionError(f"{method} {relative} is not in the OpenAPI document")


def validate_response(doc: dict[str, Any], response: httpx.Response) -> None:
    """Assert the status is documented for the operation and the body fits its schema."""
    request = response.request
    operation = _operation(doc, request.url.path, request.method)
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{request.method} {request.url.path}: status {status} is not documented"
    )
    declared = operation["responses"][status]
    media = response.headers.get("content-type", "").split(";")[0]
    assert media in declared["content"], f"undocumented content type {media}"
    schema = {**declared["content"][media]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(response.json())
    for name, header in declared.get("headers", {}).items():
        if "$ref" in header:
            header = doc["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
        if header.get("required"):
            assert name in response.headers, f"required header {name} missing"
