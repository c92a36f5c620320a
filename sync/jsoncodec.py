"""JSON for the hot paths: orjson where it can, the standard library where it cannot.

orjson encodes the state's small documents about ten times faster than CPython's C encoder and
decodes the services' pages about three times faster; together that was a sixth of the engine's
CPU for 10,000 creates and the run after them (3.25 -> 2.69 s, docs/benchmarks.md). Where
the two libraries differ, the standard library has the last word, so the behaviour is the one
the rest of the code was written against:

- `dumps`: what orjson refuses (an int beyond 64 bits, a non-str key, a lone surrogate, nesting
  past 254 levels or a cycle) is encoded by the standard library, as ASCII with escapes; an
  error raised by `default` propagates as it is. Dataclasses and datetimes go to `default` as
  they do in the standard library (never a format nobody chose). Output is UTF-8. A float NaN
  or Infinity is written as null (orjson's rule, where the standard library would refuse it):
  the app saves no float that came from outside, since `loads` refuses them.
- `loads`: text orjson refuses is decoded by the standard library, which gives the error and its
  line and column, except that NaN and Infinity are refused (they are not JSON, and a value
  saved from them would come back as null).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON as UTF-8 bytes. Raises ValueError or TypeError for what cannot be encoded
    (or whatever `default` raises)."""
    try:
        return orjson.dumps(value, default=default, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if exc.__cause__ is not None:  # raised by `default`: the caller's own verdict
            raise exc.__cause__ from None
    text = json.dumps(value, default=default, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii")


class _NotJSONConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJSONConstant(f"{name} is not a JSON value")


def loads(data: bytes | str) -> Any:
    """The decoded value; json.JSONDecodeError (a ValueError) for text that is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except _NotJSONConstant as exc:  # NaN / Infinity, as a decode error like any other
        raise json.JSONDecodeError(str(exc), data if isinstance(data, str) else "", 0) from None
