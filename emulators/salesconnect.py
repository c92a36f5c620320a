"""Sales Connect emulator: the contract of docs/salesconnect-api.md on a real HTTP server.

    app = create_app()                    # a Starlette app; serve it with emulators.server
    emulator = app.state.emulator         # seeding API: add_task, tasks, delete_task, now, ...

Every input is validated (a 400 with the error envelope, never a 500); the test namespace
`/__emulator__/` (clock, faults, reset) and the OpenAPI document (`/openapi.json`) sit at the
server root, the API under `/api/v1`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.sc_middleware import FaultMiddleware, error_response
from emulators.sc_openapi import build_openapi
from emulators.sc_rules import (
    API_ROOT,
    BATCH_MAX,
    TOKEN_PATH,
    ApiError,
    check_idempotency_key,
    invalid,
    parse_bool,
    parse_if_match,
    parse_limit,
    parse_time,
)
from emulators.sc_state import SalesConnectConfig, SalesConnectEmulator

__all__ = ["SalesConnectConfig", "SalesConnectEmulator", "create_app"]

_MAX_BODY = 32 * 1024 * 1024
_BATCH_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "op": (str,),
    "id": (str,),
    "if_match": (int, float),
    "idempotency_key": (str,),
    "task": (dict,),
    "changes": (dict,),
}
_TOKEN_PARAMETERS = frozenset({"grant_type", "client_id", "client_secret", "scope"})
_BATCH_OP_KEYS = {
    "create": {"op", "idempotency_key", "task"},
    "update": {"op", "id", "if_match", "changes"},
    "delete": {"op", "id", "if_match"},
}


def create_app(config: SalesConnectConfig | None = None) -> Starlette:
    emulator = SalesConnectEmulator(config)
    api = _Api(emulator)
    root = API_ROOT
    routes = [
        _route(root + TOKEN_PATH, POST=api.token),
        _route(root + "/me", GET=api.me),
        _route(root + "/settings", GET=api.get_settings, PUT=api.put_settings),
        _route(root + "/tasks", GET=api.list_tasks, POST=api.create_task),
        _route(root + "/tasks/batch", POST=api.batch),
        _route(
            root + "/tasks/{task_id}",
            GET=api.get_task,
            PATCH=api.patch_task,
            DELETE=api.delete_task,
        ),
        _route("/openapi.json", GET=api.openapi),
        _route("/__emulator__/clock", GET=api.clock, POST=api.clock),
        _route("/__emulator__/faults", GET=api.faults, POST=api.faults),
        _route("/__emulator__/reset", POST=api.reset),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(FaultMiddleware, emulator=emulator)],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.emulator = emulator
    return app


Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, **handlers: Endpoint) -> Route:
    """One route per path, so a 405 lists every method of the path in `Allow`."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


# ---------------------------------------------------------------------------------------------
# Error rendering


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not supported on {request.url.path}",
            "validation",
            headers=dict(exc.headers or {}),
        )
    elif exc.status_code == 404:
        error = ApiError(404, "not_found", f"no resource at {request.url.path}", "not_found")
    else:
        error = ApiError(exc.status_code, "invalid_request", str(exc.detail), "validation")
    return error_response(error)


async def _internal_error(request: Request, exc: Exception) -> Response:
    error = ApiError(500, "internal", "the server failed; please report this", "internal")
    return error_response(error)


# ---------------------------------------------------------------------------------------------
# Request helpers


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _read_json(request: Request) -> Any:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send the body as application/json", "validation"
        )
    body = await _read_body(request)
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_json_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid("the body is not valid JSON", code="invalid_json") from None


async def _read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise ApiError(413, "payload_too_large", "the body is too large", "validation")
    return body


def _query(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise invalid(f"{name} is given more than once", field=name)
    return values[0] if values else None


def _task_response(task: dict[str, Any], status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(
        task, status_code=status, headers={"ETag": f'"{task["version"]}"', **headers}
    )


# ---------------------------------------------------------------------------------------------
# Endpoints


class _Api:
    def __init__(self, emulator: SalesConnectEmulator) -> None:
        self.emulator = emulator
        self._openapi = build_openapi()

    def _user(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "missing_token",
                "send Authorization: Bearer <access token> (get one from the token endpoint)",
                "auth",
                headers={"WWW-Authenticate": 'Bearer realm="salesconnect"'},
            )
        user_id = self.emulator.user_for_token(token.strip())
        self.emulator.check_rate(user_id)
        return user_id

    # -- auth ---------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            return JSONResponse(
                self.emulator.issue_token(*await self._client_credentials(request)),
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        except ApiError as error:
            # RFC 6749 section 5.2 fields beside the envelope, for standard OAuth clients.
            body = {"error": error.code, "error_description": error.message, **error.envelope()}
            headers = {"Cache-Control": "no-store"}
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="salesconnect"'
            return JSONResponse(body, status_code=error.status, headers=headers)

    async def _client_credentials(self, request: Request) -> tuple[str, str]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise _oauth_error(
                "invalid_request", "send the form as application/x-www-form-urlencoded"
            )
        try:
            pairs = parse_qsl(
                (await _read_body(request)).decode("utf-8"),
                keep_blank_values=True,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError):
            raise _oauth_error("invalid_request", "the form body is not valid") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name not in _TOKEN_PARAMETERS:
                continue  # RFC 6749 section 3.2: unrecognised parameters are ignored
            if name in form:
                raise _oauth_error("invalid_request", f"{name} is given more than once")
            form[name] = value
        grant = form.get("grant_type")
        if not grant:
            raise _oauth_error("invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise _oauth_error("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(request.headers.get("authorization", ""))
        if basic is not None:
            if client_id is not None and client_id != basic[0]:
                raise _oauth_error("invalid_request", "client_id differs from the Basic header")
            client_id, secret = basic
        if not client_id or secret is None:
            raise _oauth_error("invalid_request", "client_id and client_secret are required")
        return client_id, secret

    async def me(self, request: Request) -> Response:
        user_id = self._user(request)
        config = self.emulator.config
        return JSONResponse(
            {"id": user_id, "username": config.username, "name": config.display_name}
        )

    # -- settings -----------------------------------------------------------------------------

    async def get_settings(self, request: Request) -> Response:
        self._user(request)
        return JSONResponse(self.emulator.settings())

    async def put_settings(self, request: Request) -> Response:
        self._user(request)
        return JSONResponse(self.emulator.put_settings(await _read_json(request)))

    # -- tasks --------------------------------------------------------------------------------

    async def list_tasks(self, request: Request) -> Response:
        self._user(request)
        since = _query(request, "updated_since")
        deleted = _query(request, "include_deleted")
        cursor = _query(request, "cursor")
        if cursor is not None and not cursor:
            raise invalid("cursor must not be empty", field="cursor", code="invalid_cursor")
        page = self.emulator.list_page(
            limit=parse_limit(_query(request, "limit")),
            cursor=cursor,
            updated_since=parse_time(since, "updated_since") if since is not None else None,
            include_deleted=parse_bool(deleted, "include_deleted")
            if deleted is not None
            else False,
        )
        return JSONResponse(page)

    async def create_task(self, request: Request) -> Response:
        user_id = self._user(request)
        key = request.headers.get("idempotency-key")
        if key is not None:
            check_idempotency_key(key)
        task, replayed = self.emulator.create(user_id, await _read_json(request), key)
        headers = {"Location": f"{API_ROOT}/tasks/{task['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return _task_response(task, 201, **headers)

    async def get_task(self, request: Request) -> Response:
        self._user(request)
        deleted = _query(request, "include_deleted")
        include = parse_bool(deleted, "include_deleted") if deleted is not None else False
        return _task_response(self.emulator.get(request.path_params["task_id"], include))

    async def patch_task(self, request: Request) -> Response:
        self._user(request)
        expected = parse_if_match(request.headers.get("if-match"))
        body = await _read_json(request)
        return _task_response(self.emulator.update(request.path_params["task_id"], expected, body))

    async def delete_task(self, request: Request) -> Response:
        self._user(request)
        expected = parse_if_match(request.headers.get("if-match"))
        return _task_response(self.emulator.delete(request.path_params["task_id"], expected))

    async def batch(self, request: Request) -> Response:
        user_id = self._user(request)
        operations = _batch_operations(await _read_json(request))
        results = [self._batch_item(user_id, item) for item in operations]
        return JSONResponse({"results": results})

    def _batch_item(self, user_id: str, item: dict[str, Any]) -> dict[str, Any]:
        op = item["op"]
        try:
            extra = sorted(set(item) - _BATCH_OP_KEYS[op])
            if extra:
                raise invalid(f"{op} does not take: {', '.join(extra)}", field=extra[0])
            if op == "create":
                status, task = self._batch_create(user_id, item)
            elif op == "update":
                changes = _need(item, "changes")
                status, task = 200, self.emulator.update(_need(item, "id"), _version(item), changes)
            else:
                status, task = 200, self.emulator.delete(_need(item, "id"), _version(item))
        except ApiError as error:
            return {"ok": False, "status": error.status, "task": None, "error": error.envelope()}
        return {"ok": True, "status": status, "task": task, "error": None}

    def _batch_create(self, user_id: str, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = item.get("idempotency_key")
        if key is None:
            raise invalid("idempotency_key is required for a create", field="idempotency_key")
        task, _ = self.emulator.create(user_id, _need(item, "task"), check_idempotency_key(key))
        return 201, task

    # -- documents and the test namespace -----------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _read_json(request)
            if (
                not isinstance(body, dict)
                or not body
                or set(body) - {"offset_seconds", "frozen_at"}
            ):
                raise invalid('send {"offset_seconds": N} and/or {"frozen_at": "<RFC 3339>"|null}')
            if "offset_seconds" in body:
                offset = body["offset_seconds"]
                if not isinstance(offset, int | float) or isinstance(offset, bool):
                    raise invalid("offset_seconds must be a number", field="offset_seconds")
                if abs(offset) > 100 * 365 * 86400:
                    raise invalid("offset_seconds is out of range", field="offset_seconds")
                self.emulator.set_clock_offset(offset)
            if "frozen_at" in body:
                frozen = body["frozen_at"]
                at = parse_time(frozen, "frozen_at") if frozen is not None else None
                self.emulator.freeze_clock(at)
        return JSONResponse(self.emulator.clock_json())

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _read_json(request)
            self.emulator.faults.configure(body)
            if isinstance(body, dict) and body.get("expire_tokens") is not None:
                if not isinstance(body["expire_tokens"], bool):
                    raise invalid("expire_tokens must be true or false", field="expire_tokens")
                if body["expire_tokens"]:
                    self.emulator.expire_tokens()
        return JSONResponse(self.emulator.faults.as_json())

    async def reset(self, request: Request) -> Response:
        self.emulator.reset()
        return JSONResponse({"reset": True, "now": self.emulator.clock_json()["now"]})


# ---------------------------------------------------------------------------------------------
# Batch and OAuth details


def _batch_operations(body: Any) -> list[dict[str, Any]]:
    """The structural check of a batch: a malformed envelope rejects the whole request; the
    content of each operation is checked per item."""
    if not isinstance(body, dict) or set(body) != {"operations"}:
        raise invalid('the batch must be {"operations": [...]}')
    operations = body["operations"]
    if not isinstance(operations, list) or not 1 <= len(operations) <= BATCH_MAX:
        raise invalid(f"operations must be a list of 1 to {BATCH_MAX} items", field="operations")
    for index, item in enumerate(operations):
        where = f"operations[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object", field=where)
        for name, value in item.items():
            types = _BATCH_ITEM_TYPES.get(name)
            if types is None:
                raise invalid(f"{where} has an unknown key {name!r}", field=where)
            if not isinstance(value, types) or isinstance(value, bool):
                raise invalid(f"{where}.{name} has the wrong type", field=where)
        if item.get("op") not in _BATCH_OP_KEYS:
            raise invalid(f"{where}.op must be create, update or delete", field=where)
        if "if_match" in item:
            version = item["if_match"]
            # JSON has one number type: 3.0 is the integer 3 (as JSON Schema counts it).
            if isinstance(version, float) and not version.is_integer():
                raise invalid(f"{where}.if_match has the wrong type", field=where)
            if version < 1:
                raise invalid(f"{where}.if_match must be a version >= 1", field=where)
            item["if_match"] = int(version)
    return operations


def _need(item: dict[str, Any], name: str) -> Any:
    if name not in item:
        raise invalid(f"{name} is required for {item['op']}", field=name)
    return item[name]


def _version(item: dict[str, Any]) -> int | None:
    return item.get("if_match")


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error("invalid_client", "the Basic header is malformed", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _oauth_error("invalid_client", "the Basic header is malformed", 401)
    # RFC 6749 section 2.3.1: both parts are form-encoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def _oauth_error(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, code, message, "auth" if status == 401 else "validation")
