"""The compiler's statements on PostgreSQL: rows merged by key in `panel_row`, values that do
not convert are null and never an error, and chained formulas planned once each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from panels.column.formula import COLUMN_TYPES, parse
from panels.rows.compiler import (
    BaseColumn,
    CalculatedColumn,
    Column,
    Condition,
    RowQuery,
    Sort,
    clock_values,
    compile_rows,
    panel_rows,
)
from tests.conftest import Services
from tests.integration.rows_database import RowsDatabase, json_text, rows_database

NOW = datetime(2026, 11, 30, 12, 0)


@pytest.fixture(scope="module")
def database(services: Services) -> Iterator[RowsDatabase]:
    with rows_database(services.database_url) as opened:
        yield opened


def _store_records(database: RowsDatabase, records: list[tuple[str, int, int, str, Any]]) -> None:
    """A temporary `panel_row_visible` (it hides the real view in this session) holding
    `records` as (tenant, panel, source, key, record), merged by key as the records writer
    does."""
    database.run(text("DROP TABLE IF EXISTS pg_temp.panel_row_visible"))
    database.run(
        text(
            "CREATE TEMPORARY TABLE panel_row_visible (tenant_id text, panel_id bigint,"
            ' key text COLLATE "C", sources jsonb NOT NULL, PRIMARY KEY (tenant_id, panel_id, key))'
        )
    )
    for tenant, panel, source, key, record in records:
        database.run(
            text(
                "INSERT INTO panel_row_visible VALUES (:tenant, :panel, :key,"
                " jsonb_build_object(CAST(:source AS text), CAST(:record AS jsonb)))"
                " ON CONFLICT (tenant_id, panel_id, key)"
                " DO UPDATE SET sources = panel_row_visible.sources || excluded.sources"
            ).bindparams(
                tenant=tenant, panel=panel, source=source, key=key, record=json_text(record)
            )
        )


def test_records_of_the_panels_live_sources_sharing_a_key_form_one_row(
    database: RowsDatabase,
) -> None:
    _store_records(
        database,
        [
            ("t1", 1, 2, "p1", {"name": {"given": ["Ann"]}, "age": None}),
            ("t1", 1, 5, "p1", {"age": 41, "risk": "high"}),
            ("t1", 1, 5, "p2", {"age": "17"}),
            ("t1", 1, 7, "p1", {"age": 99, "risk": "deleted source"}),
            ("t1", 1, 7, "p3", {"age": 1}),
            ("t1", 3, 8, "p1", {"age": 5}),
            ("t2", 1, 2, "p4", {"age": 6}),
        ],
    )
    columns: list[Column] = [
        BaseColumn(1, "Given", "text", "name.given.0", 2),
        BaseColumn(2, "Age", "number", "age"),
        BaseColumn(3, "Risk", "select", "risk", 5),
        CalculatedColumn(4, "Next", "number", parse("Age + 1")),
    ]
    query = RowQuery(columns=columns, shown=[1, 2, 3, 4], now=NOW)
    compiled = compile_rows(panel_rows("t1", 1, [5, 2]), query)
    assert [tuple(row[:5]) for row in database.run(compiled.page)] == [
        ("p1", "Ann", Decimal(41), "high", Decimal(42)),
        ("p2", None, Decimal(17), None, Decimal(18)),
    ]
    assert database.run(compiled.count) == [(2,)]


NASTY = [
    "1e999999",
    "9" * 101,
    "NaN",
    "Infinity",
    "-Infinity",
    "0x1F",
    "1_000",
    " 1",
    "1.2.3",
    "2024-02-30",
    "2023-02-29",
    "0000-01-01",
    "2024-13-01",
    "2024-01-01T24:00:00Z",
    "2024-01-01T10:00:60Z",
    "2024-01-01T10:00:00+15:00",
    "2024-01-01T10:00:00.1234567Z",
    "2024-01-01X10:00",
    "99999-01-01",
    "yes",
    "t",
    "",
    "\u00e9\u00e8",
    [],
    [[1], {"a": None}],
    {"deep": {"er": [1, 2, {"est": None}]}},
    True,
    -0.0,
    1e308,
    None,
]


def test_values_that_do_not_convert_are_null_and_never_fail(database: RowsDatabase) -> None:
    rows = {f"r{index:02}": {2: {"v": value}} for index, value in enumerate(NASTY)}
    source = database.rows_table([2], rows)
    columns: list[Column] = [
        BaseColumn(index + 1, f"as {kind}", kind, "v") for index, kind in enumerate(COLUMN_TYPES)
    ]
    shown = [column.id for column in columns]
    formulas = [
        'DATEDIFF({as date}, {as datetime}, "months") + LEN({as text}) / {as number}',
        "ROUND({as number}, {as number}) * MIN({as custom}, 2) & {as multi_select}",
    ]
    for index, formula in enumerate(formulas):
        columns.append(CalculatedColumn(100 + index, f"f{index}", "text", parse(formula)))
    query = RowQuery(
        columns=columns,
        shown=[*shown, 100, 101],
        now=NOW,
        filters=[
            Condition("gt", 0, column_id=2),
            Condition("isNull", column_id=4, logical_operator="or"),
        ],
        sorts=[Sort(100), Sort(5, descending=True), Sort(10)],
    )
    compiled = compile_rows(source, query)
    page = {row.key: row for row in database.run(compiled.page)}
    number, day, moment = 2, 3, 4
    for key, row in page.items():
        value = NASTY[int(key[1:])]
        if isinstance(value, str):
            assert row[number] is None, value
        assert row[day] is None, value
        assert row[moment] is None, value
    assert page["r27"][number] == 0  # -0.0 is a number
    assert database.run(compiled.count) == [(len(page),)]


def test_each_formula_of_a_chain_is_its_own_plan_node(database: RowsDatabase) -> None:
    """Without the fence, PostgreSQL pastes each formula into the next (3^n expressions for
    this chain; the planner alone would exhaust memory). With it, each calculated column is
    one Result node, computed once per row. (EXPLAIN VERBOSE would print the pasted text all
    the same, as it spells out every reference: it is no measure.) Runs on PostgreSQL 15 and
    16 alike."""
    length = 30
    columns: list[Column] = [BaseColumn(1, "c0", "number", "n")]
    for index in range(1, length + 1):
        formula = parse(f"c{index - 1} * 0 + c{index - 1} + 1")
        columns.append(CalculatedColumn(index + 1, f"c{index}", "number", formula))
    source = database.rows_table([2], {"a": {2: {"n": 1}}, "b": {2: {"n": "2"}}})
    page = compile_rows(source, RowQuery(columns=columns, shown=[length + 1], now=NOW)).page
    assert [tuple(row[:2]) for row in database.run(page)] == [("a", 31), ("b", 32)]
    compiled = page.compile(dialect=database.dialect, compile_kwargs={"literal_binds": True})
    # PostgreSQL 15 may put a Memoize over each lateral, whose cache key EXPLAIN spells out
    # in full (2^n text for this chain): without it the plan shows the layers alone.
    database.run(text("SET enable_memoize = off"))
    try:
        [(plan,)] = database.run(text(f"EXPLAIN (FORMAT JSON) {compiled}"))
    finally:
        database.run(text("RESET enable_memoize"))
    assert json.dumps(plan).count('"Node Type": "Result"') == length


def test_a_date_column_compares_with_dates(database: RowsDatabase) -> None:
    source = database.rows_table([2], {"a": {2: {"d": "2026-11-30T23:30:00-02:00"}}})
    columns: list[Column] = [
        BaseColumn(1, "d", "date", "d"),
        CalculatedColumn(2, "late", "boolean", parse("d > TODAY()")),
    ]
    query = RowQuery(columns=columns, shown=[1, 2], now=NOW)
    assert [tuple(row[:3]) for row in database.run(compile_rows(source, query).page)] == [
        ("a", date(2026, 12, 1), True)
    ]


def test_a_statement_runs_at_the_time_its_clock_parameters_give(database: RowsDatabase) -> None:
    """Statements are built once and run again later (`rows.shape.built`): `TODAY()` and
    `NOW()` are the values given at execution, not those of when the statement was built."""
    source = database.rows_table([2], {"a": {2: {"d": "2026-12-01"}}})
    columns: list[Column] = [
        BaseColumn(1, "d", "date", "d"),
        CalculatedColumn(2, "due", "boolean", parse("d > TODAY()")),
        CalculatedColumn(3, "at", "datetime", parse("NOW()")),
    ]
    page = compile_rows(source, RowQuery(columns=columns, shown=[2, 3], now=NOW)).page
    assert [tuple(row[1:3]) for row in database.run(page)] == [(True, NOW)]
    later = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)
    assert [tuple(row[1:3]) for row in database.run(page, clock_values(later))] == [
        (False, datetime(2026, 12, 2, 8, 30))
    ]
