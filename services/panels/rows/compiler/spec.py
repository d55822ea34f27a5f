"""What the compiler is asked: the panel's columns, the rows' source, and a view's shaping.

Everything here is already resolved and checked by the caller (column names to ids, filter
values against the column types, formulas parsed and validated): the compiler trusts it, and
raises ValueError only for what a caller could not have checked (e.g. a stale cursor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import FromClause

from panels.column.formula import Node
from panels.platform.conditions import Operator

FilterOperator = Operator  # the vocabulary of cohort rules and view filters


def source_column(source_id: int) -> str:
    """The name of a source's record column in a `RowSource` selectable."""
    return f"s{source_id}"


@dataclass(frozen=True, slots=True)
class RowSource:
    """The panel's rows before any column: a selectable with a text `key` column and one
    JSONB column per live source (named by `source_column`, NULL where that source has no
    record for the key), one row per key. `source_ids` lists those sources."""

    rows: FromClause
    source_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BaseColumn:
    id: int
    name: str
    type: str
    source_field: str
    data_source_id: int | None = None


@dataclass(frozen=True, slots=True)
class CalculatedColumn:
    id: int
    name: str
    type: str
    formula: Node


Column = BaseColumn | CalculatedColumn


@dataclass(frozen=True, slots=True)
class Condition:
    """One filter: `column_id` names a column, or else `path` is a dotted path into the
    records (cohort rules only). `logical_operator` joins it to the conditions before it."""

    operator: FilterOperator
    value: Any = None
    column_id: int | None = None
    path: str | None = None
    logical_operator: Literal["and", "or"] = "and"


@dataclass(frozen=True, slots=True)
class Sort:
    column_id: int
    descending: bool = False


@dataclass(frozen=True, slots=True)
class RowQuery:
    """A page of rows: `shown` are the column ids whose values come back, in order; `sorts`
    the most significant first; `cohort` and `filters` both must hold."""

    columns: Sequence[Column]
    shown: Sequence[int]
    now: datetime
    cohort: Sequence[Condition] = ()
    cohort_logic: Literal["AND", "OR"] = "AND"
    filters: Sequence[Condition] = ()
    sorts: Sequence[Sort] = ()
    limit: int | None = 50
    offset: int = 0
    cursor: str | None = None
