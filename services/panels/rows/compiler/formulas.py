"""Formulas to SQL expressions, with the semantics API.md gives them.

- Null in, null out, except: `IF(c, a, b)` is `b` unless `c` is true (so a null condition
  picks `b`); `COALESCE`; `AND`/`OR` with three-valued logic (one false argument makes `AND`
  false and one true argument makes `OR` true, whatever the others); `&`/`CONCAT`, which read
  null as "". `MIN`/`MAX` are null when any argument is.
- Numbers are exact `numeric`; `x / 0` is null; `ROUND(x, n)` rounds half away from zero to
  `n` digits (rounded to a whole number and kept within -100..100).
- An operand of `+ - * /` or `ROUND` whose magnitude reaches 1e65000 counts as null, so no
  result can leave `numeric`'s range (about 1e131072) and raise: a product of two operands
  stays below 1e130000, a quotient below 1e81383 (a divisor is at least 1e-16383).
- Text compares by code point; a date compared or combined with a datetime is its midnight.
- `TODAY()`/`NOW()` are the query's time in UTC, bound once as parameters.
- `DATEDIFF(start, end, unit)` counts whole units from start to end, truncated toward zero
  (negative when end is earlier), on both values as datetimes (a date is its midnight):
  `days` and `hours` are elapsed 24 h and 1 h periods; `months` is the difference of the
  months' numbers, less one when end's day and time of month is before start's (so Jan 31 to
  Feb 28 is 0 months), and symmetrically when end is earlier; `years` is months / 12 truncated.

Every node is compiled once, and a value read more than once (DATEDIFF's, ROUND's digits, an
"any" value's conversion) is bound once (`bind_once`), so the SQL grows with the formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Numeric,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
)

from panels.column.formula import (
    Binary,
    Boolean,
    Call,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
    ValueType,
)
from panels.column.formula.value_types import common_type

from .conversion import BYTE_ORDER, SQL_TYPES, bind_once, coerce, typed

Typed = tuple[Any, ValueType]

ROUND_DIGITS_LIMIT = 100
_COMPARISONS = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FormulaCompiler:
    """Compiles formulas over `columns`: each lower-cased column name to its SQL value and
    formula type."""

    def __init__(
        self,
        columns: Mapping[str, Typed],
        today: ColumnElement[Any],
        now: ColumnElement[Any],
    ) -> None:
        self._columns = columns
        self._today = today
        self._now = now

    def compile(self, node: Node) -> Typed:
        if isinstance(node, Number):
            return literal(node.value, Numeric()), "number"
        if isinstance(node, String):
            return typed(literal(node.value), "text"), "text"
        if isinstance(node, Boolean):
            # A parameter, not TRUE/FALSE: SQLAlchemy would turn `= TRUE` into `IS TRUE`,
            # which is never null.
            return literal(node.value, SQL_TYPES["boolean"]), "boolean"
        if isinstance(node, ColumnRef):
            return self._columns[node.name.lower()]
        if isinstance(node, Unary):
            return typed(-self._as(node.operand, "number"), "number"), "number"
        if isinstance(node, Binary):
            return self._binary(node)
        return self._call(node)

    def _as(self, node: Node, target: ValueType) -> Any:
        value, kind = self.compile(node)
        return coerce(value, kind, target)

    def _binary(self, node: Binary) -> Typed:
        if node.op == "&":
            return self._concat((node.left, node.right))
        if node.op in _COMPARISONS:
            left, left_type = self.compile(node.left)
            right, right_type = self.compile(node.right)
            common = common_type(left_type, right_type) or "text"
            if common == "any":
                common = "text"
            left, right = coerce(left, left_type, common), coerce(right, right_type, common)
            if common == "text":
                left = left.collate(BYTE_ORDER)
            return _COMPARISONS[node.op](left, right), "boolean"
        left = _in_range(self._as(node.left, "number"))
        right = _in_range(self._as(node.right, "number"))
        if node.op == "+":
            result = left + right
        elif node.op == "-":
            result = left - right
        elif node.op == "*":
            result = left * right
        else:
            result = left / func.nullif(right, 0)
        return typed(result, "number"), "number"

    def _concat(self, args: tuple[Node, ...]) -> Typed:
        return typed(func.concat(*(self._as(arg, "text") for arg in args)), "text"), "text"

    def _common(self, args: tuple[Node, ...]) -> tuple[list[Any], ValueType]:
        compiled = [self.compile(arg) for arg in args]
        common: ValueType = compiled[0][1]
        for _, kind in compiled[1:]:
            common = common_type(common, kind) or common
        return [coerce(value, kind, common) for value, kind in compiled], common

    def _call(self, call: Call) -> Typed:
        name, args = call.name, call.args
        if name == "IF":
            condition = self._as(args[0], "boolean")
            (then, otherwise), kind = self._common(args[1:])
            return typed(case((condition, then), else_=otherwise), kind), kind
        if name in ("AND", "OR"):
            combine = and_ if name == "AND" else or_
            return combine(*(self._as(arg, "boolean") for arg in args)), "boolean"
        if name == "NOT":
            return not_(self._as(args[0], "boolean")), "boolean"
        if name == "CONCAT":
            return self._concat(args)
        if name in ("UPPER", "LOWER", "TRIM"):
            function = {"UPPER": func.upper, "LOWER": func.lower, "TRIM": func.btrim}[name]
            return typed(function(self._as(args[0], "text")), "text"), "text"
        if name == "LEN":
            length = cast(func.char_length(self._as(args[0], "text")), Numeric)
            return typed(length, "number"), "number"
        if name == "ROUND":
            return self._round(args), "number"
        if name == "ABS":
            return typed(func.abs(self._as(args[0], "number")), "number"), "number"
        if name in ("MIN", "MAX"):
            return self._extreme(name, args), "number"
        if name == "COALESCE":
            values, kind = self._common(args)
            return typed(func.coalesce(*values), kind), kind
        if name == "DATEDIFF":
            return self._datediff(args), "number"
        if name == "TODAY":
            return self._today, "date"
        if name == "NOW":
            return self._now, "datetime"
        raise ValueError(f"unknown function {name}")

    def _round(self, args: tuple[Node, ...]) -> Any:
        value = _in_range(self._as(args[0], "number"))
        if len(args) == 1:
            return typed(func.round(value), "number")

        def rounded(values: Sequence[Any]) -> Any:
            number, digits = values
            whole = func.round(digits)
            limited = func.least(func.greatest(whole, -ROUND_DIGITS_LIMIT), ROUND_DIGITS_LIMIT)
            return case(
                (digits.is_(None), null()), else_=func.round(number, cast(limited, Integer))
            )

        return bind_once([value, self._as(args[1], "number")], rounded, "number")

    def _extreme(self, name: str, args: tuple[Node, ...]) -> Any:
        # LEAST/GREATEST skip nulls; an infinite stand-in (which no formula value can be)
        # makes any null win instead, reading each argument once.
        stand_in: Any = literal_column(
            "'-Infinity'::numeric" if name == "MIN" else "'Infinity'::numeric"
        )
        pick = func.least if name == "MIN" else func.greatest
        values = [func.coalesce(self._as(arg, "number"), stand_in) for arg in args]
        return typed(func.nullif(pick(*values), stand_in), "number")

    def _datediff(self, args: tuple[Node, ...]) -> Any:
        start = self._as(args[0], "datetime")
        end = self._as(args[1], "datetime")
        unit = args[2].value.lower() if isinstance(args[2], String) else ""
        if unit in ("days", "hours"):
            seconds = Decimal(86400 if unit == "days" else 3600)
            elapsed = extract("epoch", end - start)
            return typed(func.div(elapsed, literal(seconds, Numeric())), "number")
        return bind_once([start, end], lambda values: _months(values[0], values[1], unit), "number")


# Half of numeric's range in decimal digits: see the module docstring.
_LIMIT: Any = literal_column("'1e65000'::numeric")
_NEGATIVE_LIMIT: Any = literal_column("'-1e65000'::numeric")


def _in_range(value: Any) -> Any:
    """`value`, or null when its magnitude reaches the limit; reads `value` once (NULLIF
    evaluates its first argument once, where a CASE would paste it twice)."""
    clamped = func.least(func.greatest(value, _NEGATIVE_LIMIT), _LIMIT)
    return typed(func.nullif(func.nullif(clamped, _LIMIT), _NEGATIVE_LIMIT), "number")


def _months(start: Any, end: Any, unit: str) -> Any:
    def month_number(moment: Any) -> Any:
        return extract("year", moment) * 12 + extract("month", moment)

    def into_month(moment: Any) -> Any:
        return moment - func.date_trunc("month", moment)

    short = case(
        (and_(end >= start, into_month(end) < into_month(start)), 1),
        (and_(end < start, into_month(end) > into_month(start)), -1),
        else_=0,
    )
    months = month_number(end) - month_number(start) - short
    if unit == "years":
        return func.div(months, 12)
    return months
