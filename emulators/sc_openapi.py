"""The OpenAPI 3.1 document of the Sales Connect contract, built from the same limits the
emulator enforces (`sc_rules.py`), served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from emulators.sc_rules import (
    API_ROOT,
    ASSIGNEE_ID_MAX,
    BATCH_MAX,
    CATEGORIES,
    CURSOR_MAX,
    DETAILS_MAX,
    IDEMPOTENCY_KEY_PATTERN,
    IF_MATCH_PATTERN,
    NAME_MAX,
    PAGE_DEFAULT,
    PAGE_MAX,
    PERSON_EMAIL_MAX,
    PERSON_NAME_MAX,
    PRIORITIES,
    STATUSES,
    TASK_TYPES,
    TOKEN_PATH,
)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref("Error")}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Invalid input (category validation)",
        401: "Missing, invalid or expired access token (category auth)",
        404: "No such task, or it was deleted (category not_found)",
        412: "If-Match names another version; details.current holds the task (category conflict)",
        413: "Body too large (category validation)",
        415: "Body is not application/json (category validation)",
        422: "Idempotency-Key reused with a different task (category validation)",
    }
    out = {str(code): _error(texts[code]) for code in statuses}
    out["429"] = _error("Rate limited; wait Retry-After seconds", retry_after=True)
    out["503"] = _error("Briefly unavailable; the request was not processed", retry_after=True)
    return out


def _ok(description: str, schema: str, *, status: str = "200", etag: bool = False) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref(schema)}},
    }
    if etag:
        response["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
    return {status: response}


def _task_properties() -> dict[str, Any]:
    return {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "status": {"type": "string", "enum": list(STATUSES)},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "due_date": _nullable({"type": "string", "format": "date"}),
        "details": {"type": "string", "maxLength": DETAILS_MAX},
        "type": {"type": "string", "enum": list(TASK_TYPES)},
        "person": _nullable(_ref("Person")),
        "assignee_id": {"type": "string", "minLength": 1, "maxLength": ASSIGNEE_ID_MAX},
    }


def _schemas() -> dict[str, Any]:
    writable = _task_properties()
    task_props = {
        "id": {"type": "string"},
        **writable,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "version": {"type": "integer", "minimum": 1},
        "deleted_at": _nullable({"type": "string", "format": "date-time"}),
    }
    time_or_null = _nullable({"type": "string", "format": "date-time"})
    return {
        "Error": {
            "type": "object",
            "required": ["code", "message", "category", "retryable", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "category": {"type": "string", "enum": list(CATEGORIES)},
                "retryable": {"type": "boolean"},
                "details": {"type": "object"},
            },
        },
        "OAuthError": {
            "allOf": [
                _ref("Error"),
                {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "properties": {
                        "error": {
                            "type": "string",
                            "enum": [
                                "invalid_request",
                                "invalid_client",
                                "unsupported_grant_type",
                            ],
                        },
                        "error_description": {"type": "string"},
                    },
                },
            ]
        },
        "TokenRequest": {
            "type": "object",
            "required": ["grant_type", "client_id", "client_secret"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string", "minLength": 1},
                "client_secret": {"type": "string"},
            },
        },
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string", "enum": ["bearer"]},
                "expires_in": {"type": "integer", "minimum": 1},
            },
        },
        "Me": {
            "type": "object",
            "required": ["id", "username", "name"],
            "properties": {
                "id": {"type": "string"},
                "username": {"type": "string"},
                "name": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "Person": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": PERSON_NAME_MAX},
                "email": _nullable(
                    {"type": "string", "minLength": 1, "maxLength": PERSON_EMAIL_MAX}
                ),
            },
            "additionalProperties": False,
        },
        "Task": {
            "type": "object",
            "required": list(task_props),
            "properties": task_props,
            "additionalProperties": False,
        },
        "TaskCreate": {
            "type": "object",
            "required": ["name"],
            "properties": writable,
            "additionalProperties": False,
        },
        "TaskChanges": {
            "type": "object",
            "minProperties": 1,
            "properties": writable,
            "additionalProperties": False,
        },
        "TaskPage": {
            "type": "object",
            "required": ["tasks", "next_cursor"],
            "properties": {
                "tasks": {"type": "array", "items": _ref("Task")},
                "next_cursor": _nullable({"type": "string"}),
            },
            "additionalProperties": False,
        },
        "BatchOperation": {
            "type": "object",
            "required": ["op"],
            "properties": {
                "op": {"type": "string", "enum": ["create", "update", "delete"]},
                "id": {"type": "string"},
                "if_match": {"type": "integer", "minimum": 1},
                "idempotency_key": {"type": "string"},
                "task": {"type": "object"},
                "changes": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "BatchRequest": {
            "type": "object",
            "required": ["operations"],
            "properties": {
                "operations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": BATCH_MAX,
                    "items": _ref("BatchOperation"),
                }
            },
            "additionalProperties": False,
        },
        "BatchResult": {
            "type": "object",
            "required": ["ok", "status", "task", "error"],
            "properties": {
                "ok": {"type": "boolean"},
                "status": {"type": "integer"},
                "task": _nullable(_ref("Task")),
                "error": _nullable(_ref("Error")),
            },
            "additionalProperties": False,
        },
        "BatchResponse": {
            "type": "object",
            "required": ["results"],
            "properties": {"results": {"type": "array", "items": _ref("BatchResult")}},
            "additionalProperties": False,
        },
        "Settings": {
            "type": "object",
            "required": ["salesforce_sync_enabled", "enabled_at", "updated_at"],
            "properties": {
                "salesforce_sync_enabled": {"type": "boolean"},
                "enabled_at": time_or_null,
                "updated_at": time_or_null,
            },
            "additionalProperties": False,
        },
        "SettingsUpdate": {
            "type": "object",
            "required": ["salesforce_sync_enabled"],
            "properties": {
                "salesforce_sync_enabled": {"type": "boolean"},
                "enabled_at": time_or_null,
                "updated_at": time_or_null,
            },
            "additionalProperties": False,
        },
    }


def _parameters() -> dict[str, Any]:
    return {
        "TaskId": {
            "name": "task_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": 'The version the change applies to, e.g. "3"; * for any.',
            "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
        },
        "IncludeDeleted": {
            "name": "include_deleted",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
        },
    }


def _paths() -> dict[str, Any]:
    read = _errors(401)
    task_id = {"$ref": "#/components/parameters/TaskId"}
    if_match = {"$ref": "#/components/parameters/IfMatch"}
    include_deleted = {"$ref": "#/components/parameters/IncludeDeleted"}
    token_error = {"content": {JSON: {"schema": _ref("OAuthError")}}}
    return {
        TOKEN_PATH: {
            "post": {
                "operationId": "getToken",
                "summary": "Client-credentials token",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("TokenRequest")}
                    },
                },
                "responses": {
                    **_ok("An access token", "Token"),
                    "400": {"description": "Malformed request or grant type", **token_error},
                    "401": {"description": "Unknown client or wrong secret", **token_error},
                    "429": _error("Rate limited", retry_after=True),
                    "503": _error("Briefly unavailable", retry_after=True),
                },
            }
        },
        "/me": {
            "get": {
                "operationId": "getMe",
                "summary": "The calling user",
                "responses": {**_ok("The user", "Me"), **read},
            }
        },
        "/settings": {
            "get": {
                "operationId": "getSettings",
                "responses": {**_ok("The settings", "Settings"), **read},
            },
            "put": {
                "operationId": "putSettings",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("SettingsUpdate")}},
                },
                "responses": {**_ok("The new settings", "Settings"), **_errors(400, 401, 415)},
            },
        },
        "/tasks": {
            "get": {
                "operationId": "listTasks",
                "summary": "Tasks ordered by (updated_at, id), one page at a time",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": PAGE_MAX,
                            "default": PAGE_DEFAULT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": CURSOR_MAX},
                    },
                    {
                        "name": "updated_since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    include_deleted,
                ],
                "responses": {**_ok("One page", "TaskPage"), **_errors(400, 401)},
            },
            "post": {
                "operationId": "createTask",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("TaskCreate")}},
                },
                "responses": {
                    "201": {
                        "description": "Created (or the task an Idempotency-Key already made)",
                        "headers": {
                            "ETag": {"$ref": "#/components/headers/ETag"},
                            "Location": {"schema": {"type": "string"}, "required": True},
                        },
                        "content": {JSON: {"schema": _ref("Task")}},
                    },
                    **_errors(400, 401, 413, 415, 422),
                },
            },
        },
        "/tasks/batch": {
            "post": {
                "operationId": "batchTasks",
                "summary": "Up to 200 creates, updates and deletes; one result per operation",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("BatchRequest")}},
                },
                "responses": {
                    **_ok("Per-operation results, in order", "BatchResponse"),
                    **_errors(400, 401, 413, 415),
                },
            }
        },
        "/tasks/{task_id}": {
            "parameters": [task_id],
            "get": {
                "operationId": "getTask",
                "parameters": [include_deleted],
                "responses": {**_ok("The task", "Task", etag=True), **_errors(400, 401, 404)},
            },
            "patch": {
                "operationId": "updateTask",
                "parameters": [if_match],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("TaskChanges")}},
                },
                "responses": {
                    **_ok("The updated task", "Task", etag=True),
                    **_errors(400, 401, 404, 412, 413, 415),
                },
            },
            "delete": {
                "operationId": "deleteTask",
                "parameters": [if_match],
                "responses": {
                    **_ok("The tombstone", "Task", etag=True),
                    **_errors(400, 401, 404, 412),
                },
            },
        },
    }


def build_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sales Connect tasks API (reminder-sync contract)",
            "version": "1.0.0",
            "description": "See docs/salesconnect-api.md in the reminder-sync project.",
        },
        "servers": [{"url": API_ROOT}],
        "security": [{"oauth2": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "headers": {
                "ETag": {
                    "description": 'The task version, quoted: "3"',
                    "schema": {"type": "string"},
                    "required": True,
                },
                "RetryAfter": {
                    "description": "Seconds to wait before the next request",
                    "schema": {"type": "integer", "minimum": 0},
                    "required": False,
                },
            },
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": API_ROOT + TOKEN_PATH,
                            "scopes": {},
                        }
                    },
                }
            },
        },
    }
