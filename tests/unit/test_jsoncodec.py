"""The fast JSON codec keeps the standard library's rules where orjson's differ."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from sync import jsoncodec
from sync.secrets import Secret
from sync.storage import StateWriteError, serialise


def test_what_orjson_refuses_is_encoded_as_the_standard_library_would() -> None:
    # a lone surrogate (escaped), a number beyond 64 bits (exact), a non-text key (as text)
    value = {"text": "a\ud800b", "big": 10**30, 7: "seven"}
    encoded = jsoncodec.dumps(value)
    assert encoded == b'{"text":"a\\ud800b","big":1000000000000000000000000000000,"7":"seven"}'
    assert json.loads(encoded) == {"text": "a\ud800b", "big": 10**30, "7": "seven"}


def test_dates_dataclasses_and_secrets_are_never_written_in_a_format_nobody_chose() -> None:
    @dataclass
    class Point:
        x: int

    for value in (datetime(2026, 11, 30, tzinfo=UTC), Point(1), Secret("hunter2")):
        with pytest.raises(StateWriteError) as caught:
            serialise({"value": value})
        assert "hunter2" not in str(caught.value)


def test_the_state_is_utf8_text_that_reads_back_the_same() -> None:
    value = {"name": "Café ☕ «rendez-vous»", "nested": [{"n": 1}, None, True]}
    text = serialise(value).decode("utf-8")
    assert "Café ☕" in text
    assert jsoncodec.loads(text.encode("utf-8")) == value


@pytest.mark.parametrize("text", [b'{"a": NaN}', b'{"a": Infinity}', b"[-Infinity]"])
def test_not_a_number_is_not_json_and_is_refused(text: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="is not a JSON value"):
        jsoncodec.loads(text)


def test_text_that_is_not_json_gets_the_standard_librarys_line_and_column() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        jsoncodec.loads(b'{"a": 1,\n "b": }')
    assert (caught.value.lineno, caught.value.colno) == (2, 7)


def test_a_lone_surrogate_escape_from_a_service_still_decodes() -> None:
    # orjson refuses it; the standard library reads it, and the mapping strips it later
    assert jsoncodec.loads(b'{"name": "a\\ud800b"}') == {"name": "a\ud800b"}
