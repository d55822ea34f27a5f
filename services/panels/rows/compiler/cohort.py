"""A panel's cohort rule as compiler conditions.

Each condition's `field` names a column of the panel (its name, case-insensitively, or its id
written as a string), or else is a dotted path into the records, read from the first source
(lowest id) whose record has a non-null value there and compared in the type of the
condition's value (a number, a boolean, else text). The rule's operators are the filters'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from panels.column.lookup import find_column

from .spec import Column, Condition


def cohort_conditions(
    columns: Sequence[Column], rule: Mapping[str, Any]
) -> tuple[list[Condition], Literal["AND", "OR"]]:
    """The conditions of a stored cohort rule (`{logic, conditions: [{field, operator,
    value}]}`, already checked when saved) and how they combine."""
    conditions: list[Condition] = []
    for stored in rule.get("conditions", []):
        field = str(stored["field"])
        column = find_column(columns, field)
        target: dict[str, Any] = {"column_id": column.id} if column else {"path": field}
        conditions.append(Condition(stored["operator"], stored.get("value"), **target))
    logic: Literal["AND", "OR"] = "OR" if rule.get("logic") == "OR" else "AND"
    return conditions, logic
