"""JSON values to typed SQL values, and one formula type to another, never failing.

A record's value becomes a column's value by these rules (a value that does not convert is
NULL, and no input can make a cast raise, on PostgreSQL 15 as on 16: every cast runs inside a
CASE arm whose condition has already proven the JSON kind, or the text well-formed):

- number: a JSON number, or a string holding a plain decimal number (`-1.5`, `2e3`, at most 100
  characters, exponent of at most 3 digits); kept as an exact `numeric`.
- text (and select, user, file): a string as is; a number or boolean as its JSON text.
- boolean: `true`/`false`, or a string that is `true` or `false` in any letter case.
- date, datetime: a string `YYYY-MM-DD`, optionally followed by `T` or a space, `HH:MM`,
  optional `:SS` and up to 6 fraction digits, and an optional offset `Z`, `±HH:MM` or `±HHMM`
  (no offset is UTC), with a year 1000-2999 and a real calendar day. A datetime is a
  `timestamp` in UTC; a date column takes the UTC date of a datetime.
- multi_select: a JSON array as is, a single string as a one-item array.
- custom: any JSON value but null.

Inside formulas a multi-select or custom value (type "any") converts by the same rules to the
type its context needs; as text, an array or object has none (NULL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import (
    BindParameter,
    ColumnClause,
    False_,
    Label,
    Null,
    True_,
    TypeCoerce,
)

from panels.column.formula import ValueType, value_type_of

# Groups that capture nothing: PostgreSQL need not track what they matched.
NUMBER_PATTERN = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?$"
MAX_NUMBER_TEXT = 100
# The database function panels_utc_timestamp (migration 20261201_0011) checks a copy of it.
DATETIME_PATTERN = (
    r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[-+](0[0-9]|1[0-4]):?[0-5][0-9])?)?$"
)

SQL_TYPES: dict[ValueType, Any] = {
    "number": Numeric(asdecimal=True),
    "text": Text(),
    "boolean": Boolean(),
    "date": Date(),
    "datetime": DateTime(),
    "any": JSONB(),
}
# Text compares by code point everywhere (formulas, filters, sorts), whatever the database's
# default collation, so that results do not depend on the server's locale.
BYTE_ORDER = "C"


def typed(expression: Any, value_type: ValueType) -> ColumnElement[Any]:
    return type_coerce(expression, SQL_TYPES[value_type])


def _json_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """The text of a JSON scalar (a string unquoted), NULL for JSON null."""
    return type_coerce(value.op("#>>")(literal_column("'{}'::text[]")), Text())


def _json_kind(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.jsonb_typeof(value)


def from_json(value: ColumnElement[Any], column_type: str) -> ColumnElement[Any]:
    """The value a column of `column_type` (service vocabulary) reads from JSONB `value`."""
    if column_type == "multi_select":
        return typed(
            case(
                (_json_kind(value) == "array", value),
                (_json_kind(value) == "string", func.jsonb_build_array(value)),
            ),
            "any",
        )
    if column_type == "custom":
        return typed(func.nullif(value, literal_column("'null'::jsonb")), "any")
    return json_to(value, value_type_of(column_type))


def json_to(value: ColumnElement[Any], value_type: ValueType) -> ColumnElement[Any]:
    """JSONB `value` converted to `value_type` by the rules of this module."""
    if value_type == "any":
        return typed(value, "any")
    return bind_once([value], lambda values: _json_to(values[0], value_type), value_type)


def _json_to(value: ColumnElement[Any], value_type: ValueType) -> ColumnElement[Any]:
    # `CASE jsonb_typeof(value) WHEN …` computes the kind once, and a JSON number or boolean is
    # cast from the JSONB directly: no text made and parsed again (benchmarks/README.md).
    kind = _json_kind(value)
    text = _json_text(value)
    if value_type == "text":
        return typed(case((kind.in_(["string", "number", "boolean"]), text)), "text")
    if value_type == "number":
        well_formed = and_(func.length(text) <= MAX_NUMBER_TEXT, text.regexp_match(NUMBER_PATTERN))
        from_string = case((well_formed, cast(text, Numeric)))
        return typed(
            case({"number": cast(value, Numeric), "string": from_string}, value=kind), "number"
        )
    if value_type == "boolean":
        words = {"true": True_(), "false": False_()}
        return typed(
            case(
                {"boolean": cast(value, Boolean), "string": case(words, value=func.lower(text))},
                value=kind,
            ),
            "boolean",
        )
    moment = case((kind == "string", _datetime_of_text(text)))
    if value_type == "date":
        return typed(cast(moment, Date), "date")
    return typed(moment, "datetime")


def _datetime_of_text(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """A timestamp (UTC) of ISO-8601 `text`, or NULL: `panels_utc_timestamp` (migration
    20261201_0011) checks DATETIME_PATTERN and the calendar day before it casts. It is
    IMMUTABLE (an expression index can hold it) and reads `text` once per value."""
    return typed(func.panels_utc_timestamp(text), "datetime")


def coerce(expression: ColumnElement[Any], source: ValueType, target: ValueType) -> Any:
    """A value of formula type `source` as `target`: widening a date, converting "any" by
    the JSON rules, giving other values their text (for `&`, CONCAT and text columns) or their
    JSON (for multi-select and custom columns)."""
    if source == target:
        return expression
    if source == "any":
        return json_to(expression, target)
    if target == "any":
        if source in ("date", "datetime"):
            return typed(func.to_jsonb(coerce(expression, source, "text")), "any")
        return typed(func.to_jsonb(expression), "any")
    if target == "datetime" and source == "date":
        return typed(cast(expression, DateTime()), "datetime")
    if target == "text":
        if source == "date":
            return typed(func.to_char(expression, "YYYY-MM-DD"), "text")
        if source == "datetime":
            return typed(func.to_char(expression, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), "text")
        return typed(cast(expression, Text), "text")
    # No checked formula asks for another conversion (a boolean as a number, say); one
    # saved before a column changed type gets null, as a record value that does not convert.
    return typed(null(), target)


def bind_once(
    values: Sequence[ColumnElement[Any]],
    build: Callable[[Sequence[ColumnElement[Any]]], ColumnElement[Any]],
    result_type: ValueType,
) -> ColumnElement[Any]:
    """`build(values)`, where `build` may read each value several times, evaluating every
    value once: a value that is more than a column or parameter is bound in a fenced scalar
    subquery (`OFFSET 0` keeps the planner from pasting it back), so nested formulas grow the
    statement linearly, never exponentially."""
    if all(_is_plain(value) for value in values):
        return typed(build(values), result_type)
    bound = (
        select(*(value.label(f"v{index}") for index, value in enumerate(values)))
        .offset(literal_column("0"))
        .correlate_except(None)
        .subquery()
    )
    names = [bound.c[f"v{index}"] for index in range(len(values))]
    return typed(select(build(names)).correlate_except(None).scalar_subquery(), result_type)


def _is_plain(value: ColumnElement[Any]) -> bool:
    while isinstance(value, TypeCoerce | Label):
        value = value.element if isinstance(value, Label) else value.clause
    return isinstance(value, ColumnClause | BindParameter | Null | True_ | False_)
