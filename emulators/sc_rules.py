"""The Sales Connect contract's limits, error envelope and input validation.

One place for every rule an input must pass, so the HTTP layer, the seeding API and the OpenAPI
document (`sc_openapi.py`) agree on the same numbers. Validation never raises anything but
`ApiError`, which the HTTP layer turns into the error envelope (a 400, never a 500).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

API_ROOT = "/api/v1"
TOKEN_PATH = "/oauth/token"  # under API_ROOT

NAME_MAX = 500
DETAILS_MAX = 65_535
PERSON_NAME_MAX = 255
PERSON_EMAIL_MAX = 254
ASSIGNEE_ID_MAX = 64
TASK_ID_MAX = 64
PAGE_DEFAULT = 100
PAGE_MAX = 200
BATCH_MAX = 200
CURSOR_MAX = 1024
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_TTL_HOURS = 24
TOMBSTONE_DAYS = 15

STATUSES = ("open", "complete")
PRIORITIES = ("normal", "high")
TASK_TYPES = ("todo", "call", "email", "other")
CATEGORIES = ("auth", "validation", "not_found", "conflict", "rate_limit", "transient", "internal")

# Writable task fields; everything else in a task is set by the server.
WRITABLE_FIELDS = ("name", "status", "priority", "due_date", "details", "type", "person")
CREATE_FIELDS = (*WRITABLE_FIELDS, "assignee_id")

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
IF_MATCH_PATTERN = r'^(\*|"[0-9]{1,15}"|[0-9]{1,15})$'
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_IF_MATCH = re.compile(IF_MATCH_PATTERN)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ApiError(Exception):
    """An error the contract describes: rendered as the envelope by the HTTP layer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        category: str,
        *,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.category = category
        self.retryable = retryable
        self.details = details or {}
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "category": self.category,
            "retryable": self.retryable,
            "details": self.details,
        }


def invalid(message: str, *, field: str | None = None, code: str = "invalid_request") -> ApiError:
    details = {"field": field} if field else {}
    return ApiError(400, code, message, "validation", details=details)


# ---------------------------------------------------------------------------------------------
# Time


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2025-03-03T09:00:00.000Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with an offset, as an aware UTC datetime."""
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise invalid(
            f"{field} must be an RFC 3339 date-time with a time zone, e.g. 2025-03-03T09:00:00Z",
            field=field,
        )
    text = value.upper().replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds only
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{field} is not a valid date-time", field=field) from None


def parse_date(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str) or not _DATE.match(value):
        raise invalid(f"{field} must be a date YYYY-MM-DD or null", field=field)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{field} is not a calendar date: {value}", field=field) from None
    return value


# ---------------------------------------------------------------------------------------------
# Task fields


def _text(value: Any, field: str, *, minimum: int, maximum: int) -> str:
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string", field=field)
    if _SURROGATE.search(value):
        raise invalid(f"{field} contains an unpaired surrogate", field=field)
    if len(value) < minimum:
        raise invalid(f"{field} must not be empty", field=field)
    if len(value) > maximum:
        raise invalid(
            f"{field} is {len(value)} characters; the limit is {maximum}",
            field=field,
            code="too_long",
        )
    return value


def _choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid(f"{field} must be one of: {', '.join(allowed)}", field=field)
    return value


def _person(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("person must be an object or null", field="person")
    unknown = sorted(set(value) - {"name", "email"})
    if unknown:
        raise invalid(f"person has unknown fields: {', '.join(unknown)}", field="person")
    if "name" not in value:
        raise invalid("person.name is required", field="person.name")
    name = _text(value["name"], "person.name", minimum=1, maximum=PERSON_NAME_MAX)
    email = value.get("email")
    if email is not None:
        email = _text(email, "person.email", minimum=1, maximum=PERSON_EMAIL_MAX)
    return {"name": name, "email": email}


def _field(name: str, value: Any) -> Any:
    if name == "name":
        return _text(value, "name", minimum=1, maximum=NAME_MAX)
    if name == "status":
        return _choice(value, "status", STATUSES)
    if name == "priority":
        return _choice(value, "priority", PRIORITIES)
    if name == "due_date":
        return parse_date(value, "due_date")
    if name == "details":
        return _text(value, "details", minimum=0, maximum=DETAILS_MAX)
    if name == "type":
        return _choice(value, "type", TASK_TYPES)
    if name == "person":
        return _person(value)
    if name == "assignee_id":
        return _text(value, "assignee_id", minimum=1, maximum=ASSIGNEE_ID_MAX)
    raise invalid(f"unknown field {name}", field=name)


def _check_object(body: Any, what: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(f"{what} must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(
            f"{what} has unknown or read-only fields: {', '.join(unknown)}",
            field=unknown[0],
        )
    return body


def validate_create(body: Any) -> dict[str, Any]:
    """A task to create: `name` is required; the rest have defaults. Returns clean values."""
    body = _check_object(body, "the task", CREATE_FIELDS)
    if "name" not in body:
        raise invalid("name is required", field="name")
    clean = {
        "status": "open",
        "priority": "normal",
        "due_date": None,
        "details": "",
        "type": "todo",
        "person": None,
    }
    for name, value in body.items():
        clean[name] = _field(name, value)
    return clean


def validate_changes(body: Any) -> dict[str, Any]:
    """A partial update: at least one writable field (plus `assignee_id`)."""
    body = _check_object(body, "the changes", CREATE_FIELDS)
    if not body:
        raise invalid("the changes must name at least one field")
    return {name: _field(name, value) for name, value in body.items()}


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header expects; None when absent or `*` (any version)."""
    if value is None:
        return None
    value = value.strip()
    if not _IF_MATCH.match(value):
        raise invalid(
            'If-Match must be a task version such as "3" (or * for any)',
            field="If-Match",
        )
    if value == "*":
        return None
    return int(value.strip('"'))


def check_idempotency_key(value: str) -> str:
    if not _IDEMPOTENCY_KEY.match(value):
        raise invalid(
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters",
            field="Idempotency-Key",
        )
    return value


def parse_bool(value: str, field: str) -> bool:
    if value not in ("true", "false"):
        raise invalid(f"{field} must be true or false", field=field)
    return value == "true"


def parse_limit(value: str | None) -> int:
    if value is None:
        return PAGE_DEFAULT
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= PAGE_MAX:
        raise invalid(f"limit must be an integer from 1 to {PAGE_MAX}", field="limit")
    return int(value)
