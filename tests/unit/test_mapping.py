"""SC task JSON <-> canonical Task <-> SF Task record, as the wire shapes really look."""

import unicodedata
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.mapping import (
    ELLIPSIS,
    SF_DESCRIPTION_MAX,
    SF_SUBJECT_MAX,
    build_picklists,
    deleted_side_task,
    fit,
    normalize_text,
    parse_date,
    project_to_sf,
    sanitize_text,
    sc_to_side_task,
    sf_to_side_task,
    sf_units,
    task_to_sc,
    task_to_sf,
)
from sync.model import Note, SfPicklists, Side, Task

USER = "u-1"
OWNER = "005000000000001AAA"


def sc_json(**overrides):
    data = {
        "id": "t-1",
        "name": "Call Jane",
        "status": "open",
        "priority": "high",
        "due_date": "2026-11-30",
        "details": "about the renewal",
        "assignee_id": USER,
        "created_at": "2026-11-29T08:00:00Z",
        "updated_at": "2026-11-30T06:25:01Z",
        "version": 3,
        "deleted_at": None,
    }
    data.update(overrides)
    return data


def sf_record(**overrides):
    data = {
        "attributes": {"type": "Task", "url": "/services/data/v62.0/sobjects/Task/00T1"},
        "Id": "00T000000000001AAA",
        "Subject": "Call Jane",
        "Status": "Not Started",
        "Priority": "Normal",
        "ActivityDate": "2026-11-30",
        "Description": "about the renewal",
        "OwnerId": OWNER,
        "TaskSubtype": "Task",
        "IsRecurrence": False,
        "RecurrenceActivityId": None,
        "IsDeleted": False,
        "CreatedDate": "2026-11-29T08:00:00.000+0000",
        "LastModifiedDate": "2026-11-30T06:25:01.000+0000",
        "SystemModstamp": "2026-11-30T06:25:01.000+0000",
    }
    data.update(overrides)
    return data


# --- Sales Connect ------------------------------------------------------------------------


def test_sc_task_maps_all_five_fields_and_metadata():
    task = sc_to_side_task(sc_json(), USER)
    assert task.side is Side.SALESCONNECT
    assert task.id == "t-1"
    assert task.fields == Task(
        name="Call Jane",
        status="open",
        priority="high",
        due_date=date(2026, 11, 30),
        details="about the renewal",
    )
    assert task.version == "3"
    assert task.created_at == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert task.in_scope and task.valid and not task.deleted


def test_sc_task_assigned_to_someone_else_is_out_of_scope():
    task = sc_to_side_task(sc_json(assignee_id="u-2"), USER)
    assert not task.in_scope
    assert "someone else" in task.scope_reason


def test_sc_task_with_no_assignee_is_out_of_scope_and_says_so():
    task = sc_to_side_task(sc_json(assignee_id=None), USER)
    assert not task.in_scope
    assert task.scope_reason == "not assigned to anyone"


def test_sc_tombstone_is_deleted():
    assert sc_to_side_task(sc_json(deleted_at="2026-11-30T07:00:00Z"), USER).deleted


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"status": "archived"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"due_date": "30/11/2026"}, "due_date"),
        ({"due_date": "2026-02-30"}, "due_date"),
        ({"due_date": 20261130}, "due_date"),
    ],
)
def test_sc_bad_values_become_problems_not_exceptions(overrides, field):
    task = sc_to_side_task(sc_json(**overrides), USER)
    assert not task.valid
    assert field in task.problems


def test_sc_body_from_canonical_changes():
    body = task_to_sc({"name": "Call Bob", "due_date": date(2027, 1, 2), "status": "complete"})
    assert body == {"name": "Call Bob", "due_date": "2027-01-02", "status": "complete"}
    assert task_to_sc({"due_date": None}) == {"due_date": None}


def test_sc_roundtrip_through_canonical():
    task = sc_to_side_task(sc_json(), USER)
    body = task_to_sc(task.fields.as_dict())
    for key, value in body.items():
        assert value == sc_json()[key]


# --- Salesforce ---------------------------------------------------------------------------


def test_sf_record_maps_through_standard_picklists():
    task = sf_to_side_task(sf_record(), OWNER)
    assert task.side is Side.SALESFORCE
    assert task.fields == Task(
        name="Call Jane",
        status="open",
        priority="normal",
        due_date=date(2026, 11, 30),
        details="about the renewal",
    )
    assert task.version == "2026-11-30T06:25:01.000+0000"
    assert task.updated_at == datetime(2026, 11, 30, 6, 25, 1, tzinfo=UTC)
    assert task.in_scope and task.valid


def test_sf_completed_and_high_map_to_sc_values():
    task = sf_to_side_task(sf_record(Status="Completed", Priority="High"), OWNER)
    assert (task.fields.status, task.fields.priority) == ("complete", "high")


@pytest.mark.parametrize("status", ["In Progress", "Waiting on someone else", "Deferred", "Mine"])
def test_sf_other_statuses_are_unmapped_and_kept_raw(status):
    task = sf_to_side_task(sf_record(Status=status), OWNER)
    assert task.fields.status is None
    assert task.raw["status"] == status
    assert task.valid  # unmapped is rule 9, not an error


def test_sf_low_priority_is_unmapped():
    task = sf_to_side_task(sf_record(Priority="Low"), OWNER)
    assert task.fields.priority is None
    assert task.raw["priority"] == "Low"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"OwnerId": "005OTHER"}, "someone else"),
        ({"TaskSubtype": "Email"}, "Email"),
        ({"TaskSubtype": "Call"}, "Call"),
        ({"IsRecurrence": True}, "recurring"),
    ],
)
def test_sf_scope(overrides, reason):
    task = sf_to_side_task(sf_record(**overrides), OWNER)
    assert not task.in_scope
    assert reason in task.scope_reason


def test_sf_missing_subtype_counts_as_task_and_occurrence_is_in_scope():
    record = sf_record(TaskSubtype=None, RecurrenceActivityId="00T0000000000RRAAA")
    assert sf_to_side_task(record, OWNER).in_scope


def test_sf_malformed_activity_date_is_a_problem():
    task = sf_to_side_task(sf_record(ActivityDate="2026-13-01"), OWNER)
    assert "due_date" in task.problems
    assert task.fields.due_date is None


def test_sf_is_deleted_row_is_a_tombstone():
    assert sf_to_side_task(sf_record(IsDeleted=True), OWNER).deleted


def test_sf_write_uses_org_values_and_notes_truncation():
    long_name = "x" * 300
    write = task_to_sf(
        {"name": long_name, "status": "complete", "priority": "high", "due_date": None}
    )
    assert write.record["Subject"] == "x" * (SF_SUBJECT_MAX - 1) + ELLIPSIS
    assert len(write.record["Subject"]) == SF_SUBJECT_MAX
    assert write.record["Status"] == "Completed"
    assert write.record["Priority"] == "High"
    assert write.record["ActivityDate"] is None
    assert write.notes == {"name": Note.TRUNCATED}


def test_sf_write_description_cut_to_32000():
    write = task_to_sf({"details": "y" * 40_000})
    assert len(write.record["Description"]) == SF_DESCRIPTION_MAX
    assert write.record["Description"].endswith(ELLIPSIS)
    assert write.notes["details"] == Note.TRUNCATED


def test_sf_write_of_a_value_the_org_lacks_is_left_out_and_noted():
    picklists = build_picklists(
        {"Status": [{"value": "Open", "isClosed": False, "isDefault": True}], "Priority": []}
    )
    write = task_to_sf({"status": "complete"}, picklists)
    assert "Status" not in write.record
    assert write.notes["status"] == Note.UNMAPPED


# --- picklists ----------------------------------------------------------------------------


def test_picklists_default_to_the_standard_values():
    assert build_picklists(None) == SfPicklists()
    assert build_picklists({}) == SfPicklists()


def test_picklists_follow_the_org_default_open_and_first_closed_status():
    picklists = build_picklists(
        {
            "Status": [
                {"value": "Not Started", "isClosed": False, "isDefault": False},
                {"value": "Open", "isClosed": False, "isDefault": True},
                {"value": "Done", "isClosed": True, "isDefault": False},
                {"value": "Cancelled", "isClosed": True, "isDefault": False},
            ],
            "Priority": [{"value": "High"}, {"value": "Normal", "isDefault": True}],
        }
    )
    assert picklists.open_status == "Open"
    assert picklists.closed_status == "Done"
    record = sf_record(Status="Done")
    assert sf_to_side_task(record, OWNER, picklists).fields.status == "complete"
    assert sf_to_side_task(sf_record(Status="Not Started"), OWNER, picklists).fields.status is None
    assert task_to_sf({"status": "open"}, picklists).record == {"Status": "Open"}


def test_picklists_accept_raw_soql_rows():
    picklists = build_picklists(
        {
            "Status": [
                {"ApiName": "Not Started", "IsClosed": False, "IsDefault": True},
                {"ApiName": "Completed", "IsClosed": True, "IsDefault": False},
            ]
        }
    )
    assert picklists.statuses == ("Not Started", "Completed")
    assert picklists.closed_status == "Completed"
    assert picklists.priorities == SfPicklists().priorities


# --- text ---------------------------------------------------------------------------------


def test_cosmetic_rewrites_normalise_alike():
    assert normalize_text("Call Jane  \r\nabout  \r\n") == "Call Jane\nabout"
    assert normalize_text("Cafe\u0301") == normalize_text("Café")
    assert normalize_text(None) == ""


def test_sanitiser_drops_escapes_controls_and_bidi():
    nasty = "Hi\x1b[31mred\x1b[0m\x1b]0;title\x07 \u202egnp.exe\x00\x07 ok\tand\nmore"
    assert sanitize_text(nasty) == "Hired gnp.exe ok\tand\nmore"


def test_sf_record_text_is_sanitised_at_the_boundary():
    task = sf_to_side_task(sf_record(Subject="\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"), OWNER)
    assert task.fields.name == "click"


@pytest.mark.parametrize(
    "text",
    ["😀" * 200, "😀" * 130, "a" + "😀" * 128, "ab" * 100 + "😀" * 40],
    ids=["emoji-200", "emoji-130", "odd-offset", "mixed"],
)
def test_fit_counts_utf16_units_and_never_exceeds_the_limit(text):
    cut = fit(text, SF_SUBJECT_MAX)
    assert sf_units(cut) <= SF_SUBJECT_MAX
    assert sf_units(cut) >= SF_SUBJECT_MAX - 2  # cut no shorter than needed
    assert cut.endswith(ELLIPSIS)
    assert text.startswith(cut[:-1])


_FLAG_HALVES = "".join(map(chr, range(0x1F1E6, 0x1F200)))


def _ends_a_cluster(text: str, cut: str) -> bool:
    """Does `cut` (minus its "…") end where a user-perceived character of `text` ends?"""
    kept = cut[: -len(ELLIPSIS)]
    following = text[len(kept) : len(kept) + 1]
    if kept.endswith("\u200d"):  # a joiner binds to what follows
        return False
    if following and (
        unicodedata.category(following).startswith("M")  # combining mark
        or following in "\u200d\ufe0f"
        or 0x1F3FB <= ord(following) <= 0x1F3FF  # skin tone
    ):
        return False
    flag_halves = len(kept) - len(kept.rstrip(_FLAG_HALVES))
    return flag_halves % 2 == 0


@pytest.mark.parametrize(
    "text",
    [
        "q\u0301" * 200,  # a base letter and a combining accent with no precomposed form
        "a" + "q\u0301" * 200,
        "a" + "\U0001f468\u200d\U0001f469\u200d\U0001f467" * 40,  # ZWJ family emoji
        "\U0001f1eb\U0001f1f7" * 100,  # flags: pairs of regional indicators
        "a" + "\U0001f1eb\U0001f1f7" * 100,
        "\U0001f44d\U0001f3fd" * 100,  # thumbs up with a skin tone
        "1\ufe0f\u20e3" * 100,  # keycaps
    ],
    ids=["combining", "combining-odd", "zwj", "flags", "flags-odd", "skin-tone", "keycap"],
)
def test_fit_cuts_between_characters_as_the_user_sees_them(text):
    cut = fit(text, SF_SUBJECT_MAX)
    assert sf_units(cut) <= SF_SUBJECT_MAX
    assert sf_units(cut) >= SF_SUBJECT_MAX - 10  # whole clusters are at most this long here
    assert cut.endswith(ELLIPSIS) and text.startswith(cut[:-1])
    assert _ends_a_cluster(text, cut)
    cut.encode("utf-16-le")  # no lone surrogate (this raises on one)


def test_fit_description_counts_emoji_as_two_units():
    text = "\U0001f600" * 16_001  # 32,002 UTF-16 units but only 16,001 characters
    cut = fit(text, SF_DESCRIPTION_MAX)
    assert sf_units(cut) == SF_DESCRIPTION_MAX - 1  # half an emoji does not fit in the last unit
    assert cut == "\U0001f600" * 15_999 + ELLIPSIS
    write = task_to_sf({"name": "😀" * 128, "details": text})
    assert sf_units(write.record["Subject"]) <= SF_SUBJECT_MAX
    assert sf_units(write.record["Description"]) <= SF_DESCRIPTION_MAX
    assert write.notes == {"name": Note.TRUNCATED, "details": Note.TRUNCATED}


# Text from either service: astral characters, combining marks, joiners, flags, blanks.
_TRICKY = st.lists(
    st.one_of(
        st.sampled_from(["a", " ", "\n", "e\u0301", "\u0301", "\u200d", "\ufe0f", "\u1161"]),
        st.sampled_from(["\U0001f1eb\U0001f1f7", "\U0001f1eb", "\U0001f600", "\U0001f3fd"]),
        st.sampled_from(["\U0001f468\u200d\U0001f469", "한", "\u1100"]),
        st.characters(codec="utf-8"),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TRICKY, st.integers(2, 30))
def test_fit_never_exceeds_the_limit_and_reads_back_unchanged(raw, limit):
    text = normalize_text(raw)
    cut = fit(text, limit)
    assert sf_units(cut) <= limit
    assert normalize_text(cut) == cut  # reading it back from Salesforce is not an edit
    assert fit(cut, limit) == cut
    cut.encode("utf-16-le")
    if cut != text:
        assert cut.endswith(ELLIPSIS) and text.startswith(cut[:-1].rstrip())


def test_fit_of_short_text_is_the_text():
    assert fit("short", SF_SUBJECT_MAX) == "short"


def test_cut_text_is_already_normalised():
    cut = fit("a" * 253 + "   bbbb", SF_SUBJECT_MAX)
    assert normalize_text(cut) == cut


def test_projection_cuts_only_what_salesforce_cannot_hold():
    task = Task(name="n" * 256, details="d" * 10)
    projected = project_to_sf(task)
    assert projected.name == "n" * 254 + ELLIPSIS
    assert projected.details == task.details


@pytest.mark.parametrize("value", ["2026-1-5", "2026-01-05T00:00:00", "tomorrow", "20260105"])
def test_parse_date_is_strict(value):
    with pytest.raises(ValueError):
        parse_date(value)


def test_dates_are_days_not_instants():
    assert parse_date("2026-03-29") == date(2026, 3, 29)  # a DST-change day stays itself


def test_tombstone_stub_for_a_known_id():
    stub = deleted_side_task(Side.SALESFORCE, "00T1")
    assert stub.deleted and stub.id == "00T1" and stub.side is Side.SALESFORCE
