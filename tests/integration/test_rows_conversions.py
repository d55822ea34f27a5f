"""Record values read as each column type by PostgreSQL as by the reference evaluator: every
kind of JSON value against every type, and `panels_utc_timestamp` (the database function date
and datetime columns read their text with) on texts near and far from the format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from panels.rows.compiler import BaseColumn, RowQuery, compile_rows
from tests.conftest import Services
from tests.integration.rows_database import RowsDatabase, json_text, rows_database
from tests.unit.rows.reference_values import column_value, json_to
from tests.unit.rows.strategies import NOW


@pytest.fixture(scope="module")
def database(services: Services) -> Iterator[RowsDatabase]:
    with rows_database(services.database_url) as opened:
        yield opened


def _digits(count: int, first: str = "0123456789") -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(first), st.text("0123456789", min_size=count - 1, max_size=count - 1)
    ).map("".join)


def _field(first: int, last: int, wrong: list[str]) -> st.SearchStrategy[str]:
    """Two digits, mostly within first..last, sometimes just past it or anything."""
    valid = st.integers(first, last).map(lambda number: f"{number:02d}")
    return st.one_of(valid, valid, valid, st.sampled_from(wrong), _digits(2))


_MONTH = _field(1, 12, ["00", "13"])
_DAY = _field(1, 31, ["00", "29", "30", "31", "32"])
_HOUR = _field(0, 23, ["24", "29"])
_SIXTY = _field(0, 59, ["60", "99"])
_OFFSET_HOUR = _field(0, 14, ["15", "19"])
_YEAR = st.one_of(
    st.sampled_from(["0999", "1000", "1900", "2000", "2023", "2024", "2100", "2999", "3000"]),
    _digits(4, first="12"),
    _digits(4),
)
_SECONDS = st.one_of(
    st.just(""),
    st.tuples(st.just(":"), _SIXTY).map("".join),
    st.tuples(
        st.just(":"), _SIXTY, st.just("."), st.text("0123456789", min_size=0, max_size=7)
    ).map("".join),
)
_OFFSET = st.one_of(
    st.sampled_from(["", "Z", "z", "+", "-"]),
    st.tuples(st.sampled_from("+-"), _OFFSET_HOUR, st.sampled_from([":", ""]), _SIXTY).map("".join),
)
_TIME = st.one_of(
    st.just(""),
    st.tuples(st.sampled_from("T t"), _HOUR, st.just(":"), _SIXTY, _SECONDS, _OFFSET).map("".join),
)
_NEAR = st.tuples(_YEAR, st.just("-"), _MONTH, st.just("-"), _DAY, _TIME).map("".join)
_NOISE = "0123456789-:Tt Zz+.\n\u0661x"  # with an Arabic-Indic digit one


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """A text in the format's shape, sometimes with a character inserted, dropped or changed."""
    value = draw(st.one_of(_NEAR, _NEAR, st.text(_NOISE, max_size=30)))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(value)))
        change = draw(st.sampled_from(["insert", "drop", "replace"]))
        character = draw(st.sampled_from(_NOISE))
        if change == "insert":
            value = value[:at] + character + value[at:]
        elif change == "drop":
            value = value[:at] + value[at + 1 :]
        else:
            value = value[:at] + character + value[at + 1 :]
    return value


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(_texts(), min_size=1, max_size=60))
def test_datetime_text_reads_as_the_reference_reads_it(
    database: RowsDatabase, values: list[str]
) -> None:
    statement = text(
        "SELECT panels_utc_timestamp(v) FROM unnest(CAST(:values AS text[])) WITH ORDINALITY"
        " AS t(v, n) ORDER BY n"
    ).bindparams(values=values)
    read = [row[0] for row in database.run(statement)]
    assert read == [json_to(value, "datetime") for value in values]


_RECORD_VALUES: list[Any] = [
    None,
    True,
    False,
    Decimal(0),
    Decimal("-1.50"),
    Decimal("1E+3"),
    Decimal("123456789012345678901234567890.5"),
    "",
    "abc",
    "true",
    "FALSE",
    "True ",
    "yes",
    "1e3",
    "-.5",
    "+2.",
    " 1",
    "1e1000",
    "1" * 100,
    "1" * 101,
    "2024-02-29",
    "2023-02-29",
    "2026-11-30T23:30:00-02:00",
    "2026-11-30 12:34:56.789Z",
    ["a", Decimal(1)],
    {"x": "y"},
]
_TYPES = ["text", "select", "number", "boolean", "date", "datetime", "multi_select", "custom"]


@pytest.mark.parametrize("column_type", _TYPES)
def test_every_kind_of_json_value_reads_as_the_reference_reads_it(
    database: RowsDatabase, column_type: str
) -> None:
    rows = {f"k{index:02d}": {1: {"v": value}} for index, value in enumerate(_RECORD_VALUES)}
    source = database.rows_table([1], rows)
    column = BaseColumn(1, "v", column_type, "v", 1)
    query = RowQuery(columns=[column], shown=[1], now=NOW, limit=None)
    read = [row[1] for row in database.run(compile_rows(source, query).page)]
    expected = [column_value(value, column_type) for value in _RECORD_VALUES]
    if column_type in ("multi_select", "custom"):  # JSON as the driver hands it back
        expected = [None if value is None else json.loads(json_text(value)) for value in expected]
    assert read == expected
