"""sObject Collections: ``composite/sobjects`` create, update, delete and retrieve.

Up to 200 records a write (2000 ids a retrieve), ``allOrNone`` rollback, one result per record
in request order: ``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from emulators import sf_dml
from emulators.sf_errors import ApiError, DmlError
from emulators.sf_http import Call, lock_error_message, read_object
from emulators.sf_ids import normalize_id

if TYPE_CHECKING:
    from emulators.salesforce import SalesforceEmulator

MAX_WRITE = 200
MAX_RETRIEVE = 2000
MIN_VERSION = 42.0
ROLLED_BACK = DmlError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
)


def _failure(errors: list[DmlError], record_id: str | None = None) -> dict:
    result: dict[str, Any] = {"success": False, "errors": [e.as_record_error() for e in errors]}
    if record_id is not None:
        result = {"id": record_id, **result}
    return result


def _success(record_id: str) -> dict:
    return {"id": record_id, "success": True, "errors": []}


def _parse_bool(value: Any, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return default


class CollectionsApi:
    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator

    def _check_version(self, call: Call) -> None:
        if float(call.version) < MIN_VERSION:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    async def _records(self, call: Call) -> tuple[list, bool]:
        body = await read_object(call.request)
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "At least 1 record is required.")
        if len(records) > MAX_WRITE:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_WRITE} records into this call",
            )
        return records, _parse_bool(body.get("allOrNone"))

    def _type_errors(self, raw: Any) -> list[DmlError]:
        if not isinstance(raw, dict):
            return [DmlError("INVALID_FIELD", "Each record must be a JSON object")]
        attributes = raw.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        if kind is None:
            return [DmlError("INVALID_TYPE", "Must specify a type in the attributes of a record")]
        if str(kind).lower() != "task":
            return [DmlError("INVALID_TYPE", f"sObject type '{kind}' is not supported.")]
        return []

    async def create(self, call: Call) -> JSONResponse:
        self._check_version(call)
        records, all_or_none = await self._records(call)
        store = self.emulator.store
        prepared: list[tuple[dict, list[DmlError]]] = []
        for raw in records:
            errors = self._type_errors(raw)
            values: dict = {}
            if not errors:
                if "Id" in raw or "id" in raw:
                    errors = [
                        DmlError(
                            "INVALID_FIELD_FOR_INSERT_UPDATE",
                            "cannot specify Id in an insert call",
                            ("Id",),
                        )
                    ]
                else:
                    values, errors = store.coerce(raw, creating=True)
            if not errors and call.locked:
                errors = [DmlError("UNABLE_TO_LOCK_ROW", lock_error_message([]))]
            prepared.append((values, errors))
        failed = any(errors for _, errors in prepared)
        results = []
        for values, errors in prepared:
            if errors:
                results.append(_failure(errors))
            elif failed and all_or_none:
                results.append(_failure([ROLLED_BACK]))
            else:
                record = store.insert(values, now=call.now, actor_id=call.user_id)
                results.append(_success(record["Id"]))
        return JSONResponse(results)

    async def update(self, call: Call) -> JSONResponse:
        self._check_version(call)
        records, all_or_none = await self._records(call)
        store = self.emulator.store
        prepared: list[tuple[str | None, dict | None, dict, list[DmlError]]] = []
        seen: set[str] = set()
        for raw in records:
            errors = self._type_errors(raw)
            record_id: str | None = None
            record, values = None, {}
            if not errors:
                raw_id, body = sf_dml.split_update_body(raw)
                if raw_id is None:
                    errors = [DmlError("MISSING_ARGUMENT", "Id not specified in an update call")]
                else:
                    record_id = normalize_id(raw_id) if isinstance(raw_id, str) else None
                    record, error = sf_dml.resolve(store, raw_id)
                    if error:
                        errors = [error]
                    elif record_id in seen:
                        errors = [DmlError("DUPLICATE_VALUE", "Maximum number of duplicate "
                                           "updates in one batch (1 allowed).")]  # fmt: skip
                    else:
                        seen.add(record_id or "")
                        values, errors = store.coerce(body, creating=False)
            if not errors and call.locked:
                errors = [DmlError("UNABLE_TO_LOCK_ROW", lock_error_message([record_id or ""]))]
            prepared.append((record_id, record, values, errors))
        failed = any(p[3] for p in prepared)
        results = []
        for record_id, record, values, errors in prepared:
            if errors:
                results.append(_failure(errors, record_id))
            elif failed and all_or_none:
                results.append(_failure([ROLLED_BACK], record_id))
            else:
                assert record is not None
                store.update(record, values, now=call.now, actor_id=call.user_id)
                results.append(_success(record["Id"]))
        return JSONResponse(results)

    async def delete(self, call: Call) -> JSONResponse:
        self._check_version(call)
        params = call.request.query_params
        ids = [i for i in params.get("ids", "").split(",") if i.strip()]
        if not ids:
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "At least 1 Id is required.")
        if len(ids) > MAX_WRITE:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_WRITE} records into this call",
            )
        all_or_none = _parse_bool(params.get("allOrNone"))
        store = self.emulator.store
        prepared = []
        for raw_id in ids:
            record, error = sf_dml.resolve(store, raw_id.strip())
            errors = [error] if error else []
            if not errors and call.locked:
                errors = [DmlError("UNABLE_TO_LOCK_ROW", lock_error_message([raw_id]))]
            prepared.append((raw_id.strip(), record, errors))
        failed = any(p[2] for p in prepared)
        results = []
        for raw_id, record, errors in prepared:
            if errors:
                results.append(_failure(errors, raw_id))
            elif failed and all_or_none:
                results.append(_failure([ROLLED_BACK], raw_id))
            else:
                assert record is not None
                store.delete(record, now=call.now)
                results.append(_success(record["Id"]))
        return JSONResponse(results)

    async def retrieve(self, call: Call, object_name: str) -> JSONResponse:
        """GET ?ids=&fields= or POST {"ids": [...], "fields": [...]}."""
        self._check_version(call)
        if call.request.method == "POST":
            body = await read_object(call.request)
            ids, fields = body.get("ids") or [], body.get("fields") or []
        else:
            params = call.request.query_params
            ids = [i for i in params.get("ids", "").split(",") if i]
            fields = [f for f in params.get("fields", "").split(",") if f]
        if not ids:
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "At least 1 Id is required.")
        if not fields:
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "Fields are required.")
        if len(ids) > MAX_RETRIEVE:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RETRIEVE} records into "
                "this call",
            )
        emulator = self.emulator
        schema = emulator.objects[object_name]
        canonical = []
        for name in fields:
            fdef = schema.field(str(name).strip())
            if fdef is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{object_name}'."
                )
            canonical.append(fdef.name)
        rows = []
        for raw_id in ids:
            row = emulator.find_row(object_name, str(raw_id).strip())
            rows.append(
                None if row is None else emulator.record_json(object_name, row, call.version,
                                                              canonical)
            )  # fmt: skip
        return JSONResponse(rows)
