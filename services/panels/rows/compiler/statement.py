"""The page and count statements of a `RowQuery` over a `RowSource`.

Layers, each reading only the ones before it:

1. `raw`: per base column its JSONB value (its own source's, or the first source's by id that
   has a non-null value there), and per cohort condition on a record path the same.
2. `base`: those values converted to the columns' types (`conversion`).
3. one `LATERAL (SELECT … OFFSET 0)` per calculated column, in dependency order: each formula
   is computed once per row and read by name by the columns after it, so a chain of formulas
   stays linear (the `OFFSET 0` keeps the planner from pasting formulas into each other).

A page by cursor also names the first sort's ranges after the cursor (`ordering.AfterCursor`),
which an index on that sort can start from.

Only the columns the query needs (shown, sorted, filtered, in the cohort, and what their
formulas read) are computed; the count statement computes only what its conditions read.

The planner pulls the `raw` and `base` subqueries up into what reads them, so a record value
is extracted again wherever a conversion or formula reads it: the price of letting an index
on a filter's or sort's expression serve a page. An export reads every matching row, so its
statement (`export_statement.compile_export`) fences its layers instead (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Date,
    DateTime,
    FromClause,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB

from panels.column.formula import ColumnRef, ValueType, value_type_of
from panels.column.formula.nodes import walk

from .conversion import coerce, from_json, typed
from .formulas import FormulaCompiler
from .ordering import SortKey, after_cursor, order_by, sort_value
from .predicates import combine, condition_sql, path_value_type, utc_naive
from .spec import BaseColumn, CalculatedColumn, Column, Condition, RowQuery, RowSource, Sort
from .spec import source_column as source_column_name

# A typed null: a bare NULL would reach PostgreSQL as text, and no jsonb function takes that.
_NO_VALUE: Any = cast(null(), JSONB())


# The names of the clock's parameters (`TODAY()`, `NOW()`): a statement built earlier runs
# at the time it is executed when given `clock_values` then.
CLOCK_PARAMETERS = ("today", "now")


def clock_values(now: datetime) -> dict[str, Any]:
    """The values of the clock's parameters at `now`."""
    moment = utc_naive(now)
    return dict(zip(CLOCK_PARAMETERS, (moment.date(), moment), strict=True))


# The names of the paging parameters: one statement serves every page of a query when run
# with `page_values` of the page.
PAGE_PARAMETERS = ("page_limit", "page_offset")


def page_values(limit: int | None, offset: int) -> dict[str, Any]:
    """The values of the paging parameters (a statement without a limit reads no limit)."""
    return dict(zip(PAGE_PARAMETERS, (limit, offset), strict=True))


def value_label(column_id: int) -> str:
    """The name of a shown column's value in the page statement's rows."""
    return f"c{column_id}"


def sort_label(index: int) -> str:
    """The name of the value of the `index`-th sort in the page statement's rows."""
    return f"k{index}"


@dataclass(frozen=True, slots=True)
class CompiledRows:
    """`page` yields `key`, one `value_label(id)` per shown column and one `sort_label(i)`
    per sort (what `next_cursor` reads); `count` yields the number of matching rows."""

    page: Select[Any]
    count: Select[Any]
    sort_keys: tuple[SortKey, ...]


def compile_rows(source: RowSource, query: RowQuery) -> CompiledRows:
    columns = {column.id: column for column in query.columns}
    by_name = {column.name.lower(): column for column in query.columns}
    conditions = [*query.cohort, *query.filters]
    filtered = {c.column_id for c in conditions if c.column_id is not None}
    sorted_ids = {sort.column_id for sort in query.sorts}
    paging = page_values(query.limit, query.offset)
    page_offset = bindparam(PAGE_PARAMETERS[1], paging[PAGE_PARAMETERS[1]], type_=Integer())
    page_limit = (
        None
        if query.limit is None
        else bindparam(PAGE_PARAMETERS[0], paging[PAGE_PARAMETERS[0]], type_=Integer())
    )
    today, now = clock_binds(query)

    page_layers = Layers(source, columns, by_name, query, today, now)
    page_layers.build({*query.shown, *filtered, *sorted_ids})
    count_layers = Layers(source, columns, by_name, query, today, now)
    count_layers.build(filtered)

    sort_keys = tuple(sort_key(sort, page_layers.values[sort.column_id]) for sort in query.sorts)
    key = page_layers.key
    where = page_layers.where()
    ranges: tuple[Any, ...] = ()
    if query.cursor is not None:
        after = after_cursor(sort_keys, key, query.cursor)
        where, ranges = where & after.condition, after.ranges
    selected = (
        key.label("key"),
        *(page_layers.values[id][0].label(value_label(id)) for id in query.shown),
        *(k.value.label(sort_label(i)) for i, k in enumerate(sort_keys)),
    )
    if len(ranges) > 1:
        # Each range read in index order, as far as the page can reach, and the two merged
        # (`ordering.AfterCursor`); a range without its own order and limit would be planned
        # as if any order would do, and computed whole before the merge's sort.
        reach = None if page_limit is None else page_offset + page_limit
        parts = [
            select(*selected)
            .select_from(page_layers.joined)
            .where(where & part)
            .order_by(*order_by(sort_keys, key))
            .limit(reach)
            for part in ranges
        ]
        merged = union_all(*parts).subquery("after_cursor")
        merged_keys = [
            SortKey(k.sort, merged.c[sort_label(i)], k.value_type) for i, k in enumerate(sort_keys)
        ]
        page = select(*merged.c).order_by(*order_by(merged_keys, merged.c.key))
    else:
        page = (
            select(*selected)
            .select_from(page_layers.joined)
            .where(where & ranges[0] if ranges else where)
            .order_by(*order_by(sort_keys, key))
        )
    page = page.offset(page_offset)
    if page_limit is not None:
        page = page.limit(page_limit)
    count = select(func.count()).select_from(count_layers.joined).where(count_layers.where())
    return CompiledRows(page, count, sort_keys)


def record_value(records: Mapping[int, Any], path: str, source_id: int | None) -> Any:
    """The JSONB value at dotted `path` (JSON null as NULL) in the record of `source_id`, or
    with no source named, of the first source by id that has a non-null value there;
    `records` maps each live source's id to its record."""
    steps = bindparam(None, path.split("."), type_=ARRAY(Text()))

    def at(source: int) -> Any:
        found = records[source].op("#>")(steps)
        return func.nullif(type_coerce(found, JSONB()), literal_column("'null'::jsonb"))

    if source_id is not None:
        if source_id not in records:
            return _NO_VALUE
        return type_coerce(at(source_id), JSONB())
    if not records:
        return _NO_VALUE
    return type_coerce(func.coalesce(*(at(source) for source in sorted(records))), JSONB())


def clock_binds(query: RowQuery) -> tuple[Any, Any]:
    """The parameters `TODAY()` and `NOW()` read (`CLOCK_PARAMETERS`), at `query.now`."""
    clock = clock_values(query.now)
    today = bindparam(CLOCK_PARAMETERS[0], clock[CLOCK_PARAMETERS[0]], type_=Date())
    now = bindparam(CLOCK_PARAMETERS[1], clock[CLOCK_PARAMETERS[1]], type_=DateTime())
    return today, now


def sort_key(sort: Sort, typed_value: tuple[Any, ValueType]) -> SortKey:
    value, kind = typed_value
    if kind == "any":
        value, kind = coerce(value, "any", "text"), "text"
    return SortKey(sort, sort_value(value, kind), kind)


def formula_value(compiler: FormulaCompiler, column: CalculatedColumn) -> Any:
    """The value of a calculated column, of its column's type."""
    value, kind = compiler.compile(column.formula)
    converted = coerce(value, kind, value_type_of(column.type))
    return typed(converted, value_type_of(column.type))


class Layers:
    """The FROM clause of one statement and the values of the columns it computes."""

    def __init__(
        self,
        source: RowSource,
        columns: Mapping[int, Column],
        by_name: Mapping[str, Column],
        query: RowQuery,
        today: Any,
        now: Any,
        carried: Sequence[str] = (),
    ) -> None:
        self._source = source
        self._carried_names = carried
        self._columns = columns
        self._by_name = by_name
        self._query = query
        self._today = today
        self._now = now
        self.values: dict[int, tuple[Any, ValueType]] = {}
        self._path_values: list[Any] = []
        self.key: Any = None
        self.joined: FromClause = source.rows
        # Columns of the source passed through `raw` and `base` as they are (an export's
        # records), by name.
        self.carried: dict[str, Any] = {}

    def build(self, wanted: set[int]) -> None:
        order = self.dependency_order(wanted)
        base_columns = [c for c in order if isinstance(c, BaseColumn)]
        path_conditions = [c for c in self._query.cohort if c.column_id is None]
        rows = self._source.rows
        raw = select(
            rows.c.key.label("key"),
            *(rows.c[name] for name in self._carried_names),
            *(self._raw(c.source_field, c.data_source_id).label(f"r{c.id}") for c in base_columns),
            *(
                self._raw(c.path or "", None).label(f"p{index}")
                for index, c in enumerate(path_conditions)
            ),
        ).subquery("raw")
        base = select(
            raw.c.key,
            *(raw.c[name] for name in self._carried_names),
            *(from_json(raw.c[f"r{c.id}"], c.type).label(f"c{c.id}") for c in base_columns),
            *(raw.c[f"p{index}"] for index in range(len(path_conditions))),
        ).subquery("base")
        self.key = base.c.key
        self.carried = {name: base.c[name] for name in self._carried_names}
        self._path_values = [base.c[f"p{index}"] for index in range(len(path_conditions))]
        for base_column in base_columns:
            self.values[base_column.id] = (
                base.c[f"c{base_column.id}"],
                value_type_of(base_column.type),
            )
        joined: FromClause = base
        for column in order:
            if isinstance(column, CalculatedColumn):
                lateral = self._calculated(column)
                joined = joined.join(lateral, true())
                self.values[column.id] = (lateral.c.v, value_type_of(column.type))
        self.joined = joined

    def dependency_order(self, wanted: set[int]) -> list[Column]:
        """The wanted columns and every column their formulas read, each after what it reads."""
        order: list[Column] = []
        placed: set[int] = set()
        for column_id in sorted(wanted):
            pending: list[tuple[Column, bool]] = [(self._columns[column_id], False)]
            while pending:
                current, expanded = pending.pop()
                if current.id in placed:
                    continue
                if expanded or isinstance(current, BaseColumn):
                    placed.add(current.id)
                    order.append(current)
                    continue
                pending.append((current, True))
                for node in walk(current.formula):
                    if isinstance(node, ColumnRef):
                        read = self._by_name[node.name.lower()]
                        if read.id not in placed:
                            pending.append((read, False))
        return order

    def _raw(self, path: str, source_id: int | None) -> Any:
        rows = self._source.rows
        records = {id: rows.c[source_column_name(id)] for id in self._source.source_ids}
        return record_value(records, path, source_id)

    def _calculated(self, column: CalculatedColumn) -> Any:
        compiler = FormulaCompiler(
            {self._columns[id].name.lower(): value for id, value in self.values.items()},
            self._today,
            self._now,
        )
        return (
            select(formula_value(compiler, column).label("v"))
            .offset(literal_column("0"))
            .correlate_except(None)
            .lateral(f"f{column.id}")
        )

    def where(self) -> Any:
        query = self._query
        cohort = [self._condition(c, index) for index, c in enumerate(query.cohort)]
        cohort_joins = ["or" if query.cohort_logic == "OR" else "and"] * len(cohort)
        filters = [self._condition(c, None) for c in query.filters]
        return combine(cohort, cohort_joins) & combine(
            filters, [c.logical_operator for c in query.filters]
        )

    def _condition(self, condition: Condition, cohort_index: int | None) -> Any:
        if condition.column_id is not None:
            value, kind = self.values[condition.column_id]
            return condition_sql(value, kind, condition)
        assert cohort_index is not None
        path_index = sum(1 for c in self._query.cohort[:cohort_index] if c.column_id is None)
        raw = self._path_values[path_index]
        if condition.operator in ("isNull", "isNotNull"):
            return condition_sql(raw, "any", condition)
        kind = path_value_type(condition)
        return condition_sql(coerce(raw, "any", kind), kind, condition)
