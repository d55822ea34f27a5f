"""Which indexes a panel's views need (`wanted_indexes`), without a database."""

from __future__ import annotations

from panels.rows.compiler import BaseColumn
from panels.rows.indexes import ViewShape, wanted_indexes

WARD = BaseColumn(1, "Ward", "select", "ward", 7)
RISK = BaseColumn(2, "Risk", "number", "risk", 7)
NAME = BaseColumn(3, "Name", "text", "name", 7)
TAGS = BaseColumn(4, "Tags", "multi_select", "tags", 7)
COLUMNS = [WARD, RISK, NAME, TAGS]


def _definitions(*views: ViewShape, trigram: bool = False) -> list[str]:
    statements = wanted_indexes(5, [7], COLUMNS, views, trigram=trigram).values()
    for statement in statements:
        assert statement.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_panel_row_5_")
        assert statement.endswith(" WHERE panel_id = 5")
    return sorted(
        s.split(" ON panel_row ", 1)[1].removesuffix(" WHERE panel_id = 5") for s in statements
    )


def test_a_filter_an_index_can_serve_gets_a_btree_on_the_columns_value() -> None:
    for operator in ("eq", "gt", "gte", "lt", "lte", "between", "in", "isNull"):
        [definition] = _definitions(ViewShape([], [(WARD.id, operator, "and")]))
        assert "'ward'" in definition
        assert 'COLLATE "C"' in definition
        assert not definition.startswith("USING")
    # Filters that hold for most rows, or on columns no index can hold, get none.
    for operator in ("ne", "notIn", "notContains", "isNotNull"):
        assert _definitions(ViewShape([], [(WARD.id, operator, "and")])) == []
    assert _definitions(ViewShape([], [(TAGS.id, "eq", "and")])) == []


def test_two_views_filtering_one_column_share_its_index_and_a_sort_index_serves_its_filter() -> (
    None
):
    assert (
        len(
            _definitions(
                ViewShape([], [(WARD.id, "eq", "and")]), ViewShape([], [(WARD.id, "in", "and")])
            )
        )
        == 1
    )
    [sorted_by_risk] = _definitions(ViewShape([(RISK.id, True)], [(RISK.id, "gt", "and")]))
    assert sorted_by_risk.endswith(" DESC NULLS LAST, key)")


def test_contains_gets_a_trigram_index_only_where_the_database_has_pg_trgm() -> None:
    view = ViewShape([], [(NAME.id, "contains", "and"), (RISK.id, "contains", "and")])
    assert _definitions(view) == []
    [definition] = _definitions(view, trigram=True)
    # Not under COLLATE "C": ILIKE compares under the default collation.
    assert definition.startswith("USING gin (")
    assert definition.endswith(" gin_trgm_ops)")
    assert "'name'" in definition
    assert "COLLATE" not in definition


def test_a_sorted_views_required_equalities_lead_an_index_of_its_rows_in_its_order() -> None:
    def filtered(*filters: tuple[int, str, str]) -> list[str]:
        return _definitions(ViewShape([(RISK.id, True)], list(filters)))

    # Ward = W3 is required: an index of the view's rows in its order (no b-tree of its own),
    # and the sort's.
    by_ward, by_risk = sorted(filtered((WARD.id, "eq", "and")), key=len, reverse=True)
    assert by_ward.index("'ward'") < by_ward.index("'risk'")
    assert by_ward.endswith(" DESC NULLS LAST, key)")
    assert "'ward'" not in by_risk
    # Not required (`a or b`): no such index, the filters' own b-trees.
    either = filtered((WARD.id, "eq", "and"), (NAME.id, "eq", "or"))
    assert not any("'ward'" in d and "'risk'" in d for d in either)
    assert len(either) == 3
    # `a and b or c and d` is `((a and b) or c) and d`: only d is required.
    required = ViewShape(
        [],
        [
            (NAME.id, "eq", "and"),
            (WARD.id, "eq", "and"),
            (RISK.id, "eq", "or"),
            (TAGS.id, "eq", "and"),
        ],
    )
    assert required.required_equalities() == [TAGS.id]
