"""The SOQL subset: parsing, Salesforce's semantics and its error messages."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from emulators.sf_ids import make_id
from emulators.soql import SoqlError, Table, execute, parse, parse_datetime

NOW = datetime(2026, 11, 30, 6, 25, 1, tzinfo=UTC)
TYPES = {
    "Id": "id",
    "Subject": "combobox",
    "Status": "picklist",
    "ActivityDate": "date",
    "IsDeleted": "boolean",
    "SystemModstamp": "datetime",
    "Description": "textarea",
    "OwnerId": "reference",
    "RecurrenceInterval": "int",
}
IDS = [make_id("00T", n) for n in range(1, 5)]
ROWS = [
    {"Id": IDS[0], "Subject": "Call Jane", "Status": "Not Started",
     "ActivityDate": date(2026, 12, 1), "IsDeleted": False,
     "SystemModstamp": datetime(2026, 11, 30, 6, 0, tzinfo=UTC), "Description": "notes",
     "OwnerId": make_id("005", 1), "RecurrenceInterval": None},
    {"Id": IDS[1], "Subject": None, "Status": "Completed", "ActivityDate": None,
     "IsDeleted": True, "SystemModstamp": datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
     "Description": None, "OwnerId": make_id("005", 2), "RecurrenceInterval": 2},
    {"Id": IDS[2], "Subject": "email bob", "Status": "In Progress",
     "ActivityDate": date(2026, 11, 30), "IsDeleted": False,
     "SystemModstamp": datetime(2026, 11, 1, 0, 0, tzinfo=UTC), "Description": None,
     "OwnerId": make_id("005", 1), "RecurrenceInterval": 5},
    {"Id": IDS[3], "Subject": "Call 100% sure", "Status": "Not Started",
     "ActivityDate": date(2026, 11, 29), "IsDeleted": False,
     "SystemModstamp": datetime(2026, 11, 30, 6, 25, 0, 500000, tzinfo=UTC),
     "Description": None, "OwnerId": make_id("005", 1), "RecurrenceInterval": None},
]  # fmt: skip
TABLES = {"Task": Table("Task", TYPES, ROWS)}


def ids(text: str) -> list[str]:
    return [IDS.index(r["Id"]) for r in execute(text, TABLES, now=NOW).rows]


def error(text: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        execute(text, TABLES, now=NOW)
    return caught.value


def test_selects_fields_in_canonical_case_and_order() -> None:
    result = execute("select subject, ID from task", TABLES, now=NOW)
    assert result.fields == ["Subject", "Id"]
    assert result.object_name == "Task"
    assert result.total_size == 4


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Status = 'not started'", [0, 3]),  # strings compare case-insensitively
        ("Status != 'Not Started'", [1, 2]),
        ("Subject != 'Call Jane'", [1, 2, 3]),  # != matches nulls, as in SOQL
        ("Subject = null", [1]),
        ("Subject != null", [0, 2, 3]),
        ("Status IN ('Completed', 'In Progress')", [1, 2]),
        ("Subject NOT IN ('Call Jane')", [1, 2, 3]),
        ("Subject LIKE 'call%'", [0, 3]),
        ("Subject LIKE '%100\\% sure'", [3]),
        ("Subject LIKE 'email _ob'", [2]),
        ("IsDeleted = true", [1]),
        ("RecurrenceInterval > 2", [2]),
        ("RecurrenceInterval <= 2", [1]),
        ("ActivityDate < 2026-12-01", [2, 3]),
        ("ActivityDate >= 2026-11-30", [0, 2]),
        ("SystemModstamp > 2026-11-30T06:00:00Z", [3]),
        ("SystemModstamp >= 2026-11-30T06:00:00.000+0000", [0, 3]),
        ("SystemModstamp >= 2026-11-30T07:00:00+01:00", [0, 3]),
        ("ActivityDate = TODAY", [2]),
        ("ActivityDate = YESTERDAY", [3]),
        ("ActivityDate = TOMORROW", [0]),
        ("ActivityDate = NEXT_N_DAYS:3", [0]),
        ("SystemModstamp = LAST_N_DAYS:1", [0, 1, 3]),
        ("NOT Status = 'Not Started'", [1, 2]),
        ("(Status = 'Completed' OR Subject LIKE 'email%') AND IsDeleted = false", [2]),
        ("Status = 'Not Started' AND (ActivityDate = TODAY OR ActivityDate = YESTERDAY)", [3]),
        (f"Id = '{IDS[2][:15]}'", [2]),  # a 15-character id matches its 18-character form
        (f"OwnerId = '{make_id('005', 2)}'", [1]),
    ],
)
def test_where_semantics(where: str, expected: list[int]) -> None:
    assert ids(f"SELECT Id FROM Task WHERE {where}") == expected


def test_order_by_with_nulls_first_and_last_limit_and_offset() -> None:
    assert ids("SELECT Id FROM Task ORDER BY ActivityDate") == [1, 3, 2, 0]
    assert ids("SELECT Id FROM Task ORDER BY ActivityDate DESC") == [0, 2, 3, 1]
    assert ids("SELECT Id FROM Task ORDER BY ActivityDate ASC NULLS LAST") == [3, 2, 0, 1]
    assert ids("SELECT Id FROM Task ORDER BY Status, Subject DESC") == [1, 2, 0, 3]
    assert ids("SELECT Id FROM Task ORDER BY ActivityDate LIMIT 2 OFFSET 1") == [3, 2]


def test_count() -> None:
    result = execute("SELECT COUNT() FROM Task WHERE IsDeleted = false", TABLES, now=NOW)
    assert result.count_only and result.total_size == 3
    assert execute("SELECT COUNT(Subject) FROM Task", TABLES, now=NOW).aggregate == 3


def test_row_filter_hides_rows_before_the_query_sees_them() -> None:
    result = execute(
        "SELECT Id FROM Task", TABLES, now=NOW, row_filter=lambda r: not r["IsDeleted"]
    )
    assert len(result.rows) == 3


def test_syntax_error_has_salesforce_shape() -> None:
    failure = error("SELECT Id FRM Task")
    assert failure.code == "MALFORMED_QUERY"
    assert failure.message == (
        "\nSELECT Id FRM Task\n          ^\nERROR at Row:1:Column:11\nunexpected token: FRM"
    )


def test_and_or_mixed_without_parentheses_is_refused() -> None:
    failure = error("SELECT Id FROM Task WHERE Status = 'a' AND Subject = 'b' OR IsDeleted = true")
    assert failure.code == "MALFORMED_QUERY"
    assert "unexpected token: OR" in failure.message


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("SELECT Foo FROM Task", "INVALID_FIELD", "No such column 'Foo' on entity 'Task'"),
        ("SELECT Owner.Name FROM Task", "INVALID_FIELD", "Didn't understand relationship 'Owner'"),
        ("SELECT Id FROM Tasks", "INVALID_TYPE", "sObject type 'Tasks' is not supported"),
        (
            "SELECT Id FROM Task WHERE SystemModstamp > '2026-01-01'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Task WHERE ActivityDate = 2026-01-01T00:00:00Z",
            "INVALID_FIELD",
            "must be of type date",
        ),
        (
            "SELECT Id FROM Task WHERE Subject = 5",
            "INVALID_FIELD",
            "must be of type string and should be enclosed in quotes",
        ),
        ("SELECT Id FROM Task WHERE IsDeleted = 'true'", "INVALID_FIELD", "type boolean"),
        ("SELECT Id FROM Task WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID"),
        ("SELECT Id FROM Task WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
        ("SELECT Id FROM Task ORDER BY Description", "INVALID_FIELD", "can not be sorted"),
        ("SELECT Id, id FROM Task", "MALFORMED_QUERY", "duplicate field selected: Id"),
        ("SELECT Id FROM Task LIMIT -1", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id FROM Task WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Task WHERE Subject = 'open", "MALFORMED_QUERY", "unexpected token"),
        ("   ", "MALFORMED_QUERY", "A query string has to be specified"),
    ],
)
def test_errors(text: str, code: str, fragment: str) -> None:
    failure = error(text)
    assert failure.code == code
    assert fragment in failure.message


def test_error_position_on_a_later_line() -> None:
    failure = error("SELECT Id\nFROM Task\nWHERE Bogus = 1")
    assert "ERROR at Row:3:Column:7" in failure.message


def test_string_escapes() -> None:
    query = parse("SELECT Id FROM Task WHERE Subject = 'it\\'s \\\\ here\\n'")
    assert query.where.values[0].value == "it's \\ here\n"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30T06:25:01Z",
        "2026-11-30T06:25:01.000+0000",
        "2026-11-30T06:25:01+00:00",
        "2026-11-30T07:25:01+01:00",
        "2026-11-30T06:25:01.000Z",
    ],
)
def test_parse_datetime_accepts_the_formats_clients_send(text: str) -> None:
    assert parse_datetime(text) == datetime(2026, 11, 30, 6, 25, 1, tzinfo=UTC)


def test_parse_datetime_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        parse_datetime("2026-11-30T06:25:01")
