"""Salesforce record ids: 15-character case-sensitive ids and their 18-character form."""

from __future__ import annotations

import re
import string

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_ID_SHAPE = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-5]{3})?$")


def checksum_suffix(id15: str) -> str:
    """The three characters Salesforce appends so that the id survives case-folding."""
    suffix = ""
    for chunk_start in (0, 5, 10):
        bits = 0
        for position, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if char.isupper():
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def make_id(prefix: str, number: int, pod: str = "5g0") -> str:
    """An 18-character id: 3-char key prefix, 3-char pod, 9 base62 digits, checksum."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    body = prefix + pod + digits.rjust(9, "0")
    if len(body) != 15:
        raise ValueError(f"cannot build a 15-character id from prefix {prefix!r}")
    return body + checksum_suffix(body)


def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when it is no id at all."""
    if not isinstance(value, str) or not _ID_SHAPE.match(value):
        return None
    body = value[:15]
    full = body + checksum_suffix(body)
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    return full
