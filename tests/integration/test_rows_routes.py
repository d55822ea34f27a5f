"""The rows routes: rows merged by key across sources, the cohort, a view's shape, ad-hoc sorts
and filters, paging by offset and by cursor, values on the wire, and hostile data."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Caller
from tests.integration.rows_world import Client, RowsWorld, rows_world

PATIENTS = [
    {"mrn": "p1", "name": "Ann", "age": 71, "born": "1955-03-02", "seen": "2026-11-30T08:15:00Z"},
    {"mrn": "p2", "name": "Bob", "age": "44", "born": "1982-13-01"},
    {"mrn": "p3", "name": "cy", "age": None, "seen": "2026-11-30T10:00:00.123456+01:00"},
    {"mrn": "p4", "name": "Dee", "age": 30, "ward": "A"},
]
RISKS = [
    {"mrn": "p1", "risk": 0.9, "active": True},
    {"mrn": "p5", "risk": 0.2, "active": "FALSE"},
]


@pytest.fixture
async def world(client: Client, builder: Caller) -> RowsWorld:
    world = await rows_world(client, builder)
    demographics, risks = world.sources
    await world.base("Name", "text", "name", demographics)
    await world.base("Age", "number", "age", demographics)
    await world.base("Born", "date", "born", demographics)
    await world.base("Seen", "datetime", "seen", demographics)
    await world.base("Risk", "number", "risk", risks)
    await world.base("Active", "boolean", "active")
    await world.calculated("Next age", "number", "Age + 1")
    await world.push(demographics, PATIENTS)
    await world.push(risks, RISKS)
    return world


async def test_records_sharing_a_key_are_one_row_and_values_have_their_types(
    world: RowsWorld,
) -> None:
    page = await world.rows(f"/api/panels/{world.panel}/rows")
    assert page["total"] == 5
    assert page["nextCursor"] is None
    assert [c["name"] for c in page["columns"]] == [
        "Name",
        "Age",
        "Born",
        "Seen",
        "Risk",
        "Active",
        "Next age",
    ]
    assert world.by_name(page) == [
        {
            "id": "p1",
            "Name": "Ann",
            "Age": 71,
            "Born": "1955-03-02",
            "Seen": "2026-11-30T08:15:00.000Z",
            "Risk": 0.9,
            "Active": True,
            "Next age": 72,
        },
        {
            "id": "p2",
            "Name": "Bob",
            "Age": 44,
            "Born": None,
            "Seen": None,
            "Risk": None,
            "Active": None,
            "Next age": 45,
        },
        {
            "id": "p3",
            "Name": "cy",
            "Age": None,
            "Born": None,
            "Seen": "2026-11-30T09:00:00.123456Z",
            "Risk": None,
            "Active": None,
            "Next age": None,
        },
        {
            "id": "p4",
            "Name": "Dee",
            "Age": 30,
            "Born": None,
            "Seen": None,
            "Risk": None,
            "Active": None,
            "Next age": 31,
        },
        {
            "id": "p5",
            "Name": None,
            "Age": None,
            "Born": None,
            "Seen": None,
            "Risk": 0.2,
            "Active": False,
            "Next age": None,
        },
    ]


async def test_the_cohort_rule_admits_rows_by_column_or_record_path(world: RowsWorld) -> None:
    rule = {
        "logic": "OR",
        "conditions": [
            {"field": "Age", "operator": "gte", "value": 44},
            {"field": "ward", "operator": "eq", "value": "A"},
        ],
    }
    await world.call("PUT", f"/api/panels/{world.panel}", {"cohortRule": rule})
    page = await world.rows(f"/api/panels/{world.panel}/rows")
    assert [row["id"] for row in page["rows"]] == ["p1", "p2", "p4"]
    assert page["total"] == 3


async def test_a_view_shows_its_columns_filtered_and_sorted(world: RowsWorld) -> None:
    view = await world.view(
        ["Next age", "Name"],
        sorts=[{"columnName": "Age", "direction": "desc"}],
        filters=[
            {"columnName": "Name", "operator": "contains", "value": "N"},
            {"columnName": "Age", "operator": "lt", "value": 40, "logicalOperator": "or"},
        ],
    )
    page = await world.rows(f"/api/views/{view}/rows")
    assert [c["name"] for c in page["columns"]] == ["Next age", "Name"]
    assert page["rows"] == [
        {
            "id": "p1",
            "values": {str(world.columns["Next age"]): 72, str(world.columns["Name"]): "Ann"},
        },
        {
            "id": "p4",
            "values": {str(world.columns["Next age"]): 31, str(world.columns["Name"]): "Dee"},
        },
    ]
    assert page["total"] == 2


async def test_ad_hoc_sorts_put_nulls_last_both_ways_and_break_ties_by_id(
    world: RowsWorld,
) -> None:
    url = f"/api/panels/{world.panel}/rows"
    ascending = await world.rows(url, sort="Age:asc")
    descending = await world.rows(url, sort=f"{world.columns['Age']}:desc")
    assert [r["id"] for r in ascending["rows"]] == ["p4", "p2", "p1", "p3", "p5"]
    assert [r["id"] for r in descending["rows"]] == ["p1", "p2", "p4", "p3", "p5"]
    both = await world.rows(url, sort=["Active:desc", "name:desc"])
    comma = await world.rows(url, sort="Active:desc,name:desc")
    # Text orders by code point: "cy" after "Dee".
    assert [r["id"] for r in both["rows"]] == ["p1", "p5", "p3", "p4", "p2"]
    assert comma["rows"] == both["rows"]


async def test_ad_hoc_filters_use_the_view_filter_vocabulary(world: RowsWorld) -> None:
    url = f"/api/panels/{world.panel}/rows"
    filters = json.dumps(
        [
            {"columnName": "Age", "operator": "gt", "value": 40},
            {"columnName": "risk", "operator": "isNotNull", "logicalOperator": "and"},
        ]
    )
    page = await world.rows(url, filter=filters)
    assert [r["id"] for r in page["rows"]] == ["p1"]
    assert page["total"] == 1
    escaped = '[{"columnName":"Name","operator":"startsWith","value":"%"}]'
    assert (await world.rows(url, filter=escaped))["total"] == 0
    between = '[{"columnName":"Born","operator":"between","value":["1950-01-01","1960-01-01"]}]'
    assert [r["id"] for r in (await world.rows(url, filter=between))["rows"]] == ["p1"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "Nope:asc"}, "query.sort[0]"),
        ({"sort": "Age:asc,Nope"}, "query.sort[1]"),
        ({"sort": "Age,age:desc"}, "query.sort[1]"),
        ({"sort": "x" * 5000}, "query.sort"),
        ({"filter": "not json"}, "query.filter"),
        ({"filter": "{}"}, "query.filter"),
        ({"filter": "[1]"}, "query.filter[0]"),
        (
            {"filter": '[{"columnName":"Nope","operator":"eq","value":1}]'},
            "query.filter[0].columnName",
        ),
        (
            {"filter": '[{"columnName":"Age","operator":"like","value":1}]'},
            "query.filter[0].operator",
        ),
        (
            {"filter": '[{"columnName":"Age","operator":"eq","value":"old"}]'},
            "query.filter[0].value",
        ),
        ({"filter": '[{"columnName":"Age","operator":"in","value":5}]'}, "query.filter[0].value"),
        ({"filter": '[{"columnName":"Age","operator":"eq","value":1e999}]'}, "query.filter"),
        (
            {"filter": '[{"columnName":"Born","operator":"gt","value":"2020-02-30"}]'},
            "query.filter[0].value",
        ),
        (
            {"filter": '[{"columnName":"Age","operator":"contains","value":"4"}]'},
            "query.filter[0].value",
        ),
        ({"filter": "[" * 40 + "]" * 40}, "query.filter"),
        (
            {"filter": "[" + ",".join(['{"columnName":"Age","operator":"isNull"}'] * 101) + "]"},
            "query.filter",
        ),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"offset": -1}, "query.offset"),
    ],
)
async def test_bad_paging_sorts_and_filters_are_400s_naming_them(
    world: RowsWorld, params: dict[str, Any], field: str
) -> None:
    response = await world.client.get(
        f"/api/panels/{world.panel}/rows", params=params, headers=world.owner.headers
    )
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field], response.text


async def test_a_cursor_walk_equals_the_offset_walk(world: RowsWorld) -> None:
    for sort in ("", "Age:desc", "Active:asc,Seen:desc", "Born:asc,Name:desc"):
        params: dict[str, Any] = {"sort": sort} if sort else {}
        url = f"/api/panels/{world.panel}/rows"
        everything = await world.rows(url, limit=1000, **params)
        by_offset = [
            row
            for offset in range(0, 5, 2)
            for row in (await world.rows(url, limit=2, offset=offset, **params))["rows"]
        ]
        by_cursor: list[Any] = []
        cursor = None
        for _ in range(5):
            page = await world.rows(
                url, limit=2, **params, **({"cursor": cursor} if cursor else {})
            )
            by_cursor += page["rows"]
            assert page["total"] == 5
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert by_cursor == by_offset == everything["rows"], sort


async def test_a_cursor_of_other_sorts_is_a_400(world: RowsWorld) -> None:
    url = f"/api/panels/{world.panel}/rows"
    cursor = (await world.rows(url, limit=1, sort="Age:asc"))["nextCursor"]
    response = await world.client.get(
        url, params={"sort": "Age:desc", "cursor": cursor}, headers=world.owner.headers
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query.cursor"


async def test_a_page_past_the_end_still_has_the_total(world: RowsWorld) -> None:
    page = await world.rows(f"/api/panels/{world.panel}/rows", offset=10)
    assert (page["rows"], page["total"], page["nextCursor"]) == ([], 5, None)


async def test_rows_of_a_deleted_source_never_appear(world: RowsWorld) -> None:
    await world.call("DELETE", f"/api/datasources/{world.sources[1]}", ok=204)
    page = await world.rows(f"/api/panels/{world.panel}/rows")
    assert [row["id"] for row in page["rows"]] == ["p1", "p2", "p3", "p4"]
    assert page["total"] == 4  # the count reads only live sources too
    assert {row["values"][str(world.columns["Risk"])] for row in page["rows"]} == {None}


async def test_hostile_numbers_are_null_never_an_error(client: Client, builder: Caller) -> None:
    world = await rows_world(client, builder, sources=1)
    await world.base("x", "number", "x")
    await world.calculated("p6", "number", "x*x*x*x*x*x")
    await world.calculated("p36", "number", "p6*p6*p6*p6*p6*p6")
    await world.calculated("p216", "number", "p36*p36*p36*p36*p36*p36")
    await world.calculated("p1296", "number", "p216*p216*p216*p216*p216*p216")
    await world.calculated("ratio", "number", "p1296 / (x - x) + ROUND(p1296, 2)")
    huge = "9" * 100
    await world.push(
        world.sources[0],
        [
            {"mrn": "a", "x": 1e300},
            {"mrn": "b", "x": huge},
            {"mrn": "c", "x": "1e999"},
            {"mrn": "d", "x": "-1e999999"},
            {"mrn": "e", "x": 2},
        ],
    )
    url = f"/api/panels/{world.panel}/rows"
    response = await client.get(url, params={"sort": "p1296:desc"}, headers=builder.headers)
    assert response.status_code == 200, response.text
    # Exact numbers of thousands of digits: valid JSON, past what `json` reads as int.
    page = json.loads(response.content, parse_int=Decimal, parse_float=Decimal)
    rows = {row["id"]: world.by_name({**page, "rows": [row]})[0] for row in page["rows"]}
    assert rows["a"]["p6"] == Decimal("1e1800")
    assert rows["a"]["p1296"] is None  # 1e388800 is past numeric's range: null
    assert rows["b"]["p216"] == int(huge) ** 216
    assert rows["b"]["p1296"] is None
    assert rows["e"]["p1296"] == 2**1296
    assert rows["d"]["x"] is None  # a string with a 6-digit exponent is no number
    assert {row["ratio"] for row in rows.values()} == {None}
    gt = '[{"columnName":"p1296","operator":"gt","value":1}]'
    filtered = await client.get(url, params={"filter": gt}, headers=builder.headers)
    assert filtered.status_code == 200, filtered.text
    assert json.loads(filtered.content, parse_int=Decimal)["total"] == 1


async def test_a_panel_without_sources_has_no_rows(client: Client, builder: Caller) -> None:
    world = await rows_world(client, builder, sources=0)
    await world.base("Born", "date", "born")
    await world.calculated("Later", "date", "Born")
    rule = {"logic": "AND", "conditions": [{"field": "score", "operator": "eq", "value": 0}]}
    await world.call("PUT", f"/api/panels/{world.panel}", {"cohortRule": rule})
    page = await world.rows(f"/api/panels/{world.panel}/rows", sort="Later:desc")
    assert (page["rows"], page["total"], page["nextCursor"]) == ([], 0, None)
    view = await world.view(["Born"], filters=[{"columnName": "Born", "operator": "isNull"}])
    assert (await world.rows(f"/api/views/{view}/rows"))["total"] == 0
    csv = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    assert csv.content == b'"Born"\r\n'
