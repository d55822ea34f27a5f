"""What shapes a page of rows, from the client's text or a saved view, in the compiler's terms.

Ad-hoc `sort` and `filter` on `GET /api/panels/{id}/rows` speak the vocabulary of a view's
sorts and filters and are checked by the same rules (`view.rules`, `platform.conditions`):
a column named by name (case-insensitively) or id, an operator of the list, a value that suits
the operator and the column's type. Every refusal is a 400 naming `query.sort[i]` or
`query.filter[i]…`; nothing the client sends can raise anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from panels.column.entities import PanelColumn
from panels.column.formula import parse
from panels.platform.errors import BadRequest
from panels.platform.guards import nested_deeper_than
from panels.platform.schemas import JsonValueError, check_json_value
from panels.rows.compiler import BaseColumn, CalculatedColumn, Column, Condition, Sort
from panels.view.entities import PanelView
from panels.view.rules import check_filter_value, resolve_column
from panels.view.schemas import MAX_FILTERS, MAX_SORTS, FilterWrite

MAX_SORT_TEXT = 4096
MAX_FILTER_TEXT = 16384
# An array of objects whose values are scalars or arrays of scalars: three levels; a little
# room so that a deeper value is refused by the operator's own rule, with its message.
MAX_FILTER_DEPTH = 5
_DIRECTIONS = {"asc": False, "desc": True}


def parse_sorts(values: Sequence[str], columns: list[PanelColumn]) -> list[Sort]:
    """`name-or-id:asc|desc` items, repeated or comma-separated, the first the most
    significant; without a direction, ascending. (A name that holds a comma is named by id.)"""
    if sum(len(value) for value in values) > MAX_SORT_TEXT:
        raise BadRequest("query.sort", f"longer than {MAX_SORT_TEXT} characters")
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(items) > MAX_SORTS:
        raise BadRequest("query.sort", f"at most {MAX_SORTS} sorts")
    sorts: list[Sort] = []
    for index, item in enumerate(items):
        where = f"query.sort[{index}]"
        reference, descending = item, False
        head, separator, tail = item.rpartition(":")
        if separator and tail.strip().lower() in _DIRECTIONS:
            reference, descending = head.strip(), _DIRECTIONS[tail.strip().lower()]
        column = resolve_column(columns, reference, where)
        if any(sort.column_id == column.id for sort in sorts):
            raise BadRequest(where, f'sorts on "{column.name}" twice')
        sorts.append(Sort(column.id, descending))
    return sorts


def parse_filters(text: str | None, columns: list[PanelColumn]) -> list[Condition]:
    """A JSON array of `{columnName, operator, value?, logicalOperator?}`, as view filters."""
    if text is None:
        return []
    if len(text) > MAX_FILTER_TEXT:
        raise BadRequest("query.filter", f"longer than {MAX_FILTER_TEXT} characters")
    raw = text.encode("utf-8", "surrogatepass")
    if nested_deeper_than(raw, MAX_FILTER_DEPTH):
        raise BadRequest("query.filter", f"nested deeper than {MAX_FILTER_DEPTH} levels")
    try:
        decoded = msgspec.json.decode(raw)
        check_json_value(decoded, "query.filter")
    except msgspec.DecodeError as error:
        raise BadRequest("query.filter", f"is not JSON: {_plain(error)}") from None
    except JsonValueError as error:
        raise BadRequest("query.filter", str(error).removeprefix("query.filter: ")) from None
    if not isinstance(decoded, list):
        raise BadRequest("query.filter", "must be a JSON array of filters")
    if len(decoded) > MAX_FILTERS:
        raise BadRequest("query.filter", f"at most {MAX_FILTERS} filters")
    return [_condition(item, index, columns) for index, item in enumerate(decoded)]


def _condition(item: Any, index: int, columns: list[PanelColumn]) -> Condition:
    where = f"query.filter[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(where, "must be an object {columnName, operator, value}")
    try:
        written = msgspec.convert(item, FilterWrite)
    except msgspec.ValidationError as error:
        field, message = _located(str(error), where)
        raise BadRequest(field, message) from None
    column = resolve_column(columns, written.column_name, f"{where}.columnName")
    check_filter_value(column, written.operator, written.value, f"{where}.value")
    return Condition(
        written.operator,
        written.value,
        column_id=column.id,
        logical_operator=written.logical_operator,
    )


def _located(message: str, where: str) -> tuple[str, str]:
    """msgspec's `… - at `$.operator`` (or FilterWrite's own `value: …`) as (field, message)."""
    text, separator, path = message.rpartition(" - at `$")
    if separator:
        return where + path.rstrip("`"), text
    if message.startswith("value: "):
        return f"{where}.value", message.removeprefix("value: ")
    return where, message


def _plain(error: Exception) -> str:
    return str(error).split(" - at ", 1)[0]


def compiler_columns(columns: list[PanelColumn]) -> list[Column]:
    """The panel's columns as the compiler reads them (formulas were checked when saved)."""
    specs: list[Column] = []
    for column in columns:
        if column.is_calculated:
            formula = parse(column.formula or "")
            specs.append(CalculatedColumn(column.id, column.name, column.type, formula))
        else:
            source_field = column.source_field or column.name
            specs.append(
                BaseColumn(column.id, column.name, column.type, source_field, column.data_source_id)
            )
    return specs


def view_shape(
    view: PanelView, columns: list[PanelColumn]
) -> tuple[list[int], list[Sort], list[Condition]]:
    """A view's visible columns (in order), sorts (by `order`) and filters (in order), without
    any reference to a column that no longer exists."""
    known = {column.id for column in columns}
    shown = [column_id for column_id in view.visible_columns if column_id in known]
    sorts = [
        Sort(sort.column_id, sort.direction == "desc")
        for sort in sorted(view.sorts, key=lambda s: (s.sort_order, s.id))
        if sort.column_id in known
    ]
    filters = [
        Condition(
            item.operator,  # type: ignore[arg-type]  # checked when saved
            item.value,
            column_id=item.column_id,
            logical_operator="or" if item.logical_operator == "or" else "and",
        )
        for item in sorted(view.filters, key=lambda f: (f.position, f.id))
        if item.column_id in known
    ]
    return shown, sorts, filters
