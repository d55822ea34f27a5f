"""How a rule names a column: by its name (case-insensitive), or by its id written as a string.

Shared by the places that read such references: views' filters and sorts (`view.rules`) and
the cohort rule (`rows.compiler.cohort`), for stored columns and the compiler's alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from panels.platform.params import parse_id


class NamedColumn(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


ColumnT = TypeVar("ColumnT", bound=NamedColumn)


def find_column(columns: Sequence[ColumnT], reference: str) -> ColumnT | None:
    """The column `reference` names, a name taking precedence over an id; None if none."""
    lowered = reference.lower()
    for column in columns:
        if column.name.lower() == lowered:
            return column
    column_id = parse_id(reference)
    if column_id is not None:
        for column in columns:
            if column.id == column_id:
                return column
    return None
