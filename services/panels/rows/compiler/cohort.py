"""A panel's cohort rule as compiler conditions.

Each condition's `field` names a column of the panel (its name, case-insensitively, or its id
written as a string), or else is a dotted path into the records, read from the first source
(lowest id) whose record has a non-null value there and compared in the type of the
condition's value (a number, a boolean, else text). The rule's operators are the filters'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from panels.platform.params import parse_id

from .spec import Column, Condition


def cohort_conditions(
    columns: Sequence[Column], rule: Mapping[str, Any]
) -> tuple[list[Condition], Literal["AND", "OR"]]:
    """The conditions of a stored cohort rule (`{logic, conditions: [{field, operator,
    value}]}`, already checked when saved) and how they combine."""
    by_name = {column.name.lower(): column.id for column in columns}
    ids = {column.id for column in columns}
    conditions: list[Condition] = []
    for stored in rule.get("conditions", []):
        field = str(stored["field"])
        column_id = by_name.get(field.lower())
        if column_id is None:
            as_id = parse_id(field)
            column_id = as_id if as_id in ids else None
        target: dict[str, Any] = {"column_id": column_id} if column_id else {"path": field}
        conditions.append(Condition(stored["operator"], stored.get("value"), **target))
    logic: Literal["AND", "OR"] = "OR" if rule.get("logic") == "OR" else "AND"
    return conditions, logic
