"""The REST data API under ``/services/data/vNN.N/``: auth, limits, routing, sObject resources.

Every data response carries ``Sforce-Limit-Info: api-usage=used/max``. A request is refused
with 401 INVALID_SESSION_ID before it counts; once the rolling 24-hour allowance is used up,
every call gets 403 REQUEST_LIMIT_EXCEEDED.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from emulators.sf_collections import CollectionsApi
from emulators.sf_dml import resolve
from emulators.sf_errors import ApiError, DmlError, invalid_session, not_found
from emulators.sf_faults import FAULT_STATE_KEY
from emulators.sf_http import Call, lock_error_message, read_object
from emulators.sf_ids import normalize_id
from emulators.sf_query_api import QueryApi
from emulators.sf_schema import describe_object, describe_summary
from emulators.sf_store import format_datetime
from emulators.soql import parse_datetime

if TYPE_CHECKING:
    from emulators.salesforce import SalesforceEmulator

UPDATED_WINDOW = timedelta(days=30)
UPSERT_BODY_VERSION = 46.0  # from v46 an upsert that updates answers 200 with a body


def release_label(version: str) -> str:
    """Salesforce's release name for an API version (62.0 = Winter '25, three a year)."""
    steps = 62 - int(float(version))
    season = ("Winter", "Summer", "Spring")[steps % 3]
    year = 25 - (steps + 2) // 3
    return f"{season} '{year:02d}"


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


class DataApi:
    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator
        self.queries = QueryApi(emulator)
        self.collections = CollectionsApi(emulator)

    # ------------------------------------------------------------------ entry points

    async def versions(self, request: Request) -> JSONResponse:
        versions = sorted(self.emulator.config.api_versions, key=float)
        return JSONResponse(
            [
                {"label": release_label(v), "url": f"/services/data/v{v}", "version": v}
                for v in versions
            ]
        )

    async def handle(self, request: Request) -> Response:
        emulator = self.emulator
        try:
            await request.body()  # read (and cache) it before any handler takes the state lock
        except ClientDisconnect:
            return Response(status_code=400)  # the client left; nobody will read this
        try:
            version = request.path_params["version"]
            if version not in emulator.config.api_versions:
                raise not_found()
            call = self._authenticate(request, version)
            rest = request.path_params.get("rest", "").strip("/")
            response = await self._route(call, [s for s in rest.split("/") if s])
        except ApiError as error:
            response = error.response()
        response.headers["Sforce-Limit-Info"] = emulator.limit_info()
        return response

    def _authenticate(self, request: Request, version: str) -> Call:
        emulator = self.emulator
        with emulator.lock:
            now = emulator.now()
            value = emulator.oauth.bearer(request)
            token = emulator.oauth.check_access_token(value)
            if token is None:
                raise invalid_session()
            fault = request.scope.get("state", {}).get(FAULT_STATE_KEY)
            if fault == "expire_token" and value:
                emulator.oauth.expire(value)
                raise invalid_session()
            if fault == "limit":
                emulator.api.exhaust(now)
            if emulator.api.exhausted(now):
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            emulator.api.record(now)
            return Call(request, version, token.user_id, now, fault)

    async def _route(self, call: Call, parts: list[str]) -> Response:
        method = call.request.method
        if not parts:
            return self._allow(method, "GET") or JSONResponse(self._resources(call.version))
        head = parts[0]
        if head == "limits" and len(parts) == 1:
            return self._allow(method, "GET") or JSONResponse(self._limits(call))
        if head in ("query", "queryAll") and len(parts) <= 2:
            if bad := self._allow(method, "GET"):
                return bad
            with self.emulator.lock:
                if len(parts) == 1:
                    return self.queries.run(call, head)
                return self.queries.more(call, head, parts[1])
        if head == "sobjects":
            return await self._sobjects(call, parts[1:])
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            return await self._collections(call, parts[2:])
        raise not_found()

    @staticmethod
    def _allow(method: str, *allowed: str) -> Response | None:
        if method in allowed:
            return None
        raise ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
        )

    def _resources(self, version: str) -> dict:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return {name: f"{base}/{name}" for name in names}

    def _limits(self, call: Call) -> dict:
        emulator = self.emulator
        remaining = emulator.api.remaining(call.now)

        def entry(maximum: int, left: int | None = None) -> dict:
            return {"Max": maximum, "Remaining": maximum if left is None else left}

        return {
            "ConcurrentAsyncGetReportInstances": entry(200),
            "DailyApiRequests": entry(emulator.config.daily_api_limit, remaining),
            "DailyAsyncApexExecutions": entry(250000),
            "DailyBulkApiBatches": entry(15000),
            "DailyBulkV2QueryJobs": entry(10000),
            "DataStorageMB": entry(5),
            "FileStorageMB": entry(20),
            "HourlyTimeBasedWorkflow": entry(1000),
            "SingleEmailMessages": entry(15),
        }

    # ------------------------------------------------------------------ composite/sobjects

    async def _collections(self, call: Call, rest: list[str]) -> Response:
        method = call.request.method
        api = self.collections
        with self.emulator.lock:
            if not rest:
                if method == "POST":
                    return await api.create(call)
                if method == "PATCH":
                    return await api.update(call)
                if method == "DELETE":
                    return await api.delete(call)
                return self._allow(method, "POST", "PATCH", "DELETE") or not_found().response()
            if len(rest) == 1:
                object_name = self.emulator.object_name(rest[0])
                if object_name is None:
                    raise not_found()
                self._allow(method, "GET", "POST")
                return await api.retrieve(call, object_name)
        raise not_found()

    # ------------------------------------------------------------------ sobjects

    async def _sobjects(self, call: Call, rest: list[str]) -> Response:
        emulator = self.emulator
        method = call.request.method
        if not rest:
            self._allow(method, "GET")
            return JSONResponse(
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [
                        describe_summary(obj, call.version) for obj in emulator.objects.values()
                    ],
                }
            )
        object_name = emulator.object_name(rest[0])
        if object_name is None:
            raise not_found()
        obj = emulator.objects[object_name]
        with emulator.lock:
            if len(rest) == 1:
                if method == "POST" and obj.writable:
                    return await self._create(call)
                self._allow(method, "GET", *(("POST",) if obj.writable else ()))
                return JSONResponse(
                    {"objectDescribe": describe_summary(obj, call.version), "recentItems": []}
                )
            second = rest[1]
            if len(rest) == 2 and second == "describe":
                self._allow(method, "GET")
                return JSONResponse(describe_object(emulator.config, obj, call.version))
            if len(rest) == 2 and second in ("updated", "deleted"):
                self._allow(method, "GET")
                if second == "updated":
                    return JSONResponse(self._updated(call, object_name))
                return JSONResponse(self._deleted(call, object_name))
            if len(rest) == 2:
                return await self._by_id(call, object_name, second)
            if len(rest) == 3:
                return await self._by_external_id(call, object_name, rest[1], rest[2])
        raise not_found()

    def _fields_param(self, call: Call, object_name: str) -> list[str] | None:
        raw = call.request.query_params.get("fields")
        if not raw:
            return None
        schema = self.emulator.objects[object_name]
        names = []
        for name in raw.split(","):
            fdef = schema.field(name.strip())
            if fdef is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {object_name}",
                )
            names.append(fdef.name)
        return names

    async def _create(self, call: Call) -> Response:
        store = self.emulator.store
        values, errors = store.coerce(await read_object(call.request), creating=True)
        if errors:
            return JSONResponse([e.as_top_level() for e in errors], status_code=400)
        if call.locked:
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", lock_error_message([]), [])
        record = store.insert(values, now=call.now, actor_id=call.user_id)
        return JSONResponse({"id": record["Id"], "success": True, "errors": []}, status_code=201)

    async def _by_id(self, call: Call, object_name: str, raw_id: str) -> Response:
        emulator = self.emulator
        method = call.request.method
        self._allow(method, "GET", "PATCH", "DELETE")
        if normalize_id(raw_id) is None:
            # Salesforce reads a non-id here as an external id value with no field.
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw_id}",
            )
        if method == "GET":
            row = emulator.find_row(object_name, raw_id)
            if row is None:
                raise not_found()
            fields = self._fields_param(call, object_name)
            return JSONResponse(emulator.record_json(object_name, row, call.version, fields))
        if not emulator.objects[object_name].writable:
            self._allow(method, "GET")
        record, error = resolve(emulator.store, raw_id)
        if error is not None:
            if error.code == "ENTITY_IS_DELETED":
                raise ApiError(404, error.code, error.message, [])
            raise not_found()
        assert record is not None
        if method == "PATCH":
            return await self._update(call, record)
        if call.locked:
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", lock_error_message([record["Id"]]), [])
        emulator.store.delete(record, now=call.now)
        return Response(status_code=204)

    async def _update(self, call: Call, record: dict, body: dict | None = None) -> Response:
        store = self.emulator.store
        if body is None:
            body = await read_object(call.request)
        values, errors = store.coerce(body, creating=False)
        if errors:
            return JSONResponse([e.as_top_level() for e in errors], status_code=400)
        if call.locked:
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", lock_error_message([record["Id"]]), [])
        store.update(record, values, now=call.now, actor_id=call.user_id)
        return Response(status_code=204)

    async def _by_external_id(
        self, call: Call, object_name: str, field_name: str, value: str
    ) -> Response:
        emulator = self.emulator
        method = call.request.method
        self._allow(method, "GET", "PATCH", "DELETE")
        fdef = emulator.objects[object_name].field(field_name)
        if fdef is None or not (fdef.external_id or fdef.name == "Id") or object_name != "Task":
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        store = emulator.store
        if fdef.name == "Id":
            record, _ = resolve(store, value)
            matches = [record["Id"]] if record else []
        else:
            matches = store.find_by_field(fdef.name, value)
        if len(matches) > 1:
            urls = [f"/services/data/v{call.version}/sobjects/Task/{rid}" for rid in matches]
            return JSONResponse(urls, status_code=300)
        if method == "GET":
            if not matches:
                raise not_found()
            return JSONResponse(
                store.to_json(store.records[matches[0]], call.version,
                              self._fields_param(call, object_name))
            )  # fmt: skip
        if method == "DELETE":
            if not matches:
                raise not_found()
            if call.locked:
                raise ApiError(400, "UNABLE_TO_LOCK_ROW", lock_error_message(matches), [])
            store.delete(store.records[matches[0]], now=call.now)
            return Response(status_code=204)
        return await self._upsert(call, fdef.name, value, matches)

    async def _upsert(self, call: Call, field_name: str, value: str, matches: list) -> Response:
        store = self.emulator.store
        body = await read_object(call.request)
        body = {k: v for k, v in body.items() if k.lower() != field_name.lower()}
        if matches:
            record = store.records[matches[0]]
            response = await self._update(call, record, body)
            if response.status_code != 204 or float(call.version) < UPSERT_BODY_VERSION:
                return response
            return JSONResponse(
                {"id": record["Id"], "success": True, "errors": [], "created": False}
            )
        if field_name == "Id":
            raise not_found()
        values, errors = store.coerce(body, creating=True)
        if errors:
            return JSONResponse([e.as_top_level() for e in errors], status_code=400)
        if call.locked:
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", lock_error_message([]), [])
        values[field_name] = value
        length_errors: list[DmlError] = store._check_values({field_name: value})
        if length_errors:
            return JSONResponse([e.as_top_level() for e in length_errors], status_code=400)
        record = store.insert(values, now=call.now, actor_id=call.user_id)
        return JSONResponse(
            {"id": record["Id"], "success": True, "errors": [], "created": True}, status_code=201
        )

    # ------------------------------------------------------------------ replication

    def _window(self, call: Call) -> tuple[datetime, datetime]:
        params = call.request.query_params
        if "start" not in params or "end" not in params:
            raise ApiError(400, "MISSING_ARGUMENT", "start and end are both required")
        try:
            start = floor_minute(parse_datetime(params["start"]))
            end = floor_minute(parse_datetime(params["end"]))
        except ValueError as error:
            raise ApiError(
                400, "INVALID_REPLICATION_DATE", f"Unable to parse the date: {error}"
            ) from None
        if end - start < timedelta(minutes=1):
            raise ApiError(
                400,
                "INVALID_REPLICATION_DATE",
                "The start date must precede the end date by more than one minute",
            )
        return start, end

    def _updated(self, call: Call, object_name: str) -> dict:
        start, end = self._window(call)
        now_minute = floor_minute(call.now)
        if start < now_minute - UPDATED_WINDOW:
            raise ApiError(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate can't be more than 30 days ago: " + format_datetime(start),
            )
        covered = min(end, now_minute)
        ids = []
        if object_name == "Task":
            rows = self.emulator.store.rows(include_deleted=False)
            ids = [r["Id"] for r in rows if start <= r["SystemModstamp"] < covered]
        return {"ids": ids, "latestDateCovered": format_datetime(covered)}

    def _deleted(self, call: Call, object_name: str) -> dict:
        start, end = self._window(call)
        store = self.emulator.store
        earliest = store.earliest_deleted_available(call.now)
        earliest_minute = floor_minute(earliest)
        if earliest.second or earliest.microsecond:
            earliest_minute += timedelta(minutes=1)
        if start < earliest_minute:
            raise ApiError(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate is before the earliest date available for deleted records: "
                + format_datetime(earliest_minute),
            )
        covered = min(end, floor_minute(call.now))
        deleted = []
        if object_name == "Task":
            deleted = [
                {"id": rid, "deletedDate": format_datetime(when)}
                for rid, when in sorted(store.deleted_at.items(), key=lambda item: item[1])
                if start <= when < covered
            ]
        return {
            "deletedRecords": deleted,
            "earliestDateAvailable": format_datetime(earliest_minute),
            "latestDateCovered": format_datetime(covered),
        }
