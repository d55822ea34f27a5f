"""Filters (and cohort conditions) to SQL conditions; every user value a bound parameter.

- `eq`, `gt`, `gte`, `lt`, `lte`, `between` (inclusive), `in`, `contains`, `startsWith`,
  `endsWith` hold only for a non-null value; `ne`, `notIn` and `notContains` also hold for
  null (a missing value is not equal to anything), so "status ne done" keeps the rows with no
  status. `in []` holds for no row, `notIn []` for every row.
- `contains` and friends are case-insensitive (`ILIKE`), the user's `%`, `_` and `\\` taken
  literally. Text compares by code point.
- A multi-select or custom column is filtered by its text (see `conversion`).
- Conditions combine left to right, each joined to what precedes it by its own
  `logical_operator` (the first one's is ignored): `a or b and c` is `(a or b) and c`.
- The column is compared bare with parameters (never wrapped in a function, except `lower`
  inside ILIKE), so an expression index on the column's value serves the comparison; text
  compares under `COLLATE "C"`, so such an index must use that collation. `TODAY()` and
  `NOW()` are parameters too, so `d > TODAY()` in a formula stays a bare comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, not_, or_, true

from panels.column.formula import ValueType
from panels.platform.conditions import escape_like

from .conversion import BYTE_ORDER, SQL_TYPES, coerce
from .spec import Condition

_TEXT_OPERATORS = ("contains", "notContains", "startsWith", "endsWith")


def combine(conditions: Sequence[ColumnElement[bool]], joins: Sequence[str]) -> Any:
    """Conditions joined left to right; `joins[i]` joins condition i to those before it."""
    if not conditions:
        return true()
    combined = conditions[0]
    for condition, join in zip(conditions[1:], joins[1:], strict=True):
        combined = or_(combined, condition) if join == "or" else and_(combined, condition)
    return combined


def condition_sql(value: Any, value_type: ValueType, condition: Condition) -> Any:
    """The SQL condition `condition` puts on `value`, a column value of `value_type`."""
    operator = condition.operator
    if operator == "isNull":
        return value.is_(None)
    if operator == "isNotNull":
        return value.is_not(None)
    if value_type == "any" or operator in _TEXT_OPERATORS:
        value, value_type = coerce(value, value_type, "text"), "text"
    argument = condition.value
    if operator in _TEXT_OPERATORS:
        text = python_value(argument, "text")
        if text is None:
            return true() if operator == "notContains" else false()
        return _like(value, operator, text)
    if value_type == "text":
        value = value.collate(BYTE_ORDER)
    sql_type = SQL_TYPES[value_type]
    if operator in ("in", "notIn"):
        items = [python_value(item, value_type) for item in _items(argument)]
        known = [item for item in items if item is not None]
        listed = value.in_(bindparam(None, known, type_=sql_type, expanding=True))
        return listed if operator == "in" else or_(value.is_(None), not_(listed))
    if operator == "between":
        pair = _items(argument)
        bounds = [python_value(item, value_type) for item in pair]
        if len(bounds) != 2 or None in bounds:
            return false()
        low, high = (bindparam(None, bound, type_=sql_type) for bound in bounds)
        return value.between(low, high)
    known_value = python_value(argument, value_type)
    if known_value is None:
        return true() if operator == "ne" else false()
    parameter = bindparam(None, known_value, type_=sql_type)
    if operator == "ne":
        return value.is_distinct_from(parameter)
    compare: dict[str, Callable[[Any, Any], Any]] = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return compare[operator](value, parameter)


def _items(argument: Any) -> list[Any]:
    return argument if isinstance(argument, list) else []


def _like(value: Any, operator: str, text: str) -> Any:
    escaped = escape_like(text)
    pattern = {
        "contains": f"%{escaped}%",
        "notContains": f"%{escaped}%",
        "startsWith": f"{escaped}%",
        "endsWith": f"%{escaped}",
    }[operator]
    matches = value.ilike(bindparam(None, pattern, type_=SQL_TYPES["text"]), escape="\\")
    if operator == "notContains":
        return or_(value.is_(None), not_(matches))
    return matches


def python_value(item: Any, value_type: ValueType) -> Any:
    """A filter value (JSON) as a Python value of `value_type`, or None when it is none.

    The routes refuse such values when a filter is saved, but a column's type can change
    afterwards: a stale value then matches no row (`ne`, `notIn`, `notContains` every row),
    and never fails the query.
    """
    if isinstance(item, float) and not math.isfinite(item):
        return None
    if value_type == "number":
        if isinstance(item, bool) or not isinstance(item, int | float):
            return None
        return Decimal(repr(item)) if isinstance(item, float) else Decimal(item)
    if value_type == "boolean":
        return item if isinstance(item, bool) else None
    if value_type in ("date", "datetime"):
        if not isinstance(item, str):
            return None
        try:
            if value_type == "date":
                return date.fromisoformat(item)
            return utc_naive(datetime.fromisoformat(item))
        except (ValueError, OverflowError):  # year 1 with a positive offset leaves the calendar
            return None
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item) if isinstance(item, str | int | float) else None


def utc_naive(moment: datetime) -> datetime:
    """`moment` in UTC without a zone (a naive one is taken as UTC), as datetimes are kept."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def path_value_type(condition: Condition) -> ValueType:
    """The type a cohort condition on a record path compares in, from its value's JSON type."""
    sample = condition.value
    if isinstance(sample, list):
        sample = sample[0] if sample else ""
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int | float):
        return "number"
    return "text"
