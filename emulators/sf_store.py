"""Task records in memory: validation as Salesforce does it, system fields, the recycle bin."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from emulators.sf_config import SalesforceEmulatorConfig
from emulators.sf_errors import ApiError, DmlError
from emulators.sf_ids import make_id, normalize_id
from emulators.sf_schema import TEXT_TYPES, FieldDef, SObjectDef
from emulators.soql import parse_datetime

RECYCLE_BIN_DAYS = 15
# Fields the server maintains; a client may not write them (seeding from Python may).
SYSTEM_FIELDS = frozenset(
    {"Id", "IsDeleted", "IsClosed", "IsHighPriority", "CreatedDate", "CreatedById",
     "LastModifiedDate", "LastModifiedById", "SystemModstamp", "CompletedDateTime"}
)  # fmt: skip


def sf_length(text: str) -> int:
    """Salesforce counts string length in UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def format_datetime(value: datetime) -> str:
    """Salesforce's wire format: 2026-11-30T06:25:01.000+0000 (always UTC)."""
    millis = value.microsecond // 1000
    return f"{value:%Y-%m-%dT%H:%M:%S}.{millis:03d}+0000"


def to_wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class TaskStore:
    """All Task rows (live and in the recycle bin), keyed by 18-character id."""

    def __init__(self, config: SalesforceEmulatorConfig, task: SObjectDef, user_ids: set[str]):
        self.config = config
        self.schema = task
        self.user_ids = user_ids
        self._numbers = itertools.count(1)  # never reset: ids are never reused
        self.records: dict[str, dict[str, Any]] = {}
        self.deleted_at: dict[str, datetime] = {}
        self.issued: set[str] = set()
        self.last_purge: datetime | None = None
        self._closed = {s.label: s.is_closed for s in config.task_statuses}
        self._high = {p.label: p.is_high for p in config.task_priorities}
        self._default_status = next(
            (s.label for s in config.task_statuses if s.is_default), config.task_statuses[0].label
        )
        self._default_priority = next(
            (p.label for p in config.task_priorities if p.is_default),
            config.task_priorities[0].label,
        )

    def clear(self) -> None:
        self.records.clear()
        self.deleted_at.clear()
        self.last_purge = None

    # ------------------------------------------------------------------ reading

    def live(self, record_id: str) -> dict[str, Any] | None:
        record = self.records.get(record_id)
        return record if record and not record["IsDeleted"] else None

    def rows(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if include_deleted or not r["IsDeleted"]]

    def find_by_field(self, field_name: str, value: str) -> list[str]:
        wanted = value.lower()
        return [
            rid
            for rid, record in self.records.items()
            if not record["IsDeleted"]
            and isinstance(record.get(field_name), str)
            and record[field_name].lower() == wanted
        ]

    def purge_expired(self, now: datetime) -> None:
        """Salesforce empties the recycle bin after 15 days."""
        cutoff = now - timedelta(days=RECYCLE_BIN_DAYS)
        for rid, when in list(self.deleted_at.items()):
            if when < cutoff:
                self._purge(rid)

    def empty_recycle_bin(self, now: datetime) -> int:
        """What an admin's "Empty Recycle Bin" does: deleted rows vanish, the window is lost."""
        ids = list(self.deleted_at)
        for rid in ids:
            self._purge(rid)
        self.last_purge = now
        return len(ids)

    def _purge(self, rid: str) -> None:
        self.records.pop(rid, None)
        self.deleted_at.pop(rid, None)

    def earliest_deleted_available(self, now: datetime) -> datetime:
        earliest = now - timedelta(days=RECYCLE_BIN_DAYS)
        if self.last_purge and self.last_purge > earliest:
            earliest = self.last_purge
        return earliest

    # ------------------------------------------------------------------ validation

    def coerce(self, raw: Mapping[str, Any], *, creating: bool) -> tuple[dict, list[DmlError]]:
        """Check a client's field map; returns canonical values and record-level errors.

        A value of the wrong JSON type fails the whole request (JSON_PARSER_ERROR), as it does
        in Salesforce, where the body is deserialised before any record is looked at.
        """
        values: dict[str, Any] = {}
        errors: list[DmlError] = []
        for key, value in raw.items():
            if key == "attributes":
                continue
            fdef = self.schema.field(key)
            if fdef is None:
                errors.append(
                    DmlError("INVALID_FIELD", f"No such column '{key}' on sobject of type Task")
                )
                continue
            writable = fdef.createable if creating else fdef.updateable
            if not writable or fdef.name in SYSTEM_FIELDS:
                errors.append(
                    DmlError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {fdef.name}. Please check the security "
                        "settings of this field and verify that it is read/write for your "
                        "profile or permission set.",
                        (fdef.name,),
                    )
                )
                continue
            values[fdef.name] = self._coerce_value(fdef, value)
        errors.extend(self._check_values(values))
        return values, errors

    def _coerce_value(self, fdef: FieldDef, value: Any) -> Any:
        def parser_error() -> ApiError:
            shown = value if isinstance(value, str | int | float | bool) else type(value).__name__
            return ApiError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {fdef.type} from value {shown} "
                f"or request may be missing a required field (field {fdef.name})",
            )

        if value is None:
            return None
        if fdef.type in TEXT_TYPES:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise parser_error()
            text = str(value)
            return text if text != "" else None  # Salesforce stores "" as null
        if fdef.type == "boolean":
            if not isinstance(value, bool):
                raise parser_error()
            return value
        if fdef.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise parser_error()
            return value
        if fdef.type == "date":
            try:
                return date.fromisoformat(value) if isinstance(value, str) and value else None
            except ValueError:
                raise parser_error() from None
        if fdef.type == "datetime":
            try:
                return parse_datetime(value) if isinstance(value, str) and value else None
            except ValueError:
                raise parser_error() from None
        raise parser_error()

    def _check_values(self, values: Mapping[str, Any]) -> list[DmlError]:
        errors: list[DmlError] = []
        for name, value in values.items():
            fdef = self.schema.field(name)
            assert fdef is not None
            if isinstance(value, str) and fdef.length and sf_length(value) > fdef.length:
                errors.append(
                    DmlError(
                        "STRING_TOO_LONG",
                        f"{fdef.label}: data value too large: {value[:100]}... "
                        f"(max length={fdef.length})",
                        (name,),
                    )
                )
            if fdef.type == "picklist" and fdef.restricted_picklist:
                allowed = self._picklist(name)
                if value is None and not fdef.nillable:
                    errors.append(
                        DmlError(
                            "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]",
                            (name,),
                        )
                    )  # fmt: skip
                elif value is not None and value not in allowed:
                    errors.append(
                        DmlError(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{fdef.label}: bad value for restricted picklist field: {value}",
                            (name,),
                        )
                    )
            if name == "OwnerId":
                owner = normalize_id(value) if isinstance(value, str) else None
                if value is None:
                    errors.append(
                        DmlError(
                            "REQUIRED_FIELD_MISSING", "Required fields are missing: [OwnerId]",
                            ("OwnerId",),
                        )
                    )  # fmt: skip
                elif owner not in self.user_ids:
                    errors.append(
                        DmlError(
                            "INVALID_CROSS_REFERENCE_KEY",
                            f"Assigned To ID: id value of incorrect type: {value}",
                            ("OwnerId",),
                        )
                    )
        return errors

    def _picklist(self, name: str) -> set[str]:
        if name == "Status":
            return set(self._closed)
        if name == "Priority":
            return set(self._high)
        if name == "TaskSubtype":
            return {"Task", "Email", "ListEmail", "Cadence", "Call"}
        if name == "RecurrenceType":
            return {"RecursDaily", "RecursEveryWeekday", "RecursMonthly", "RecursWeekly"}
        return set()

    # ------------------------------------------------------------------ writing

    def new_id(self) -> str:
        rid = make_id("00T", next(self._numbers))
        self.issued.add(rid)
        return rid

    def insert(
        self,
        values: Mapping[str, Any],
        *,
        now: datetime,
        actor_id: str,
        created_at: datetime | None = None,
        record_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a new row from already-checked values; system fields are filled here."""
        created = created_at or now
        record: dict[str, Any] = {f.name: None for f in self.schema.fields}
        record.update(
            {
                "Status": self._default_status,
                "Priority": self._default_priority,
                "OwnerId": actor_id,
                "TaskSubtype": "Task",
                "IsDeleted": False,
                "IsArchived": False,
                "IsReminderSet": False,
                "IsRecurrence": False,
            }
        )
        record.update(values)
        if isinstance(record["OwnerId"], str):
            record["OwnerId"] = normalize_id(record["OwnerId"]) or record["OwnerId"]
        record["Id"] = record_id or self.new_id()
        record["CreatedDate"] = created
        record["CreatedById"] = actor_id
        self._stamp(record, now, actor_id, previous_status=None)
        self.records[record["Id"]] = record
        return record

    def update(
        self, record: dict[str, Any], values: Mapping[str, Any], *, now: datetime, actor_id: str
    ) -> None:
        previous_status = record["Status"]
        record.update(values)
        if isinstance(record["OwnerId"], str):
            record["OwnerId"] = normalize_id(record["OwnerId"]) or record["OwnerId"]
        self._stamp(record, now, actor_id, previous_status=previous_status)

    def delete(self, record: dict[str, Any], *, now: datetime) -> None:
        record["IsDeleted"] = True
        record["SystemModstamp"] = now
        self.deleted_at[record["Id"]] = now

    def _stamp(
        self, record: dict[str, Any], now: datetime, actor_id: str, previous_status: str | None
    ) -> None:
        closed = self._closed.get(record["Status"], False)
        was_closed = self._closed.get(previous_status, False) if previous_status else False
        record["IsClosed"] = closed
        record["IsHighPriority"] = self._high.get(record["Priority"], False)
        if closed and not was_closed:
            record["CompletedDateTime"] = now
        elif not closed:
            record["CompletedDateTime"] = None
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = actor_id
        record["SystemModstamp"] = now

    # ------------------------------------------------------------------ output

    def to_json(self, record: Mapping[str, Any], version: str, fields: Iterable[str] | None = None):
        """A record as the REST API returns it, with its ``attributes``."""
        names = list(fields) if fields is not None else [f.name for f in self.schema.fields]
        out: dict[str, Any] = {
            "attributes": {
                "type": "Task",
                "url": f"/services/data/v{version}/sobjects/Task/{record['Id']}",
            }
        }
        for name in names:
            out[name] = to_wire(record.get(name))
        return out
