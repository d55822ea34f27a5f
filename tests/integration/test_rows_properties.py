"""The compiled rows statements, executed by PostgreSQL, give exactly the reference
evaluator's rows: values, order, total and cursor pages, on random panels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panels.column.formula import value_type_of
from panels.rows.compiler import (
    Column,
    RowQuery,
    compile_export,
    compile_rows,
    encode_cursor,
    sort_label,
)
from tests.conftest import Services
from tests.integration.rows_database import RowsDatabase, json_text, rows_database
from tests.unit.rows import reference
from tests.unit.rows.strategies import (
    NOW,
    SOURCE_IDS,
    conditions,
    panel_columns,
    row_records,
    sorts,
)


@pytest.fixture(scope="module")
def database(services: Services) -> Iterator[RowsDatabase]:
    with rows_database(services.database_url) as opened:
        yield opened


def _comparable(value: Any, column: Column) -> Any:
    """Values as PostgreSQL hands them back: JSON (multi-select, custom) through JSON."""
    if value is not None and value_type_of(column.type) == "any":
        return json.loads(json_text(value))
    return value


@st.composite
def queries(draw: st.DrawFn) -> RowQuery:
    columns = draw(panel_columns())
    return RowQuery(
        columns=columns,
        shown=[column.id for column in columns],
        now=NOW,
        cohort=draw(conditions(columns, paths=True)),
        cohort_logic=draw(st.sampled_from(["AND", "OR"])),
        filters=draw(conditions(columns, paths=False)),
        sorts=draw(sorts(columns)),
        limit=draw(st.one_of(st.none(), st.integers(1, 4))),
        offset=draw(st.integers(0, 2)),
    )


def _expected(query: RowQuery, rows: Any) -> tuple[list[tuple[Any, ...]], int, list[Any]]:
    page, total, ordered = reference.evaluate(query, rows)
    by_id = {column.id: column for column in query.columns}

    def shaped(row: tuple[Any, ...]) -> tuple[Any, ...]:
        key, *values = row
        shown = [by_id[id] for id in query.shown]
        return (key, *(_comparable(v, c) for v, c in zip(values, shown, strict=True)))

    return [shaped(r) for r in page], total, [shaped(r) for r in ordered]


def _strip(row: Any, query: RowQuery) -> tuple[Any, ...]:
    return tuple(row[: 1 + len(query.shown)])


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=row_records(), query=queries())
def test_rows_match_the_reference(database: RowsDatabase, rows: Any, query: RowQuery) -> None:
    source = database.rows_table(SOURCE_IDS, rows)
    compiled = compile_rows(source, query)
    expected_page, expected_total, _ = _expected(query, rows)
    page = [_strip(row, query) for row in database.run(compiled.page)]
    assert page == expected_page
    assert database.run(compiled.count) == [(expected_total,)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=row_records(), query=queries(), size=st.integers(1, 3))
def test_cursor_pages_walk_the_whole_order(
    database: RowsDatabase, rows: Any, query: RowQuery, size: int
) -> None:
    source = database.rows_table(SOURCE_IDS, rows)
    _, _, expected = _expected(query, rows)
    walked: list[tuple[Any, ...]] = []
    cursor = None
    for _ in range(len(expected) + 1):
        step = RowQuery(**{**_fields(query), "limit": size, "offset": 0, "cursor": cursor})
        compiled = compile_rows(source, step)
        page = database.run(compiled.page)
        walked.extend(_strip(row, query) for row in page)
        if len(page) < size:
            break
        last = page[-1]
        values = [last._mapping[sort_label(i)] for i in range(len(compiled.sort_keys))]
        cursor = encode_cursor(compiled.sort_keys, values, last.key)
    assert walked == expected


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=row_records(), query=queries())
def test_the_export_reads_every_matching_row_in_order(
    database: RowsDatabase, rows: Any, query: RowQuery
) -> None:
    """The export's own statement (fenced layers, `compile_export`): every row of the
    reference's order, paging ignored, with the same values."""
    source = database.rows_table(SOURCE_IDS, rows)
    _, _, expected = _expected(query, rows)
    exported = [_strip(row, query) for row in database.run(compile_export(source, query).rows)]
    assert exported == expected


def _fields(query: RowQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in RowQuery.__slots__}


def test_decimal_literals_keep_their_scale(database: RowsDatabase) -> None:
    """numeric division's scale depends on its operands' scales, so a literal's scale (as
    asyncpg binds it) must be the one the formula wrote."""
    from panels.column.formula import parse
    from panels.rows.compiler import CalculatedColumn

    source = database.rows_table(SOURCE_IDS, {"a": {2: {}}})
    column = CalculatedColumn(1, "x", "number", parse("1.50 / 7"))
    query = RowQuery(columns=[column], shown=[1], now=NOW)
    [(_, value, *_)] = database.run(compile_rows(source, query).page)
    assert value == reference.divide(Decimal("1.50"), Decimal(7))
