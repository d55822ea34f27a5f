"""The compiler's promises that need no database: user values only as parameters, SQL that
grows linearly with formulas and chains, cursors that refuse tampering, cohort fields."""

from __future__ import annotations

import base64
import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Text, column, table
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from panels.column.formula import Binary, ColumnRef, String, parse
from panels.platform.db import MIGRATIONS_DIR
from panels.rows.compiler import (
    BaseColumn,
    CalculatedColumn,
    Column,
    Condition,
    RowQuery,
    RowSource,
    Sort,
    cohort_conditions,
    compile_rows,
    encode_cursor,
)
from panels.rows.compiler.conversion import DATETIME_PATTERN

NOW = datetime(2026, 11, 30, 12, 0)
SOURCE = RowSource(
    table("rows", column("key", Text()), column("s1", JSONB()), column("s2", JSONB())), (1, 2)
)
HOSTILE = "x'; DROP TABLE panel; --\\%_"


def _sql(query: RowQuery) -> str:
    compiled = compile_rows(SOURCE, query)
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    return str(compiled.page.compile(dialect=dialect)) + str(
        compiled.count.compile(dialect=dialect)
    )


def test_user_values_reach_sql_only_as_parameters() -> None:
    columns: list[Column] = [
        BaseColumn(1, "Name", "text", HOSTILE, 1),
        BaseColumn(2, "Tags", "multi_select", f"{HOSTILE}.0"),
        CalculatedColumn(3, "Label", "text", Binary("&", ColumnRef("Name"), String(HOSTILE))),
    ]
    query = RowQuery(
        columns=columns,
        shown=[1, 2, 3],
        now=NOW,
        cohort=[Condition("eq", HOSTILE, path=HOSTILE)],
        filters=[
            Condition("contains", HOSTILE, column_id=1),
            Condition("in", [HOSTILE], column_id=3, logical_operator="or"),
            Condition("between", [HOSTILE, HOSTILE], column_id=2),
        ],
        sorts=[Sort(3, descending=True)],
    )
    compiled = compile_rows(SOURCE, query)
    cursor = encode_cursor(compiled.sort_keys, [HOSTILE], HOSTILE)
    sql = _sql(RowQuery(**{**_fields(query), "cursor": cursor}))
    assert "DROP" not in sql
    assert "--" not in sql


def _fields(query: RowQuery) -> dict[str, object]:
    return {name: getattr(query, name) for name in RowQuery.__slots__}


def _chain(length: int) -> list[Column]:
    columns: list[Column] = [BaseColumn(1, "c0", "number", "n")]
    for index in range(1, length + 1):
        formula = parse(f"c{index - 1} * c{index - 1} + c{index - 1}")
        columns.append(CalculatedColumn(index + 1, f"c{index}", "number", formula))
    return columns


def test_a_chain_of_formulas_is_computed_once_per_column() -> None:
    short, long = _chain(20), _chain(40)
    short_sql = _sql(RowQuery(columns=short, shown=[short[-1].id], now=NOW))
    long_sql = _sql(RowQuery(columns=long, shown=[long[-1].id], now=NOW))
    assert len(long_sql) < 2.3 * len(short_sql)


@pytest.mark.parametrize(
    "template",
    [
        "MIN({inner}, n)",
        "ROUND(n, {inner})",
        'DATEDIFF(IF({inner} > 1, d, TODAY()), NOW(), "months")',
        "COALESCE(IF({inner} > 0, j, j), n) + 1",
    ],
)
def test_nested_formulas_grow_linearly(template: str) -> None:
    def nested(depth: int) -> str:
        formula = "n"
        for _ in range(depth):
            formula = template.format(inner=formula)
        return formula

    def sql_length(depth: int) -> int:
        columns: list[Column] = [
            BaseColumn(1, "n", "number", "n"),
            BaseColumn(2, "d", "date", "d"),
            BaseColumn(3, "j", "custom", "j"),
            CalculatedColumn(4, "x", "number", parse(nested(depth))),
        ]
        return len(_sql(RowQuery(columns=columns, shown=[4], now=NOW)))

    assert sql_length(8) < 2.5 * sql_length(4)


def test_a_filter_compares_the_bare_column_with_a_parameter() -> None:
    columns: list[Column] = [BaseColumn(1, "When", "date", "when")]
    query = RowQuery(
        columns=columns, shown=[1], now=NOW, filters=[Condition("gte", "2026-11-30", column_id=1)]
    )
    assert "base.c1 >= $" in _sql(query)


def _cursor_query(cursor: str) -> RowQuery:
    columns: list[Column] = [BaseColumn(1, "Age", "number", "age")]
    return RowQuery(columns=columns, shown=[1], now=NOW, sorts=[Sort(1)], cursor=cursor)


def _token(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _token([1, 2]),
        _token({"s": [[1, 1]], "v": ["3"], "k": "a"}),  # made for a descending sort
        _token({"s": [[1, 0]], "v": [3], "k": "a"}),  # a number that is not its text
        _token({"s": [[1, 0]], "v": ["NaN"], "k": "a"}),
        _token({"s": [[1, 0]], "v": ["3", "4"], "k": "a"}),
        _token({"s": [[1, 0]], "v": ["3"], "k": 7}),
        _token({"s": [[1, 0]], "v": ["3"]}),
    ],
)
def test_a_tampered_or_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        compile_rows(SOURCE, _cursor_query(cursor))


def test_a_cursor_of_the_same_sorts_is_accepted() -> None:
    query = _cursor_query("")
    query = RowQuery(**{**_fields(query), "cursor": None})
    keys = compile_rows(SOURCE, query).sort_keys
    token = encode_cursor(keys, [None], "k")
    assert compile_rows(SOURCE, RowQuery(**{**_fields(query), "cursor": token})) is not None


def test_cohort_fields_name_columns_by_name_or_id_else_a_record_path() -> None:
    columns: list[Column] = [BaseColumn(7, "Age", "number", "age"), BaseColumn(8, "8", "text", "x")]
    rule = {
        "logic": "OR",
        "conditions": [
            {"field": "age", "operator": "gt", "value": 3},
            {"field": "7", "operator": "isNull"},
            {"field": "8", "operator": "eq", "value": "a"},
            {"field": "9", "operator": "eq", "value": "a"},
            {"field": "name.given.0", "operator": "startsWith", "value": "A"},
        ],
    }
    conditions, logic = cohort_conditions(columns, rule)
    assert logic == "OR"
    assert [(c.column_id, c.path) for c in conditions] == [
        (7, None),
        (7, None),
        (8, None),
        (None, "9"),
        (None, "name.given.0"),
    ]


def test_a_formula_saved_before_its_column_changed_type_compiles() -> None:
    """The service refuses a type change that breaks a formula; should one slip through,
    the value the formula cannot use is null rather than a failed query."""
    columns: list[Column] = [
        BaseColumn(1, "flag", "boolean", "f"),
        CalculatedColumn(2, "next", "number", parse("flag + 1")),
    ]
    assert "NULL" in _sql(RowQuery(columns=columns, shown=[2], now=NOW))


def test_the_database_datetime_function_checks_the_compilers_pattern() -> None:
    """`panels_utc_timestamp` (migration 20261201_0011) holds a copy of DATETIME_PATTERN."""
    path = next(Path(MIGRATIONS_DIR, "versions").glob("*_0011_panel_rows.py"))
    spec = importlib.util.spec_from_file_location("panel_rows_migration", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.DATETIME_PATTERN == DATETIME_PATTERN
