"""The types of formula values and how they relate to the column types of the service."""

from __future__ import annotations

from typing import Literal, get_args

from .errors import FormulaError

# "any" is a value whose type a formula cannot know (a multi-select or custom column); it is
# compatible with every other type.
ValueType = Literal["number", "text", "boolean", "date", "datetime", "any"]
VALUE_TYPES: tuple[ValueType, ...] = get_args(ValueType)

_VALUE_TYPE_OF_COLUMN: dict[str, ValueType] = {
    "text": "text",
    "number": "number",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
    "select": "text",
    "multi_select": "any",
    "user": "text",
    "file": "text",
    "custom": "any",
}
COLUMN_TYPES: tuple[str, ...] = tuple(_VALUE_TYPE_OF_COLUMN)

# What a calculated column of each type can hold; a type missing here holds anything.
_ACCEPTED_RESULTS: dict[str, tuple[frozenset[ValueType], str]] = {
    "number": (frozenset({"number"}), "a number"),
    "boolean": (frozenset({"boolean"}), "a boolean"),
    "date": (frozenset({"date"}), "a date"),
    "datetime": (frozenset({"date", "datetime"}), "a date or datetime"),
}


def value_type_of(column_type: str) -> ValueType:
    """The type of the values a column of `column_type` (service vocabulary) holds."""
    try:
        return _VALUE_TYPE_OF_COLUMN[column_type]
    except KeyError:
        raise ValueError(f"unknown column type {column_type!r}") from None


def common_type(first: ValueType, second: ValueType) -> ValueType | None:
    """The type both values fit in, or None when they do not mix.

    A date widens to a datetime (midnight), so the two compare and combine.
    """
    if first == second or second == "any":
        return first
    if first == "any":
        return second
    if {first, second} == {"date", "datetime"}:
        return "datetime"
    return None


def check_result(result: ValueType, column_type: str, position: int = 0) -> None:
    """Raise FormulaError unless a calculated column of `column_type` can hold `result`."""
    if column_type not in _VALUE_TYPE_OF_COLUMN:
        raise ValueError(f"unknown column type {column_type!r}")
    accepted = _ACCEPTED_RESULTS.get(column_type)
    if accepted is None or result == "any" or result in accepted[0]:
        return
    raise FormulaError(
        f"formula returns {result}, but a {column_type} column needs {accepted[1]}", position
    )
