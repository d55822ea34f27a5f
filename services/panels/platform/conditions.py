"""The condition vocabulary shared by cohort rules and view filters."""

from __future__ import annotations

from typing import Any, Literal

from panels.platform.schemas import check_json_value

Operator = Literal[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "notContains",
    "startsWith",
    "endsWith",
    "in",
    "notIn",
    "between",
    "isNull",
    "isNotNull",
]
MAX_LIST_VALUES = 1000
_SCALAR = (str, int, float, bool)
_TEXT_OPERATORS = {"contains", "notContains", "startsWith", "endsWith"}


def check_operator_value(operator: str, value: Any, where: str = "value") -> None:
    """Raise ValueError unless `value` has the shape `operator` takes.

    `in`/`notIn` take an array of scalars, `between` two scalars, `isNull`/`isNotNull` no
    value, the text operators a string, and the comparisons one scalar.
    """
    check_json_value(value, where)
    if operator in ("isNull", "isNotNull"):
        if value is not None:
            raise ValueError(f"{where}: {operator} takes no value")
    elif operator in ("in", "notIn"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: {operator} takes a non-empty array")
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"{where}: {operator} takes at most {MAX_LIST_VALUES} values")
        if not all(isinstance(v, _SCALAR) for v in value):
            raise ValueError(f"{where}: {operator} takes an array of strings, numbers or booleans")
    elif operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"{where}: between takes an array of two values")
        if not all(isinstance(v, _SCALAR) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}: between takes two numbers, dates or strings")
    elif operator in _TEXT_OPERATORS:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {operator} takes a string")
    elif not isinstance(value, _SCALAR):
        raise ValueError(f"{where}: {operator} takes a string, number or boolean")


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE/ILIKE pattern written with `ESCAPE '\\'`: the
    client's `%`, `_` and backslash are not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
