"""The SOQL subset the emulator answers: parse, check against an object's fields, evaluate.

Supported::

    SELECT field, ... | COUNT() | COUNT(field)
    FROM object
    [WHERE condition]            =, !=, <>, <, >, <=, >=, [NOT] IN (...), LIKE, AND, OR, NOT, ( )
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n] [OFFSET n]

Literals: 'strings' (backslash escapes), numbers, true/false, null, dates (2026-11-30),
datetimes (2026-11-30T06:25:01Z, ...+00:00, ...+0000, optional .fff), and the date literals
TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n.

As in Salesforce: keywords and names are case-insensitive, string comparison is
case-insensitive, ``!=`` and ``NOT IN`` match nulls, AND and OR cannot be mixed without
parentheses, long text fields cannot be filtered or sorted, and a literal of the wrong type
for its field is an INVALID_FIELD error. Errors carry Salesforce's codes (MALFORMED_QUERY,
INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR) and its "ERROR at Row:..:Column:.."
message shape.

This module knows nothing about HTTP or the emulator: ``execute`` takes the rows of each object
as dicts of Python values (str, bool, int, None, ``date``, aware ``datetime``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from emulators.sf_ids import normalize_id


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is the errorCode of the REST error array."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Table:
    """What ``execute`` needs to know about one object: its field types and its rows."""

    name: str
    field_types: Mapping[str, str]  # canonical field name -> describe type
    rows: Sequence[Mapping[str, Any]]


# ----------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
    """,
    re.VERBOSE,
)
_KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc",
    "desc", "nulls", "first", "last", "limit", "offset", "null", "true", "false", "count",
}  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
_ESCAPES.update({"%": "\\%", "_": "\\_"})  # kept escaped for LIKE


@dataclass(frozen=True)
class Token:
    kind: str  # word, keyword, string, number, date, datetime, op, punct, end
    text: str
    pos: int

    @property
    def lower(self) -> str:
        return self.text.lower()


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise _error_at(text, pos, "MALFORMED_QUERY", f"unexpected token: '{text[pos]}'")
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            if kind == "word" and value.lower() in _KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, value, pos))
        pos = match.end()
    tokens.append(Token("end", "<EOF>", len(text)))
    return tokens


def _error_at(text: str, pos: int, code: str, message: str) -> SoqlError:
    """Salesforce echoes the query line with a caret under the offending column."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    column = pos - line_start + 1
    caret = " " * (column - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{message}")


# ----------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class FieldRef:
    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, boolean, null, date, datetime, date_literal
    value: Any
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # =, !=, <, >, <=, >=, in, not in, like
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Comparison | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class Query:
    text: str
    object_name: str
    object_pos: int
    fields: tuple[FieldRef, ...]
    count: bool = False
    count_field: FieldRef | None = None
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


# ----------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.token
        return _error_at(self.text, token.pos, "MALFORMED_QUERY", f"unexpected token: {token.text}")

    def accept_keyword(self, *words: str) -> bool:
        if self.token.kind == "keyword" and self.token.lower == words[0]:
            if len(words) == 1:
                self.advance()
                return True
            following = self.tokens[self.index + 1]
            if following.kind == "keyword" and following.lower == words[1]:
                self.index += 2
                return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.accept_keyword(word):
            raise self.unexpected()

    def expect_punct(self, char: str) -> None:
        if self.token.kind != "punct" or self.token.text != char:
            raise self.unexpected()
        self.advance()

    def field_ref(self) -> FieldRef:
        token = self.token
        if token.kind != "word" or ":" in token.text:
            raise self.unexpected()
        self.advance()
        return FieldRef(token.text, token.pos)

    def parse(self) -> Query:
        if not self.accept_keyword("select"):
            raise self.unexpected()
        count = False
        count_field = None
        fields: list[FieldRef] = []
        if self.token.kind == "keyword" and self.token.lower == "count":
            self.advance()
            self.expect_punct("(")
            count = True
            if not (self.token.kind == "punct" and self.token.text == ")"):
                count_field = self.field_ref()
            self.expect_punct(")")
        else:
            fields.append(self.field_ref())
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                fields.append(self.field_ref())
        self.expect_keyword("from")
        obj = self.token
        if obj.kind != "word" or "." in obj.text or ":" in obj.text:
            raise self.unexpected()
        self.advance()
        where = self.condition() if self.accept_keyword("where") else None
        order_by: list[OrderItem] = []
        if self.accept_keyword("order", "by"):
            order_by.append(self.order_item())
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                order_by.append(self.order_item())
        limit = self.integer() if self.accept_keyword("limit") else None
        offset = self.integer() if self.accept_keyword("offset") else None
        if self.token.kind != "end":
            raise self.unexpected()
        return Query(
            text=self.text,
            object_name=obj.text,
            object_pos=obj.pos,
            fields=tuple(fields),
            count=count,
            count_field=count_field,
            where=where,
            order_by=tuple(order_by),
            limit=limit,
            offset=offset,
        )

    def integer(self) -> int:
        token = self.token
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        descending = False
        if self.accept_keyword("desc"):
            descending = True
        else:
            self.accept_keyword("asc")
        nulls_last = descending  # Salesforce: ASC puts nulls first, DESC puts them last
        if self.accept_keyword("nulls"):
            if self.accept_keyword("first"):
                nulls_last = False
            elif self.accept_keyword("last"):
                nulls_last = True
            else:
                raise self.unexpected()
        return OrderItem(ref, descending, nulls_last)

    def condition(self) -> Condition:
        first = self.unary()
        parts = [first]
        joiner: str | None = None
        while self.token.kind == "keyword" and self.token.lower in ("and", "or"):
            word = self.token.lower
            if joiner and word != joiner:
                # Salesforce refuses "a AND b OR c": the grouping must be explicit.
                raise self.unexpected()
            joiner = word
            self.advance()
            parts.append(self.unary())
        return first if joiner is None else BoolOp(joiner, tuple(parts))

    def unary(self) -> Condition:
        if self.accept_keyword("not"):
            return Not(self.unary())
        if self.token.kind == "punct" and self.token.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        ref = self.field_ref()
        token = self.token
        if token.kind == "op":
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return Comparison(ref, op, (self.literal(),))
        if self.accept_keyword("like"):
            return Comparison(ref, "like", (self.literal(),))
        negated = self.accept_keyword("not")
        if self.accept_keyword("in"):
            self.expect_punct("(")
            values = [self.literal()]
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return Comparison(ref, "not in" if negated else "in", tuple(values))
        raise self.unexpected()

    def literal(self) -> Literal:
        token = self.advance()
        kind, text = token.kind, token.text
        if kind == "string":
            return Literal("string", _unescape(text[1:-1]), token.pos)
        if kind == "number":
            return Literal("number", float(text) if "." in text else int(text), token.pos)
        if kind == "date":
            try:
                return Literal("date", date.fromisoformat(text), token.pos)
            except ValueError:
                raise self.unexpected(token) from None
        if kind == "datetime":
            try:
                return Literal("datetime", parse_datetime(text), token.pos)
            except ValueError:
                raise self.unexpected(token) from None
        if kind == "keyword" and token.lower in ("true", "false"):
            return Literal("boolean", token.lower == "true", token.pos)
        if kind == "keyword" and token.lower == "null":
            return Literal("null", None, token.pos)
        if kind == "word" and _date_literal_name(text):
            return Literal("date_literal", text.upper(), token.pos)
        raise self.unexpected(token)


def _unescape(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


_DATE_LITERAL = re.compile(r"^(TODAY|YESTERDAY|TOMORROW|(LAST|NEXT)_N_DAYS:\d+)$", re.IGNORECASE)


def _date_literal_name(text: str) -> bool:
    return bool(_DATE_LITERAL.match(text))


def parse(text: str) -> Query:
    """Parse ``text`` or raise ``SoqlError`` (MALFORMED_QUERY)."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text).parse()


def parse_datetime(text: str) -> datetime:
    """ISO 8601 / Salesforce datetimes: Z, +00:00 or +0000 offsets, optional millis."""
    normalized = text.strip().replace(" ", "+")
    if normalized.endswith("Z"):
        normalized = normalized[:-1] + "+00:00"
    match = re.match(r"^(.*[+-])(\d{2})(\d{2})$", normalized)
    if match and "T" in normalized:
        normalized = f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    value = datetime.fromisoformat(normalized)
    if value.tzinfo is None:
        raise ValueError(f"datetime without a time zone: {text}")
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------- evaluation

_LONG_TEXT = {"textarea"}
_TEXT = {"string", "combobox", "picklist", "textarea", "email", "phone", "url"}
_IDS = {"id", "reference"}


@dataclass
class QueryResult:
    object_name: str
    fields: list[str]  # canonical names, in SELECT order
    rows: list[Mapping[str, Any]]
    total_size: int
    count_only: bool = False
    aggregate: int | None = None  # COUNT(field)


def execute(
    query: Query | str,
    tables: Mapping[str, Table],
    *,
    now: datetime,
    tz: tzinfo = UTC,
    row_filter: Callable[[Mapping[str, Any]], bool] | None = None,
) -> QueryResult:
    """Run ``query`` over ``tables``; ``row_filter`` hides rows first (e.g. deleted ones)."""
    if isinstance(query, str):
        query = parse(query)
    table = _resolve_table(query, tables)
    checker = _Checker(query, table, now.astimezone(tz), tz)
    selected = [checker.field(ref) for ref in query.fields]
    seen: set[str] = set()
    for ref, name in zip(query.fields, selected, strict=True):
        if name in seen:
            raise _error_at(
                query.text, ref.pos, "MALFORMED_QUERY", f"duplicate field selected: {name}"
            )
        seen.add(name)
    count_name = checker.field(query.count_field) if query.count_field else None
    predicate = checker.condition(query.where) if query.where else None
    order = [(checker.field(item.field, sort=True), item) for item in query.order_by]

    rows = [r for r in table.rows if (row_filter is None or row_filter(r))]
    if predicate:
        rows = [r for r in rows if predicate(r)]
    for name, item in reversed(order):
        rows = _sorted(rows, name, table.field_types[name], item)
    if query.offset:
        rows = rows[query.offset :]
    if query.limit is not None:
        rows = rows[: query.limit]
    if query.count:
        if count_name is None:
            return QueryResult(table.name, [], [], len(rows), count_only=True)
        counted = sum(1 for r in rows if r.get(count_name) is not None)
        return QueryResult(table.name, [], [], 1, aggregate=counted)
    return QueryResult(table.name, selected, rows, len(rows))


def _resolve_table(query: Query, tables: Mapping[str, Table]) -> Table:
    for name, table in tables.items():
        if name.lower() == query.object_name.lower():
            return table
    raise _error_at(
        query.text,
        query.object_pos,
        "INVALID_TYPE",
        f"sObject type '{query.object_name}' is not supported. If you are attempting to use a "
        "custom object, be sure to append the '__c' after the entity name. Please reference "
        "your WSDL or the describe call for the appropriate names.",
    )


def _sorted(rows: list, name: str, ftype: str, item: OrderItem) -> list:
    present = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]

    def key(row: Mapping[str, Any]) -> Any:
        value = row[name]
        return value.lower() if isinstance(value, str) and ftype in _TEXT else value

    present.sort(key=key, reverse=item.descending)
    return present + missing if item.nulls_last else missing + present


class _Checker:
    """Resolves names against the table and turns conditions into Python predicates."""

    def __init__(self, query: Query, table: Table, now_local: datetime, tz: tzinfo):
        self.query = query
        self.table = table
        self.today = now_local.date()
        self.tz = tz
        self.by_lower = {name.lower(): name for name in table.field_types}

    def fail(self, pos: int, code: str, message: str) -> SoqlError:
        return _error_at(self.query.text, pos, code, message)

    def field(self, ref: FieldRef, *, sort: bool = False, filtering: bool = False) -> str:
        name = self.by_lower.get(ref.name.lower())
        if name is None:
            if "." in ref.name:
                relation = ref.name.split(".", 1)[0]
                message = (
                    f"Didn't understand relationship '{relation}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names."
                )
            else:
                message = (
                    f"No such column '{ref.name}' on entity '{self.table.name}'. If you are "
                    "attempting to use a custom field, be sure to append the '__c' after the "
                    "custom field name. Please reference your WSDL or the describe call for the "
                    "appropriate names."
                )
            raise self.fail(ref.pos, "INVALID_FIELD", message)
        if self.table.field_types[name] in _LONG_TEXT and (sort or filtering):
            verb = "sorted" if sort else "filtered"
            raise self.fail(
                ref.pos, "INVALID_FIELD", f"field '{name}' can not be {verb} in a query call"
            )
        return name

    def condition(self, cond: Condition) -> Callable[[Mapping[str, Any]], bool]:
        if isinstance(cond, BoolOp):
            parts = [self.condition(p) for p in cond.parts]
            if cond.op == "and":
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(cond, Not):
            inner = self.condition(cond.part)
            return lambda row: not inner(row)
        return self.comparison(cond)

    def comparison(self, comp: Comparison) -> Callable[[Mapping[str, Any]], bool]:
        name = self.field(comp.field, filtering=True)
        ftype = self.table.field_types[name]
        op = comp.op
        if op == "like":
            if ftype not in _TEXT:
                raise self.fail(
                    comp.field.pos,
                    "INVALID_FIELD",
                    f"invalid operator on {_type_word(ftype)} field: {name}",
                )
            pattern = self.like_pattern(comp.values[0])
            return lambda row: isinstance(row.get(name), str) and bool(pattern.match(row[name]))
        values = [self.coerce(name, ftype, lit, op) for lit in comp.values]
        if op in ("in", "not in"):
            tests = [self.single_test(name, ftype, "=", value) for value in values]
            if op == "in":
                return lambda row: any(t(row) for t in tests)
            return lambda row: not any(t(row) for t in tests)
        return self.single_test(name, ftype, op, values[0])

    def like_pattern(self, lit: Literal) -> re.Pattern[str]:
        if lit.kind != "string":
            raise self.fail(lit.pos, "MALFORMED_QUERY", "LIKE needs a string value")
        out = []
        text = lit.value
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\\" and index + 1 < len(text) and text[index + 1] in "%_":
                out.append(re.escape(text[index + 1]))
                index += 2
                continue
            out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
            index += 1
        return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)

    def coerce(self, name: str, ftype: str, lit: Literal, op: str) -> Any:
        """The literal as a comparable value, or INVALID_FIELD when its type does not fit."""
        if lit.kind == "null":
            if op not in ("=", "!=", "in", "not in"):
                raise self.fail(lit.pos, "MALFORMED_QUERY", "unexpected token: null")
            return None
        if ftype == "boolean":
            if lit.kind != "boolean":
                raise self.type_error(name, "boolean", lit)
            return lit.value
        if ftype in ("int", "double"):
            if lit.kind != "number":
                raise self.type_error(name, "number", lit)
            return lit.value
        if ftype == "date":
            if lit.kind == "date":
                return (lit.value, lit.value)
            if lit.kind == "date_literal":
                return self.date_range(lit.value)
            raise self.type_error(name, "date", lit)
        if ftype == "datetime":
            if lit.kind == "datetime":
                return (lit.value, lit.value)
            if lit.kind == "date_literal":
                first, last = self.date_range(lit.value)
                start = datetime.combine(first, datetime.min.time(), self.tz).astimezone(UTC)
                end = datetime.combine(last + timedelta(days=1), datetime.min.time(), self.tz)
                return (start, end.astimezone(UTC) - timedelta(microseconds=1))
            raise self.type_error(name, "dateTime", lit)
        if lit.kind != "string":
            raise self.type_error(name, "string", lit)
        if ftype in _IDS:
            normalized = normalize_id(lit.value)
            if normalized is None:
                raise self.fail(
                    lit.pos, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.value}"
                )
            return normalized
        return lit.value

    def type_error(self, name: str, type_word: str, lit: Literal) -> SoqlError:
        quotes = (
            "should be enclosed in quotes"
            if type_word == "string"
            else "should not be enclosed in quotes"
        )
        return self.fail(
            lit.pos,
            "INVALID_FIELD",
            f"value of filter criterion for field '{name}' must be of type {type_word} "
            f"and {quotes}",
        )

    def date_range(self, literal: str) -> tuple[date, date]:
        today = self.today
        if literal == "TODAY":
            return today, today
        if literal == "YESTERDAY":
            day = today - timedelta(days=1)
            return day, day
        if literal == "TOMORROW":
            day = today + timedelta(days=1)
            return day, day
        kind, _, count = literal.partition(":")
        days = int(count)
        if kind == "LAST_N_DAYS":
            return today - timedelta(days=days), today
        return today + timedelta(days=1), today + timedelta(days=days)

    def single_test(
        self, name: str, ftype: str, op: str, value: Any
    ) -> Callable[[Mapping[str, Any]], bool]:
        if value is None:
            if op == "=":
                return lambda row: row.get(name) is None
            return lambda row: row.get(name) is not None
        if isinstance(value, tuple):  # a date/datetime range [low, high]
            low, high = value
            range_tests = {
                "=": lambda v: low <= v <= high,
                "!=": lambda v: not (low <= v <= high),
                "<": lambda v: v < low,
                "<=": lambda v: v <= high,
                ">": lambda v: v > high,
                ">=": lambda v: v >= low,
            }
            test = range_tests[op]
            if op == "!=":
                return lambda row: row.get(name) is None or test(row[name])
            return lambda row: row.get(name) is not None and test(row[name])
        if isinstance(value, str):
            if ftype in _IDS:
                wanted = value
                fold = _id_key
            else:
                wanted = value.lower()
                fold = str.lower
            compare = _COMPARE[op]
            if op == "!=":
                return lambda row: row.get(name) is None or fold(row[name]) != wanted
            return lambda row: row.get(name) is not None and compare(fold(row[name]), wanted)
        compare = _COMPARE[op]
        if op == "!=":
            return lambda row: row.get(name) is None or row[name] != value
        return lambda row: row.get(name) is not None and compare(row[name], value)


def _id_key(value: str) -> str:
    return normalize_id(value) or value


def _type_word(ftype: str) -> str:
    return {"datetime": "datetime", "date": "date", "boolean": "boolean"}.get(ftype, ftype)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

__all__ = ["Query", "QueryResult", "SoqlError", "Table", "execute", "parse", "parse_datetime"]
