"""Record-level create/update/delete checks shared by single-record and collection calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulators.sf_errors import DmlError
from emulators.sf_ids import normalize_id
from emulators.sf_store import TaskStore

DELETED = DmlError("ENTITY_IS_DELETED", "entity is deleted")
UNKNOWN = DmlError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")


def malformed(raw_id: Any) -> DmlError:
    return DmlError("MALFORMED_ID", f"Task ID: id value of incorrect type: {raw_id}", ("Id",))


def resolve(store: TaskStore, raw_id: Any) -> tuple[dict | None, DmlError | None]:
    """The live record for ``raw_id`` (15 or 18 chars), or why there is none."""
    rid = normalize_id(raw_id) if isinstance(raw_id, str) else None
    if rid is None or not rid.startswith("00T"):
        return None, malformed(raw_id)
    record = store.records.get(rid)
    if record is None:
        return None, DELETED if rid in store.issued else UNKNOWN
    if record["IsDeleted"]:
        return None, DELETED
    return record, None


def split_update_body(raw: Mapping[str, Any]) -> tuple[Any, dict]:
    """A collection update record carries its id as ``id`` or ``Id``."""
    body = dict(raw)
    raw_id = body.pop("id", None)
    if raw_id is None:
        raw_id = body.pop("Id", None)
    else:
        body.pop("Id", None)
    return raw_id, body
