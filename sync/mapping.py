"""Sales Connect task <-> canonical Task <-> Salesforce Task record.

The wire shapes are SPEC section 3 (SC) and the SF REST Task sObject. Everything that comes from
a service passes through here, so this is where untrusted text is sanitised and normalised, where
picklist values meet canonical ones (rule 9) and where values are cut to fit Salesforce (rule 10).
Nothing here raises on bad data from a service: a value that cannot be read becomes a `problem`
on the SideTask, which the planner parks instead of syncing.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sync.model import (
    PRIORITY_HIGH,
    PRIORITY_NORMAL,
    STATUS_COMPLETE,
    STATUS_OPEN,
    Note,
    SfPicklists,
    Side,
    SideTask,
    Task,
    frozen_map,
    quick_init,
    remember_last,
)

__all__ = [
    "ELLIPSIS",
    "SF_DESCRIPTION_MAX",
    "SF_SUBJECT_MAX",
    "SfPicklists",
    "SfWrite",
    "build_picklists",
    "deleted_side_task",
    "fit",
    "format_date",
    "normalize_text",
    "parse_date",
    "parse_timestamp",
    "project_to_sf",
    "sanitize_text",
    "sc_to_side_task",
    "sf_to_side_task",
    "sf_units",
    "task_to_sc",
    "task_to_sf",
]

ELLIPSIS = "…"
SF_SUBJECT_MAX = 255
SF_DESCRIPTION_MAX = 32_000
SF_LIMITS: Mapping[str, int] = frozen_map({"name": SF_SUBJECT_MAX, "details": SF_DESCRIPTION_MAX})

# --- untrusted text -------------------------------------------------------------------------

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), the other
# string sequences (DCS/SOS/PM/APC up to ST), and two-byte ESC sequences. C1 forms too.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                    # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)  # OSC, DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]                                    # other ESC sequences
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE_STARTS = "\x1b\x90\x98\x9b\x9d\x9e\x9f"  # no escape sequence without one of these
# Bidi embedding/override/isolate controls and marks: they can make text display reversed.
_BIDI = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


# C0 and C1 control characters except tab and newline (CR is turned into LF first), DEL, and
# lone surrogates (they cannot be stored or shown).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def sanitize_text(value: Any) -> str:
    """Untrusted text made safe to store and show: escape sequences, control characters
    (except newline and tab) and bidi controls removed. Non-strings become ""."""
    if not isinstance(value, str):
        return ""
    if value.isascii() and value.isprintable():  # no escape, control or bidi character
        return value
    text = _ESCAPES.sub("", value) if any(c in value for c in _ESCAPE_STARTS) else value
    text = text.translate(_BIDI)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


def normalize_text(value: Any) -> str:
    """Sanitised, NFC, LF line ends, no trailing blanks on a line or at either end.

    Two values that normalise alike are the same value: a server's cosmetic rewrite (CRLF,
    trailing spaces, decomposed accents) is not an edit.
    """
    if isinstance(value, str) and value.isascii() and value.isprintable():
        return value.strip()  # one line, nothing to remove or compose (most subjects)
    text = unicodedata.normalize("NFC", sanitize_text(value))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def sf_units(text: str) -> int:
    """Length as Salesforce may count it (UTF-16 code units): the safe upper bound."""
    if text.isascii():  # one unit per character (the common case, and no copy to count)
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` units, ending in "…" when cut (rule 10).

    The cut falls between characters as the user sees them: never inside a surrogate pair (a
    Python string has none to split), before a combining mark, a variation selector, a skin
    tone or a zero-width joiner, nor between the two halves of a flag.
    """
    if sf_units(text) <= limit:
        return text
    budget = limit - sf_units(ELLIPSIS)
    head = text[:budget]
    while (excess := sf_units(head) - budget) > 0:  # astral characters count twice
        head = head[: len(head) - (excess + 1) // 2]
    end = _cluster_start(text, len(head))
    if end > 0:  # a single cluster longer than the budget is cut inside, as a last resort
        head = text[:end]
    # The cut must itself be a normalised value, or reading it back would look like an edit.
    cut = normalize_text(head)
    while sf_units(cut) > budget:  # NFC can, rarely, lengthen text
        head = text[: _cluster_start(text, len(head) - 1) or len(head) - 1]
        cut = normalize_text(head)
    return cut + ELLIPSIS


_ZWJ = "\u200d"


def _extends(char: str) -> bool:
    """Does `char` belong to the character before it (no cut may fall just before it)?"""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")  # combining marks
        or char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0x1160 <= code <= 0x11FF  # Hangul medial vowels and final consonants
        or 0xD7B0 <= code <= 0xD7FF
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _cluster_start(text: str, index: int) -> int:
    """The nearest index at or before `index` where a user-perceived character starts."""
    while 0 < index < len(text):
        before, after = text[index - 1], text[index]
        if _extends(after) or before == _ZWJ:
            index -= 1
            continue
        if _is_regional_indicator(after) and _is_regional_indicator(before):
            run = 0  # flags are pairs: count the indicators before the cut
            while run < index and _is_regional_indicator(text[index - 1 - run]):
                run += 1
            if run % 2:
                index -= 1
                continue
        break
    return index


# --- dates and times ------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_date(value: Any) -> date | None:
    """A `YYYY-MM-DD` day, read as a calendar day (never through a time zone).

    None/"" is "no date"; anything else that is not a real day raises ValueError.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a YYYY-MM-DD date: {str(value)[:40]!r}")
    return _parse_day(value)


@functools.lru_cache(maxsize=4096)
def _parse_day(value: str) -> date:
    """`parse_date` of a non-empty string, remembered: a read of 10,000 tasks holds a few
    hundred different days (a failure is not remembered; it raises again)."""
    if not (match := _DATE.match(value)):
        raise ValueError(f"not a YYYY-MM-DD date: {value[:40]!r}")
    year, month, day = (int(part) for part in match.groups())
    return date(year, month, day)  # raises ValueError for 2026-02-30


def format_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


@remember_last(equal=True)  # the records of one write share their times: parsed once
def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 / Salesforce timestamp as an aware datetime; None if missing or unreadable.

    A timestamp without an offset is taken as UTC (both services speak UTC).
    """
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _parse_again(value: Any, parsed_value: Any, parsed: datetime | None) -> datetime | None:
    """`parse_timestamp(value)`, reusing `parsed` (the parse of `parsed_value`) when the two
    stamps are the same text: a task never edited has one time for both, kept once."""
    if value == parsed_value and isinstance(value, str):
        return parsed
    return parse_timestamp(value)


# --- picklists ------------------------------------------------------------------------------


def build_picklists(raw: Mapping[str, Iterable[Mapping[str, Any]]] | None) -> SfPicklists:
    """The org's picklists from `SalesforceClient.picklists()` output.

    Accepts {"Status": [{"value", "isClosed", "isDefault"}], "Priority": [{"value", "isDefault"}]}
    and also raw TaskStatus/TaskPriority rows (ApiName or MasterLabel, IsClosed, IsDefault).
    Missing or empty lists fall back to Salesforce's standard values.
    """
    standard = SfPicklists()
    raw = raw or {}
    status_rows = [_row(r) for r in raw.get("Status") or ()]
    status_rows = [r for r in status_rows if r["value"]]
    priority_rows = [_row(r) for r in raw.get("Priority") or ()]
    priority_rows = [r for r in priority_rows if r["value"]]

    if status_rows:
        statuses = tuple(r["value"] for r in status_rows)
        closed = frozenset(r["value"] for r in status_rows if r["closed"])
        open_rows = [r["value"] for r in status_rows if not r["closed"]]
        default_open = [r["value"] for r in status_rows if r["default"] and not r["closed"]]
        open_status = (
            default_open[0]
            if default_open
            else ("Not Started" if "Not Started" in open_rows else next(iter(open_rows), None))
        )
        closed_order = [r["value"] for r in status_rows if r["closed"]]
        closed_status = "Completed" if "Completed" in closed else next(iter(closed_order), None)
    else:
        statuses, closed = standard.statuses, standard.closed_statuses
        open_status, closed_status = standard.open_status, standard.closed_status

    if priority_rows:
        priorities = tuple(r["value"] for r in priority_rows)
        by_fold = {value.casefold(): value for value in reversed(priorities)}
        normal_priority = by_fold.get("normal")
        high_priority = by_fold.get("high")
    else:
        priorities = standard.priorities
        normal_priority, high_priority = standard.normal_priority, standard.high_priority

    return SfPicklists(
        statuses=statuses,
        priorities=priorities,
        open_status=open_status,
        closed_status=closed_status,
        closed_statuses=closed,
        normal_priority=normal_priority,
        high_priority=high_priority,
    )


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    value = row.get("value") or row.get("ApiName") or row.get("MasterLabel") or ""
    return {
        "value": sanitize_text(value).strip(),
        "closed": bool(row.get("isClosed", row.get("IsClosed", False))),
        "default": bool(row.get("isDefault", row.get("IsDefault", False))),
    }


def sf_status_to_canonical(value: Any, picklists: SfPicklists) -> str | None:
    if value is not None and value == picklists.open_status:
        return STATUS_OPEN
    if value is not None and value == picklists.closed_status:
        return STATUS_COMPLETE
    return None


def sf_priority_to_canonical(value: Any, picklists: SfPicklists) -> str | None:
    if value is not None and value == picklists.normal_priority:
        return PRIORITY_NORMAL
    if value is not None and value == picklists.high_priority:
        return PRIORITY_HIGH
    return None


def canonical_status_to_sf(value: str | None, picklists: SfPicklists) -> str | None:
    # Spelled out, not a dict made at each call: every created or updated record maps both.
    if value == STATUS_OPEN:
        return picklists.open_status
    if value == STATUS_COMPLETE:
        return picklists.closed_status
    return None


def canonical_priority_to_sf(value: str | None, picklists: SfPicklists) -> str | None:
    if value == PRIORITY_NORMAL:
        return picklists.normal_priority
    if value == PRIORITY_HIGH:
        return picklists.high_priority
    return None


# --- Sales Connect --------------------------------------------------------------------------

_SC_STATUSES = {STATUS_OPEN, STATUS_COMPLETE}
_SC_PRIORITIES = {PRIORITY_NORMAL, PRIORITY_HIGH}


def sc_to_side_task(data: Mapping[str, Any], user_id: str | None) -> SideTask:
    """An SC task JSON object as a SideTask (scope: assigned to `user_id`, rule 6).

    `user_id=None` skips the scope check. Unknown status/priority or a malformed due date become
    `problems`; a task with a `deleted_at` is a tombstone.
    """
    problems: dict[str, str] = {}
    raw: dict[str, Any] = {}

    status = data.get("status")
    if status not in _SC_STATUSES:
        problems["status"] = f"unknown Sales Connect status {_show(status)!r}"
        raw["status"] = _show(status)
        status = None
    priority = data.get("priority")
    if priority not in _SC_PRIORITIES:
        problems["priority"] = f"unknown Sales Connect priority {_show(priority)!r}"
        raw["priority"] = _show(priority)
        priority = None
    due = _read_date(data.get("due_date"), "due date", problems, raw)

    assignee = data.get("assignee_id")
    in_scope, reason = True, ""
    if user_id is not None and assignee != user_id:
        in_scope = False
        reason = "assigned to someone else" if assignee else "not assigned to anyone"

    created = parse_timestamp(data.get("created_at"))
    return SideTask(
        side=Side.SALESCONNECT,
        id=str(data.get("id") or ""),
        fields=Task(
            name=normalize_text(data.get("name")),
            status=status,
            priority=priority,
            due_date=due,
            details=normalize_text(data.get("details")),
        ),
        version=_version(data.get("version")),
        created_at=created,
        updated_at=_parse_again(data.get("updated_at"), data.get("created_at"), created),
        deleted=bool(data.get("deleted_at")),
        in_scope=in_scope,
        scope_reason=reason,
        raw=frozen_map(raw),
        problems=frozen_map(problems),
    )


def task_to_sc(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical field values as an SC task body (only the keys given; unmapped None skipped)."""
    body: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "due_date":
            body["due_date"] = format_date(value)
        elif name in ("name", "details"):
            body[name] = normalize_text(value)
        elif name in ("status", "priority") and value is not None:
            body[name] = value
    return body


# --- Salesforce -----------------------------------------------------------------------------


def sf_to_side_task(
    data: Mapping[str, Any], owner_id: str | None, picklists: SfPicklists | None = None
) -> SideTask:
    """An SF Task record as a SideTask.

    Scope (rule 6): owned by `owner_id` (None skips the check), TaskSubtype 'Task' (missing
    counts as Task), not the root of a recurring series. A Status/Priority with no SC
    equivalent maps to None and is kept in `raw` (rule 9). A malformed ActivityDate is a problem.
    """
    picklists = picklists or SfPicklists()
    problems: dict[str, str] = {}
    raw: dict[str, Any] = {}

    sf_status = data.get("Status")
    status = sf_status_to_canonical(sf_status, picklists)
    if status is None:
        raw["status"] = _show(sf_status)
    sf_priority = data.get("Priority")
    priority = sf_priority_to_canonical(sf_priority, picklists)
    if priority is None:
        raw["priority"] = _show(sf_priority)
    due = _read_date(data.get("ActivityDate"), "ActivityDate", problems, raw)

    in_scope, reason = True, ""
    subtype = data.get("TaskSubtype")
    if owner_id is not None and data.get("OwnerId") != owner_id:
        in_scope, reason = False, "owned by someone else"
    elif subtype not in (None, "", "Task"):
        in_scope, reason = False, f"a logged {sanitize_text(subtype)[:40]}, not a reminder"
    elif data.get("IsRecurrence"):
        in_scope, reason = False, "the root of a recurring series"

    created = parse_timestamp(data.get("CreatedDate"))
    modified = _parse_again(data.get("SystemModstamp"), data.get("CreatedDate"), created)
    if modified is None:
        modified = parse_timestamp(data.get("LastModifiedDate"))
    return SideTask(
        side=Side.SALESFORCE,
        id=str(data.get("Id") or ""),
        fields=Task(
            name=normalize_text(data.get("Subject")),
            status=status,
            priority=priority,
            due_date=due,
            details=normalize_text(data.get("Description")),
        ),
        version=str(data.get("SystemModstamp") or ""),
        created_at=created,
        updated_at=modified,
        deleted=bool(data.get("IsDeleted")),
        in_scope=in_scope,
        scope_reason=reason,
        raw=frozen_map(raw),
        problems=frozen_map(problems),
    )


@quick_init  # one per created or updated record
@dataclass(frozen=True)
class SfWrite:
    """What `task_to_sf` writes: the record fields, and per-field notes (e.g. truncated)."""

    record: dict[str, Any]
    notes: Mapping[str, str] = field(default_factory=frozen_map)


def task_to_sf(changes: Mapping[str, Any], picklists: SfPicklists | None = None) -> SfWrite:
    """Canonical field values as SF Task fields, cut to fit, through the org's picklists.

    Only the keys given are written. A value the org cannot hold (a status/priority with no
    picklist value) is left out and noted UNMAPPED; a cut value is noted TRUNCATED.
    """
    picklists = picklists or SfPicklists()
    record: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for name, value in changes.items():
        if name == "name":
            text = normalize_text(value)
            record["Subject"] = fit(text, SF_SUBJECT_MAX)
            if record["Subject"] != text:
                notes["name"] = Note.TRUNCATED
        elif name == "details":
            text = normalize_text(value)
            record["Description"] = fit(text, SF_DESCRIPTION_MAX)
            if record["Description"] != text:
                notes["details"] = Note.TRUNCATED
        elif name == "due_date":
            record["ActivityDate"] = format_date(value)
        elif name == "status":
            sf_value = canonical_status_to_sf(value, picklists)
            if sf_value is None:
                notes["status"] = Note.UNMAPPED
            else:
                record["Status"] = sf_value
        elif name == "priority":
            sf_value = canonical_priority_to_sf(value, picklists)
            if sf_value is None:
                notes["priority"] = Note.UNMAPPED
            else:
                record["Priority"] = sf_value
    return SfWrite(record=record, notes=frozen_map(notes))


def project_to_sf(task: Task) -> Task:
    """The canonical task as Salesforce would hold it (text cut to fit).

    The planner compares a Salesforce task against this projection of the base, so a cut made
    by the sync is never mistaken for an edit in Salesforce (rule 10).
    """
    name, details = fit(task.name, SF_SUBJECT_MAX), fit(task.details, SF_DESCRIPTION_MAX)
    if name is task.name and details is task.details:
        return task  # it fits as it is (the common case): no copy
    return task.replace(name=name, details=details)


# --- tombstones -----------------------------------------------------------------------------


def deleted_side_task(side: Side, task_id: str, when: datetime | None = None) -> SideTask:
    """A tombstone for a task known only by id (SF deleted records, a 404 on a direct read)."""
    return SideTask(
        side=side,
        id=task_id,
        fields=Task(name=""),
        updated_at=when,
        deleted=True,
    )


# --- small helpers --------------------------------------------------------------------------


def _read_date(
    value: Any, label: str, problems: dict[str, str], raw: dict[str, Any]
) -> date | None:
    try:
        return parse_date(value)
    except ValueError:
        problems["due_date"] = f"malformed {label} {_show(value)!r}"
        raw["due_date"] = _show(value)
        return None


def _show(value: Any) -> str:
    """A bad value, made safe and short enough to show in a message ("" when missing)."""
    if value is None:
        return ""
    text = sanitize_text(value if isinstance(value, str) else repr(value))
    return text[:60]


def _version(value: Any) -> str:
    return "" if value is None or isinstance(value, bool) else str(value)
