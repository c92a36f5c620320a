"""Fault injection for the Sales Connect emulator (`POST /__emulator__/faults`).

A fault set is a list of rules; each request to the API (never `/__emulator__/` nor
`/openapi.json`) is matched against the rules in order and the first rule that fires shapes the
answer. Rules fire deterministically: `after` lets N matching requests through first, `times`
bounds how often a rule fires, and `probability` draws from a random generator seeded by `seed`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from emulators.sc_rules import invalid

FAULTS = ("rate_limit", "unavailable", "slow", "slow_body", "hang", "drop")
PHASES = ("before", "after")
_AFTER_FAULTS = ("slow", "hang", "drop")
_DEFAULT_DELAY = {"slow": 1.0, "slow_body": 0.5, "hang": 30.0}
_RULE_FIELDS = {
    "fault",
    "times",
    "after",
    "probability",
    "path",
    "methods",
    "retry_after",
    "delay_seconds",
    "phase",
}


@dataclass
class FaultRule:
    """One fault. `path` is a path prefix, `methods` empty = every method.

    - rate_limit: 429 with `Retry-After: retry_after` (no header when retry_after is null)
    - unavailable: 503 (with Retry-After when given); the request is never processed
    - slow: wait `delay_seconds` before (phase "before") or after processing the request
    - slow_body: send the response body in small pieces, `delay_seconds` apart
    - hang: like slow with a long default (30 s); a request the client abandons while the
      emulator waits "before" is dropped unprocessed
    - drop: close the connection without an answer, before (unprocessed) or after processing
    """

    fault: str
    times: int | None = 1
    after: int = 0
    probability: float = 1.0
    path: str = "/api/"
    methods: tuple[str, ...] = ()
    retry_after: int | None = 1
    delay_seconds: float = 1.0
    phase: str = "before"
    matched: int = 0
    fired: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else max(0, self.times - self.fired)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods)
        data["remaining"] = self.remaining
        return data


class FaultSet:
    """The active rules; thread-safe, because tests configure it from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = 0
        self._random = random.Random(0)

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._seed = 0
            self._random = random.Random(0)

    def configure(self, body: Any) -> None:
        """Replace every rule from the JSON body; raises ApiError (400) on anything malformed."""
        if not isinstance(body, dict):
            raise invalid("the fault set must be a JSON object")
        unknown = sorted(set(body) - {"seed", "rules", "expire_tokens"})
        if unknown:
            raise invalid(f"unknown keys: {', '.join(unknown)}", field=unknown[0])
        seed = body.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise invalid("seed must be an integer", field="seed")
        rules_json = body.get("rules", [])
        if not isinstance(rules_json, list):
            raise invalid("rules must be a list", field="rules")
        rules = [_parse_rule(item, index) for index, item in enumerate(rules_json)]
        with self._lock:
            self._rules = rules
            self._seed = seed
            self._random = random.Random(seed)

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counts it as fired)."""
        with self._lock:
            for rule in self._rules:
                if not path.startswith(rule.path):
                    continue
                if rule.methods and method not in rule.methods:
                    continue
                if rule.remaining == 0:
                    continue
                rule.matched += 1
                if rule.matched <= rule.after:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self._seed, "rules": [rule.as_json() for rule in self._rules]}


def _parse_rule(item: Any, index: int) -> FaultRule:
    where = f"rules[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object", field=where)
    unknown = sorted(set(item) - _RULE_FIELDS)
    if unknown:
        raise invalid(f"{where} has unknown keys: {', '.join(unknown)}", field=where)
    fault = item.get("fault")
    if fault not in FAULTS:
        raise invalid(f"{where}.fault must be one of: {', '.join(FAULTS)}", field=where)
    times = item.get("times", 1)
    if times is not None and not _is_int(times, minimum=1):
        raise invalid(f"{where}.times must be a positive integer or null", field=where)
    after = item.get("after", 0)
    if not _is_int(after, minimum=0):
        raise invalid(f"{where}.after must be an integer >= 0", field=where)
    probability = item.get("probability", 1.0)
    if not _is_number(probability) or not 0.0 <= probability <= 1.0:
        raise invalid(f"{where}.probability must be a number from 0 to 1", field=where)
    path = item.get("path", "/api/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid(f"{where}.path must be a path prefix starting with /", field=where)
    methods = item.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise invalid(f"{where}.methods must be a list of HTTP methods", field=where)
    retry_after = item.get("retry_after", 1)
    if retry_after is not None and not _is_int(retry_after, minimum=0):
        raise invalid(f"{where}.retry_after must be an integer >= 0 or null", field=where)
    delay = item.get("delay_seconds", _DEFAULT_DELAY.get(fault, 1.0))
    if not _is_number(delay) or not 0.0 <= delay <= 600.0:
        raise invalid(f"{where}.delay_seconds must be a number from 0 to 600", field=where)
    phase = item.get("phase", "before")
    if phase not in PHASES or (phase == "after" and fault not in _AFTER_FAULTS):
        raise invalid(
            f'{where}.phase must be "before" (or "after" for slow, hang and drop)', field=where
        )
    return FaultRule(
        fault=fault,
        times=times,
        after=after,
        probability=float(probability),
        path=path,
        methods=tuple(m.upper() for m in methods),
        retry_after=retry_after,
        delay_seconds=float(delay),
        phase=phase,
    )


def _is_int(value: Any, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = ["FAULTS", "FaultRule", "FaultSet"]
