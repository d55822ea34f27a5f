"""The reference evaluator's values: JSON record values converted to column types, numeric
division as PostgreSQL scales it, and conversions between formula types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from panels.column.formula import ValueType, value_type_of

Records = Mapping[int, Any]  # source id -> record (absent: no record of that source)

_NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?")
_MOMENT = re.compile(
    r"(?P<y>[12][0-9]{3})-(?P<mo>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9]|3[01])"
    r"([T ](?P<h>[01][0-9]|2[0-3]):(?P<mi>[0-5][0-9])(:(?P<s>[0-5][0-9])(\.(?P<f>[0-9]{1,6}))?)?"
    r"(?P<z>Z|(?P<sign>[-+])(?P<oh>0[0-9]|1[0-4]):?(?P<om>[0-5][0-9]))?)?"
)


def _scale(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def numeric_text(number: Decimal) -> str:
    """PostgreSQL's text of a numeric: plain digits, no negative zero."""
    text = format(number, "f")
    return text[1:] if number == 0 and text.startswith("-") else text


def half_away(value: Fraction) -> int:
    whole = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return whole if value >= 0 else -whole


def truncate(value: Fraction) -> int:
    whole = abs(value.numerator) // value.denominator
    return whole if value >= 0 else -whole


def divide(left: Decimal, right: Decimal) -> Decimal:
    """numeric division as PostgreSQL scales it (select_div_scale), rounded half away."""

    def leading(number: Decimal) -> tuple[int, int]:
        if number == 0:
            return 0, 0
        exponent = number.adjusted()
        weight = exponent // 4
        digit = int(abs(Fraction(number)) / Fraction(10) ** (4 * weight))
        return weight, digit

    weight1, digit1 = leading(left)
    weight2, digit2 = leading(right)
    quotient_weight = weight1 - weight2 - (1 if digit1 <= digit2 else 0)
    scale = 16 - quotient_weight * 4
    scale = min(max(scale, _scale(left), _scale(right), 0), 1000)
    exact = Fraction(left) / Fraction(right) * 10**scale
    return Decimal(half_away(exact)).scaleb(-scale)


def lookup(record: Any, path: str) -> Any:
    current = record
    for step in path.split("."):
        if isinstance(current, dict):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit():
            index = int(step)
            current = current[index] if index < len(current) else None
        else:
            return None
    return current


def _moment(text: str) -> datetime | None:
    match = _MOMENT.fullmatch(text)
    if match is None:
        return None
    year, month, day = int(match["y"]), int(match["mo"]), int(match["d"])
    try:
        moment = datetime(year, month, day)
    except ValueError:
        return None
    if match["h"] is not None:
        moment = moment.replace(
            hour=int(match["h"]),
            minute=int(match["mi"]),
            second=int(match["s"] or 0),
            microsecond=int((match["f"] or "").ljust(6, "0")),
        )
    if match["z"] is not None and match["z"] != "Z":
        offset = timedelta(hours=int(match["oh"]), minutes=int(match["om"]))
        moment -= offset if match["sign"] == "+" else -offset
    return moment


def json_to(value: Any, value_type: ValueType) -> Any:
    """A JSON value (Decimal numbers) as `value_type`, None when it does not convert."""
    if value is None or value_type == "any":
        return value
    if value_type == "text":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            return numeric_text(value)
        return value if isinstance(value, str) else None
    if value_type == "number":
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str) and len(value) <= 100 and _NUMBER.fullmatch(value):
            return Decimal(value)
        return None
    if value_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return None
    moment = _moment(value) if isinstance(value, str) else None
    if moment is None or value_type == "datetime":
        return moment
    return moment.date()


def column_value(value: Any, column_type: str) -> Any:
    if value is None:
        return None
    if column_type == "multi_select":
        if isinstance(value, list):
            return value
        return [value] if isinstance(value, str) else None
    if column_type == "custom":
        return value
    return json_to(value, value_type_of(column_type))


def coerce(value: Any, source: ValueType, target: ValueType) -> Any:
    if value is None or source == target:
        return value
    if source == "any":
        return json_to(value, target)
    if target == "any":
        return coerce(value, source, "text") if source in ("date", "datetime") else value
    if target == "datetime" and source == "date":
        return datetime(value.year, value.month, value.day)
    if source == "date":
        return value.isoformat()
    if source == "datetime":
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if source == "boolean":
        return "true" if value else "false"
    return numeric_text(value)
