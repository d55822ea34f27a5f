"""Random panels for the rows property tests: records of several sources (missing fields,
wrong types, near-valid dates), base columns of every type, calculated columns drawn from the
formula grammar by type (and checked by the real checker), filters, cohort rules and sorts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from panels.column.formula import (
    COLUMN_TYPES,
    DATEDIFF_UNITS,
    Binary,
    Boolean,
    Call,
    ColumnRef,
    FormulaError,
    Node,
    Number,
    String,
    Unary,
    ValueType,
    check,
    check_result,
    value_type_of,
)
from panels.rows.compiler import BaseColumn, CalculatedColumn, Column, Condition, Sort

SOURCE_IDS = (2, 5, 9)
NOW = datetime(2026, 11, 30, 12, 34, 56, 789000)
PATHS = ("a", "b", "c", "n.x", "list.0", "list.1")
KEYS = ("a", "b", "B", "a1", "a10", "a9", "_", "%", "z", "k")

# Text from an alphabet whose upper and lower cases agree in every locale, with the
# characters LIKE treats specially.
TEXT = st.text(alphabet="aAbB %_\\-", max_size=4)
NUMBERS = st.one_of(
    st.integers(-20, 20).map(Decimal),
    st.sampled_from(["0.5", "1.50", "-2.25", "3.333", "1E+2", "0.000"]).map(Decimal),
)
DATES = st.sampled_from(
    ["2026-11-30", "2024-02-29", "2023-02-29", "2026-01-31", "1999-12-31", "2026-13-01"]
)
DATETIMES = st.sampled_from(
    [
        "2026-11-30T12:34:56.789Z",
        "2026-11-30T23:30:00-02:00",
        "2026-02-28 10:00",
        "2024-02-29T00:00:00+0130",
        "2026-11-30T12:34:56.5",
        "2026-11-30T25:00:00Z",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    NUMBERS.map(lambda n: format(n, "f")),
    st.sampled_from(["1e3", "abc", "", "true", "FALSE", " 1", "--1"]),
    DATES,
    DATETIMES,
    TEXT,
)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(TEXT, NUMBERS), max_size=2),
    st.fixed_dictionaries({"x": SCALARS}),
)
RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "a": VALUES,
        "b": VALUES,
        "c": VALUES,
        "n": st.one_of(st.fixed_dictionaries({"x": SCALARS}), SCALARS),
        "list": st.lists(SCALARS, max_size=2),
    },
)


@st.composite
def row_records(draw: st.DrawFn) -> dict[str, dict[int, Any]]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=8))
    rows: dict[str, dict[int, Any]] = {}
    for key in keys:
        sources = draw(st.lists(st.sampled_from(SOURCE_IDS), min_size=1, unique=True))
        rows[key] = {source: draw(RECORDS) for source in sources}
    return rows


@dataclass(frozen=True)
class _Scope:
    """The columns a formula may read, by value type."""

    names: dict[ValueType, list[str]]

    def of(self, kind: ValueType) -> list[str]:
        return self.names.get(kind, []) + self.names.get("any", [])


def _formula(draw: st.DrawFn, kind: ValueType, scope: _Scope, depth: int) -> Node:
    def sub(sub_kind: ValueType) -> Node:
        return _formula(draw, sub_kind, scope, depth - 1)

    readable = scope.of(kind)
    leaves: list[str] = ["literal"] + (["column"] * 2 if readable else [])
    compound = {
        "number": ["neg", "arith", "round", "abs", "extreme", "len", "datediff", "if", "coalesce"],
        "text": ["concat", "amp", "case", "if", "coalesce"],
        "boolean": ["compare", "andor", "not", "if"],
        "date": ["if", "coalesce"],
        "datetime": ["if", "coalesce"],
    }[kind]
    choice = draw(st.sampled_from(leaves + (compound if depth > 0 else [])))
    if choice == "column":
        return ColumnRef(draw(st.sampled_from(readable)))
    if choice == "literal":
        if kind == "number":
            return Number(abs(draw(NUMBERS)))
        if kind == "text":
            return String(draw(TEXT))
        if kind == "boolean":
            return Boolean(draw(st.booleans()))
        return Call("TODAY" if kind == "date" else "NOW", ())
    if choice == "neg":
        return Unary("-", sub("number"))
    if choice == "arith":
        return Binary(draw(st.sampled_from(["+", "-", "*", "/"])), sub("number"), sub("number"))
    if choice == "round":
        args = [sub("number")] + ([sub("number")] if draw(st.booleans()) else [])
        return Call("ROUND", tuple(args))
    if choice == "abs":
        return Call("ABS", (sub("number"),))
    if choice == "extreme":
        count = draw(st.integers(1, 3))
        return Call(
            draw(st.sampled_from(["MIN", "MAX"])), tuple(sub("number") for _ in range(count))
        )
    if choice == "len":
        return Call("LEN", (sub("text"),))
    if choice == "datediff":
        moments = [sub(draw(st.sampled_from(["date", "datetime"]))) for _ in range(2)]
        return Call("DATEDIFF", (*moments, String(draw(st.sampled_from(DATEDIFF_UNITS)))))
    if choice == "if":
        return Call("IF", (sub("boolean"), sub(kind), sub(kind)))
    if choice == "coalesce":
        return Call("COALESCE", tuple(sub(kind) for _ in range(draw(st.integers(1, 3)))))
    anything: list[ValueType] = ["number", "text", "boolean", "date", "datetime"]
    if choice == "concat":
        count = draw(st.integers(1, 3))
        return Call("CONCAT", tuple(sub(draw(st.sampled_from(anything))) for _ in range(count)))
    if choice == "amp":
        return Binary(
            "&", sub(draw(st.sampled_from(anything))), sub(draw(st.sampled_from(anything)))
        )
    if choice == "case":
        return Call(draw(st.sampled_from(["UPPER", "LOWER", "TRIM"])), (sub("text"),))
    if choice == "compare":
        left_kind = draw(st.sampled_from(anything))
        right_kind = left_kind
        if left_kind in ("date", "datetime"):
            right_kind = draw(st.sampled_from(["date", "datetime"]))
        op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        return Binary(op, sub(left_kind), sub(right_kind))
    if choice == "andor":
        count = draw(st.integers(1, 3))
        return Call(
            draw(st.sampled_from(["AND", "OR"])), tuple(sub("boolean") for _ in range(count))
        )
    return Call("NOT", (sub("boolean"),))


_RESULT_COLUMN_TYPES: dict[ValueType, list[str]] = {
    "number": ["number", "text", "custom"],
    "text": ["text", "select", "multi_select", "custom"],
    "boolean": ["boolean", "text"],
    "date": ["date", "datetime", "text"],
    "datetime": ["datetime", "user"],
}


@st.composite
def panel_columns(draw: st.DrawFn) -> list[Column]:
    columns: list[Column] = []
    types: dict[str, str] = {}
    for index in range(draw(st.integers(1, 4))):
        column = BaseColumn(
            id=index + 1,
            name=f"b{index}",
            type=draw(st.sampled_from(COLUMN_TYPES)),
            source_field=draw(st.sampled_from(PATHS)),
            data_source_id=draw(st.sampled_from([None, *SOURCE_IDS])),
        )
        columns.append(column)
        types[column.name] = column.type
    for index in range(draw(st.integers(0, 4))):
        scope: dict[ValueType, list[str]] = {}
        for name, column_type in types.items():
            scope.setdefault(value_type_of(column_type), []).append(name)
        result: ValueType = draw(st.sampled_from(list(_RESULT_COLUMN_TYPES)))
        formula = _formula(draw, result, _Scope(scope), depth=draw(st.integers(0, 3)))
        column_type = draw(st.sampled_from(_RESULT_COLUMN_TYPES[result]))
        try:
            check_result(check(formula, types), column_type)
        except FormulaError:
            continue
        calculated = CalculatedColumn(100 + index, f"f{index}", column_type, formula)
        columns.append(calculated)
        types[calculated.name] = column_type
    return columns


_OPERATORS: dict[ValueType, list[str]] = {
    "number": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "notIn", "between"],
    "boolean": ["eq", "ne", "in", "notIn"],
    "date": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "notIn", "between"],
    "datetime": ["eq", "ne", "gt", "gte", "lt", "lte", "between"],
    "text": [
        *("eq", "ne", "gt", "gte", "lt", "lte", "in", "notIn", "between"),
        *("contains", "notContains", "startsWith", "endsWith"),
    ],
}
_FILTER_VALUES: dict[ValueType, st.SearchStrategy[Any]] = {
    # Floats with no exact binary form too: a filter value means the decimal the client wrote.
    "number": st.one_of(st.integers(-20, 20), st.sampled_from([0.5, -2.25, 1.5, 0.1, 1e-7, 2.3])),
    "boolean": st.booleans(),
    "date": st.sampled_from(["2026-11-30", "2024-02-29", "2000-01-01", "2026-12-01"]),
    "datetime": st.sampled_from(["2026-11-30T12:34:56.789", "2026-11-30T10:00:00+02:00"]),
    "text": st.one_of(TEXT, st.sampled_from(["a", "true", "1", "2026-11-30"])),
}


def _condition(draw: st.DrawFn, kind: ValueType, **target: Any) -> Condition:
    operator = draw(st.sampled_from([*_OPERATORS[kind], "isNull", "isNotNull"]))
    # Now and then a value of another type: a filter saved before its column changed type.
    stale = st.sampled_from(list(_FILTER_VALUES)).flatmap(_FILTER_VALUES.__getitem__)
    values = st.one_of(_FILTER_VALUES[kind], _FILTER_VALUES[kind], stale)
    value: Any = None
    if operator in ("in", "notIn"):
        value = draw(st.lists(values, max_size=3))
    elif operator == "between":
        value = draw(st.lists(values, min_size=2, max_size=2))
    elif operator not in ("isNull", "isNotNull"):
        value = draw(values)
    join = draw(st.sampled_from(["and", "or"]))
    return Condition(operator, value, logical_operator=join, **target)  # type: ignore[arg-type]


@st.composite
def conditions(draw: st.DrawFn, columns: list[Column], paths: bool) -> list[Condition]:
    found: list[Condition] = []
    for _ in range(draw(st.integers(0, 3))):
        if paths and draw(st.booleans()):
            kind: ValueType = draw(st.sampled_from(["number", "text", "boolean"]))
            found.append(_condition(draw, kind, path=draw(st.sampled_from(PATHS))))
            continue
        column = draw(st.sampled_from(columns))
        kind = value_type_of(column.type)
        if kind == "any":
            kind = "text"
        found.append(_condition(draw, kind, column_id=column.id))
    return found


@st.composite
def sorts(draw: st.DrawFn, columns: list[Column]) -> list[Sort]:
    chosen = draw(st.lists(st.sampled_from(columns), unique_by=lambda c: c.id, max_size=3))
    return [Sort(column.id, draw(st.booleans())) for column in chosen]
