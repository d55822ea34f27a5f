"""The CSV export's statement: every matching row of a `RowQuery`, each value computed once.

Unlike a page's (`statement`), whose layers the planner pulls up so that indexes on the
filters' and sorts' expressions serve it, the export fences its layers: it reads every
matching row, and a record value extracted again wherever a conversion or formula reads it
cost it 2 to 3 extractions per value (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import FromClause, Select, literal_column, select

from panels.column.formula import ColumnRef, value_type_of
from panels.column.formula.nodes import walk

from .conversion import from_json
from .formulas import FormulaCompiler
from .ordering import SortKey, order_by
from .spec import BaseColumn, CalculatedColumn, Column, RowQuery, RowSource
from .spec import source_column as source_column_name
from .statement import (
    Layers,
    clock_binds,
    formula_value,
    record_value,
    sort_key,
    sort_label,
    value_label,
)


@dataclass(frozen=True, slots=True)
class ExportRows:
    """`rows` yields what a page does (`key`, `value_label(id)` per shown column,
    `sort_label(i)` per sort) for every matching row, in the page's order; `sort_keys` are
    the page's. A statement that selects from `rows` as a subquery and orders by its
    `sort_label` columns and key again sorts nothing twice (the planner sees the order)."""

    rows: Select[Any]
    sort_keys: tuple[SortKey, ...]


def compile_export(source: RowSource, query: RowQuery) -> ExportRows:
    """Every row of `query` (its paging and cursor ignored), each value computed once per row.

    Layers, each a fenced subquery (`OFFSET 0`) reading the one before it, each ordered as
    the rows (the planner keeps an order only through subqueries whose own query asks for
    it, so the one sort, or index scan, at the bottom orders them all):

    1. `matching`: the key, each live source's record and the sort values of the rows that
       match the cohort and filters, in order; the conditions and sorts are the page
       statement's unfenced expressions, which the view's indexes serve;
    2. `raw`: each shown base column's record value, read once;
    3. `base`: those values converted;
    4. one layer per depth of formula (a formula reads only columns of the layers below it).
    """
    columns = {column.id: column for column in query.columns}
    by_name = {column.name.lower(): column for column in query.columns}
    conditions = [*query.cohort, *query.filters]
    today, now = clock_binds(query)
    records = [source_column_name(id) for id in source.source_ids]

    matching_layers = Layers(source, columns, by_name, query, today, now, carried=records)
    matching_layers.build(
        {c.column_id for c in conditions if c.column_id is not None}
        | {sort.column_id for sort in query.sorts}
    )
    sort_keys = tuple(
        sort_key(sort, matching_layers.values[sort.column_id]) for sort in query.sorts
    )
    sort_labels = [sort_label(index) for index in range(len(sort_keys))]
    layer: FromClause = (
        select(
            matching_layers.key.label("key"),
            *(matching_layers.carried[name] for name in records),
            *(k.value.label(label) for k, label in zip(sort_keys, sort_labels, strict=True)),
        )
        .select_from(matching_layers.joined)
        .where(matching_layers.where())
        .order_by(*order_by(sort_keys, matching_layers.key))
        .offset(literal_column("0"))
        .subquery("matching")
    )

    def ordering(rows: FromClause) -> list[Any]:
        keys = [
            SortKey(k.sort, rows.c[label], k.value_type)
            for k, label in zip(sort_keys, sort_labels, strict=True)
        ]
        return order_by(keys, rows.c.key)

    def next_layer(values: list[Any], name: str) -> FromClause:
        carried = [layer.c.key, *(layer.c[label] for label in sort_labels)]
        return (
            select(*carried, *values)
            .select_from(layer)
            .order_by(*ordering(layer))
            .offset(literal_column("0"))
            .subquery(name)
        )

    shown_order = matching_layers.dependency_order(set(query.shown))
    base_columns = [c for c in shown_order if isinstance(c, BaseColumn)]
    record_of = {id: layer.c[source_column_name(id)] for id in source.source_ids}
    layer = next_layer(
        [
            record_value(record_of, c.source_field, c.data_source_id).label(f"r{c.id}")
            for c in base_columns
        ],
        "raw",
    )
    layer = next_layer(
        [from_json(layer.c[f"r{c.id}"], c.type).label(value_label(c.id)) for c in base_columns],
        "base",
    )
    kinds = {c.id: value_type_of(c.type) for c in shown_order}
    computed = [c.id for c in base_columns]
    for depth, calculated in enumerate(_formula_depths(shown_order, by_name), start=1):
        values = {id: (layer.c[value_label(id)], kinds[id]) for id in computed}
        compiler = FormulaCompiler(
            {columns[id].name.lower(): value for id, value in values.items()}, today, now
        )
        layer = next_layer(
            [
                *(layer.c[value_label(id)] for id in computed),
                *(
                    formula_value(compiler, column).label(value_label(column.id))
                    for column in calculated
                ),
            ],
            f"formulas{depth}",
        )
        computed += [column.id for column in calculated]
    rows = select(
        layer.c.key,
        *(layer.c[value_label(id)] for id in query.shown),
        *(layer.c[label] for label in sort_labels),
    ).order_by(*ordering(layer))
    return ExportRows(rows, sort_keys)


def _formula_depths(
    order: list[Column], by_name: Mapping[str, Column]
) -> list[list[CalculatedColumn]]:
    """The calculated columns of `order` (each after what it reads) by depth: a formula that
    reads no calculated column is at depth 1, one that reads a column of depth d at d + 1."""
    depth: dict[int, int] = {}
    layers: list[list[CalculatedColumn]] = []
    for column in order:
        if not isinstance(column, CalculatedColumn):
            depth[column.id] = 0
            continue
        reads = [
            by_name[node.name.lower()].id
            for node in walk(column.formula)
            if isinstance(node, ColumnRef)
        ]
        depth[column.id] = 1 + max((depth[id] for id in reads), default=0)
        if depth[column.id] > len(layers):
            layers.append([])
        layers[depth[column.id] - 1].append(column)
    return layers
