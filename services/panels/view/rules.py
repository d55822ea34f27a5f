"""How sorts and filters name columns, and which filter values suit a column's type."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from panels.column.entities import PanelColumn
from panels.column.formula import value_type_of
from panels.column.lookup import find_column
from panels.platform.errors import BadRequest
from panels.platform.params import parse_id

_TEXT_OPERATORS = {"contains", "notContains", "startsWith", "endsWith"}
_ORDERING_OPERATORS = {"gt", "gte", "lt", "lte", "between"}


def resolve_column(columns: list[PanelColumn], reference: str, where: str) -> PanelColumn:
    """A column of the panel by name (case-insensitive) or by id written as a string."""
    column = find_column(columns, reference)
    if column is None:
        raise BadRequest(where, f'"{reference}" is not a column of this panel')
    return column


def resolve_visible_columns(
    columns: list[PanelColumn], values: list[int | str], where: str
) -> list[int]:
    known = {c.id for c in columns}
    ids: list[int] = []
    for index, value in enumerate(values):
        text = str(value)
        column_id = parse_id(text)
        if column_id is None or column_id not in known:
            raise BadRequest(f"{where}[{index}]", f'"{text}" is not a column id of this panel')
        if column_id in ids:
            raise BadRequest(f"{where}[{index}]", f"column {text} is listed twice")
        ids.append(column_id)
    return ids


def check_filter_value(column: PanelColumn, operator: str, value: Any, where: str) -> None:
    """Refuse a filter whose value cannot be compared with the column's values."""
    kind = value_type_of(column.type)
    if kind == "any" or operator in ("isNull", "isNotNull"):
        return
    if operator in _TEXT_OPERATORS and kind != "text":
        raise BadRequest(where, f"{operator} needs a text column; {column.name} is {column.type}")
    if kind == "boolean" and operator in _ORDERING_OPERATORS:
        raise BadRequest(where, f"{operator} does not apply to a boolean column")
    for item in value if isinstance(value, list) else [value]:
        if not _fits(kind, item):
            raise BadRequest(where, f"{item!r} is not a {kind} value for column {column.name}")


def _fits(kind: str, item: Any) -> bool:
    if kind == "number":
        return isinstance(item, int | float) and not isinstance(item, bool)
    if kind == "boolean":
        return isinstance(item, bool)
    if kind == "date":
        return isinstance(item, str) and _parses(date.fromisoformat, item)
    if kind == "datetime":
        return isinstance(item, str) and _parses(datetime.fromisoformat, item)
    return isinstance(item, str | int | float) and not isinstance(item, bool)


def _parses(parser: Any, text: str) -> bool:
    try:
        parser(text)
    except ValueError:
        return False
    return True
