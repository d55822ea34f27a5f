"""The ad-hoc `sort` and `filter` parsers: any text is either read or a 400 naming
`query.sort…`/`query.filter…`, never another exception; what they read is what was meant."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panels.column.entities import PanelColumn
from panels.platform.conditions import Operator
from panels.platform.errors import BadRequest
from panels.rows.compiler import Condition, Sort
from panels.rows.query import parse_filters, parse_sorts

COLUMNS = [
    PanelColumn(id=11, name="Age", type="number", column_type="base", properties={}),
    PanelColumn(id=12, name="Full name", type="text", column_type="base", properties={}),
    PanelColumn(id=13, name="a:b", type="date", column_type="base", properties={}),
    PanelColumn(id=14, name="Tags", type="multi_select", column_type="base", properties={}),
    PanelColumn(id=15, name="Active", type="boolean", column_type="base", properties={}),
]
OPERATORS: list[Operator] = [
    "eq", "ne", "gt", "gte", "lt", "lte", "contains", "notContains", "startsWith", "endsWith",
    "in", "notIn", "between", "isNull", "isNotNull",
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
filter_items = st.fixed_dictionaries(
    {},
    optional={
        "columnName": st.sampled_from(["Age", "full NAME", "13", "a:b", "Tags", "x"])
        | st.text(max_size=10)
        | json_values,
        "operator": st.sampled_from(OPERATORS) | st.text(max_size=6) | json_values,
        "value": json_values,
        "logicalOperator": st.sampled_from(["and", "or", "xor"]) | json_values,
    },
)


def _refused(error: BadRequest, prefix: str) -> None:
    fields = [detail["key"] for detail in error.extra]  # type: ignore[union-attr]
    assert len(fields) == 1, fields
    assert fields[0].startswith(prefix), fields


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_sort_text_is_read_or_refused_naming_the_sort(values: list[str]) -> None:
    try:
        sorts = parse_sorts(values, COLUMNS)
    except BadRequest as error:
        _refused(error, "query.sort")
        return
    assert all(sort.column_id in {c.id for c in COLUMNS} for sort in sorts)
    assert len({sort.column_id for sort in sorts}) == len(sorts)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.lists(filter_items, max_size=4).map(json.dumps))
def test_any_filter_text_is_read_or_refused_naming_the_filter(text: str) -> None:
    try:
        conditions = parse_filters(text, COLUMNS)
    except BadRequest as error:
        _refused(error, "query.filter")
        return
    assert all(c.column_id in {column.id for column in COLUMNS} for c in conditions)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(COLUMNS), st.sampled_from(["", ":asc", ":desc", ":DESC"])),
        max_size=5,
        unique_by=lambda item: item[0].id,
    ),
    st.booleans(),
)
def test_sorts_read_names_or_ids_with_their_direction(
    items: list[tuple[PanelColumn, str]], by_id: bool
) -> None:
    texts = [f"{column.id if by_id else column.name.upper()}{suffix}" for column, suffix in items]
    expected = [Sort(column.id, suffix.lower() == ":desc") for column, suffix in items]
    assert parse_sorts([",".join(texts)] if texts else [], COLUMNS) == expected
    assert parse_sorts(texts, COLUMNS) == expected


def test_filters_read_as_view_filters() -> None:
    text = json.dumps(
        [
            {"columnName": "age", "operator": "between", "value": [1, 2]},
            {"columnName": "12", "operator": "contains", "value": "%", "logicalOperator": "or"},
        ]
    )
    assert parse_filters(text, COLUMNS) == [
        Condition("between", [1, 2], column_id=11),
        Condition("contains", "%", column_id=12, logical_operator="or"),
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[" * 10_000, "query.filter"),
        ('[{"columnName":"Age","operator":"eq","value":"\\u0000"}]', "query.filter"),
        ('[{"columnName":"Age","operator":"eq","value":"\\ud800"}]', "query.filter"),
        ('[{"columnName":"Age","operator":"eq","value":NaN}]', "query.filter"),
        ('[{"columnName":"Age","operator":"eq","value":1e400}]', "query.filter"),
        ('[{"columnName":"Active","operator":"gt","value":true}]', "query.filter[0].value"),
        ('[{"columnName":"Age","operator":"eq"}]', "query.filter[0].value"),
        ('[{"columnName":"Age","operator":"isNull","value":3}]', "query.filter[0].value"),
        (
            '[{"columnName":"Age","operator":"eq","value":1,"logicalOperator":"x"}]',
            "query.filter[0].logicalOperator",
        ),
        ('[{"operator":"eq","value":1}]', "query.filter[0]"),
    ],
)  # fmt: skip
def test_refusals_name_the_offending_item(text: str, field: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_filters(text, COLUMNS)
    assert [d["key"] for d in raised.value.extra] == [field]  # type: ignore[union-attr]
