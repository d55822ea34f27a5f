"""Statements over a panel's rows are built once per shape (`rows.shape.built`)."""

from __future__ import annotations

from panels.column.formula import parse
from panels.panel.entities import Panel
from panels.rows.compiler import BaseColumn, CalculatedColumn, Condition, Sort
from panels.rows.shape import BUILT_STATEMENTS, RowsShape, built

WARD = BaseColumn(1, "Ward", "text", "ward", 7)
RISK = BaseColumn(2, "Risk", "number", "risk", 7)
DOUBLED = CalculatedColumn(3, "Doubled", "number", parse("Risk * 2"))


def _shape(cohort_rule: dict[str, object] | None = None, risk_path: str = "risk") -> RowsShape:
    panel = Panel(id=5, tenant_id="t-1", user_id="u", name="p", cohort_rule=cohort_rule)
    risk = BaseColumn(2, "Risk", "number", risk_path, 7)
    return RowsShape(panel, [], [7], [WARD, risk, DOUBLED])


def test_every_page_of_the_same_query_reuses_one_statement() -> None:
    """The page is a parameter (`run_parameters`), not part of the statement."""
    filters = [Condition("eq", "W3", column_id=1)]
    first = _shape().compile([1, 3], [Sort(2, True)], filters, limit=51)
    again = _shape().compile([1, 3], [Sort(2, True)], list(filters), limit=51)
    other_page = _shape().compile([1, 3], [Sort(2, True)], filters, limit=21, offset=100)
    assert again is first
    assert other_page is first


def test_anything_a_statement_is_made_of_makes_another() -> None:
    filters = [Condition("eq", "W3", column_id=1)]
    first = _shape().compile([1, 3], [Sort(2, True)], filters, limit=51)
    others = [
        _shape().compile([1], [Sort(2, True)], filters, limit=51),
        _shape().compile([1, 3], [Sort(2, False)], filters, limit=51),
        _shape().compile([1, 3], [Sort(2, True)], [Condition("eq", "W4", column_id=1)], limit=51),
        _shape().compile([1, 3], [Sort(2, True)], filters, limit=None),
        _shape(risk_path="score").compile([1, 3], [Sort(2, True)], filters, limit=51),
        _shape({"logic": "AND", "conditions": []}).compile(
            [1, 3], [Sort(2, True)], filters, limit=51
        ),
    ]
    assert all(other is not first for other in others)
    assert len({id(other) for other in others}) == len(others)


def test_the_least_recently_used_statements_are_dropped() -> None:
    kept = built(("kept",), object)
    first = built(("first",), object)
    for index in range(BUILT_STATEMENTS - 1):
        built(("filler", index), object)
        assert built(("kept",), object) is kept  # used again: kept
    assert built(("first",), object) is not first
