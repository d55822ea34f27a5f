"""API.md's Columns section: both kinds, one id space, ordering, filters, formulas, renames."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from tests.conftest import Caller, CallerFactory

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def panel(create_panel: Any, builder: Caller) -> dict[str, Any]:
    return dict(await create_panel(builder, name="Columns"))


async def base(client: Client, caller: Caller, panel_id: int, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/api/panels/{panel_id}/columns/base", json=body, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def calculated(client: Client, caller: Caller, panel_id: int, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/api/panels/{panel_id}/columns/calculated", json=body, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def listing(client: Client, caller: Caller, panel_id: int, **params: Any) -> dict[str, Any]:
    response = await client.get(
        f"/api/panels/{panel_id}/columns", params=params, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_base_and_calculated_share_one_id_space(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    first = await base(
        client, builder, panel["id"], name="firstName", type="text", sourceField="name.given.0"
    )
    number = await base(client, builder, panel["id"], name="Age", type="number")
    full = await calculated(
        client,
        builder,
        panel["id"],
        name="Greeting",
        type="text",
        formula='CONCAT("Hi ", firstName)',
        dependencies=["ignored"],
    )
    assert len({first["id"], number["id"], full["id"]}) == 3
    assert first["columnType"] == "base"
    assert first["sourceField"] == "name.given.0"
    assert first["dataSourceId"] is None
    assert number["sourceField"] == "Age"  # defaults to the name
    assert full["columnType"] == "calculated"
    assert full["dependencies"] == ["firstName"]
    assert "sourceField" not in full
    columns = await listing(client, builder, panel["id"])
    assert [c["id"] for c in columns["baseColumns"]] == [first["id"], number["id"]]
    assert [c["id"] for c in columns["calculatedColumns"]] == [full["id"]]


async def test_ordering_by_display_order_then_id(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    a = await base(client, builder, panel["id"], name="a", type="text")
    b = await base(
        client, builder, panel["id"], name="b", type="text", properties={"display": {"order": 2}}
    )
    c = await base(
        client, builder, panel["id"], name="c", type="text", properties={"display": {"order": 0}}
    )
    d = await base(
        client, builder, panel["id"], name="d", type="text", properties={"display": {"order": 2}}
    )
    ordered = [x["id"] for x in (await listing(client, builder, panel["id"]))["baseColumns"]]
    assert ordered == [c["id"], b["id"], d["id"], a["id"]]


async def test_ids_and_tags_filters_in_both_forms(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    a = await base(client, builder, panel["id"], name="a", type="text", tags=["core", "id"])
    b = await base(client, builder, panel["id"], name="b", type="text", tags=["extra"])
    c = await calculated(
        client, builder, panel["id"], name="c", type="text", formula="a & b", tags=["core"]
    )
    url = f"/api/panels/{panel['id']}/columns"
    by_ids = (await client.get(f"{url}?ids={a['id']},{c['id']}", headers=builder.headers)).json()
    repeated = (
        await client.get(f"{url}?ids={a['id']}&ids={c['id']}", headers=builder.headers)
    ).json()
    assert by_ids == repeated
    assert [x["id"] for x in by_ids["baseColumns"]] == [a["id"]]
    assert [x["id"] for x in by_ids["calculatedColumns"]] == [c["id"]]
    tagged = (await client.get(f"{url}?tags=extra,id", headers=builder.headers)).json()
    assert sorted(x["id"] for x in tagged["baseColumns"]) == sorted([a["id"], b["id"]])
    assert tagged["calculatedColumns"] == []
    for bad in ("ids=abc", "ids=0", "ids=1,-2"):
        response = await client.get(f"{url}?{bad}", headers=builder.headers)
        assert response.status_code == 400, bad
        assert response.json()["details"][0]["field"] == "query.ids"


async def test_names_are_unique_case_insensitively(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    first = await base(client, builder, panel["id"], name="Status", type="text")
    clash = await client.post(
        f"/api/panels/{panel['id']}/columns/calculated",
        json={"name": "STATUS", "type": "text", "formula": "1"},
        headers=builder.headers,
    )
    assert clash.status_code == 409
    other = await base(client, builder, panel["id"], name="Other", type="text")
    rename = await client.put(
        f"/api/panels/{panel['id']}/columns/{other['id']}",
        json={"name": "status"},
        headers=builder.headers,
    )
    assert rename.status_code == 409
    same = await client.put(
        f"/api/panels/{panel['id']}/columns/{first['id']}",
        json={"name": "STATUS"},
        headers=builder.headers,
    )
    assert same.status_code == 200
    assert same.json()["name"] == "STATUS"


async def test_data_source_must_belong_to_the_panel(
    client: Client, builder: Caller, panel: dict[str, Any], create_panel: Any
) -> None:
    other = await create_panel(builder, name="Other")
    foreign = await client.post(
        f"/api/panels/{other['id']}/datasources",
        json={"type": "custom", "config": {}},
        headers=builder.headers,
    )
    own = await client.post(
        f"/api/panels/{panel['id']}/datasources",
        json={"type": "custom", "config": {}},
        headers=builder.headers,
    )
    url = f"/api/panels/{panel['id']}/columns/base"
    for source_id in (foreign.json()["id"], 987654321):
        response = await client.post(
            url,
            json={"name": "x", "type": "text", "dataSourceId": source_id},
            headers=builder.headers,
        )
        assert response.status_code == 400
        assert response.json()["details"][0]["field"] == "body.dataSourceId"
    column = await base(
        client, builder, panel["id"], name="x", type="text", dataSourceId=own.json()["id"]
    )
    moved = await client.put(
        f"/api/panels/{panel['id']}/columns/{column['id']}",
        json={"dataSourceId": foreign.json()["id"]},
        headers=builder.headers,
    )
    assert moved.status_code == 400


async def test_update_merges_properties_and_replaces_the_rest(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    column = await base(
        client, builder, panel["id"], name="Score", type="number",
        properties={
            "required": True,
            "validation": {"min": 0, "max": 10},
            "display": {"width": 120, "order": 1},
        },
        metadata={"a": 1}, tags=["x"],
    )  # fmt: skip
    url = f"/api/panels/{panel['id']}/columns/{column['id']}"
    response = await client.put(
        url,
        json={
            "properties": {
                "unique": True,
                "validation": {"max": 5},
                "display": {"order": 3, "width": None},
            },
            "metadata": {"b": 2},
            "tags": [],
        },
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["properties"] == {
        "required": True,
        "unique": True,
        "validation": {"max": 5},
        "display": {"order": 3},
    }
    assert updated["metadata"] == {"b": 2}
    assert updated["tags"] == []
    cleared = (
        await client.put(url, json={"properties": {"required": None}}, headers=builder.headers)
    ).json()
    assert "required" not in cleared["properties"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("base", {"type": "text"}, "body.name"),
        ("base", {"name": "", "type": "text"}, "body.name"),
        ("base", {"name": "x", "type": "json"}, "body.type"),
        ("base", {"name": "x", "type": "text", "sourceField": "s" * 1025}, "body.sourceField"),
        ("base", {"name": "x", "type": "text", "tags": ["t"] * 51}, "body.tags"),
        (
            "base",
            {"name": "x", "type": "text", "properties": {"display": {"order": -1}}},
            "body.properties.display.order",
        ),
        (
            "base",
            {"name": "x", "type": "text", "properties": {"validation": {"min": 5, "max": 1}}},
            "body.properties.validation.min",
        ),
        (
            "base",
            {"name": "x", "type": "text", "properties": {"validation": {"pattern": "("}}},
            "body.properties.validation.pattern",
        ),
        ("calculated", {"name": "x", "type": "number"}, "body.formula"),
        ("calculated", {"name": "x", "type": "number", "formula": ""}, "body.formula"),
    ],
)
async def test_create_validation(
    client: Client,
    builder: Caller,
    panel: dict[str, Any],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(
        f"/api/panels/{panel['id']}/columns/{path}", json=body, headers=builder.headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("CONCAT(first, lastNme)", 'unknown column "lastNme" at 14'),
        ("FOO(first)", "at 0"),
        ("IF(TRUE, 1)", "at 0"),
        ("first * 2", "at"),
        ("1 +", "at 3"),
        ("(first", "at"),
        ('"open', "at 0"),
    ],
)
async def test_formula_errors_give_a_position(
    client: Client, builder: Caller, panel: dict[str, Any], formula: str, message: str
) -> None:
    await base(client, builder, panel["id"], name="first", type="text")
    response = await client.post(
        f"/api/panels/{panel['id']}/columns/calculated",
        json={"name": "bad", "type": "text", "formula": formula},
        headers=builder.headers,
    )
    assert response.status_code == 400, response.text
    detail = response.json()["details"][0]
    assert detail["field"] == "body.formula"
    assert message in detail["message"]


async def test_formula_result_must_suit_the_column_type(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    await base(client, builder, panel["id"], name="first", type="text")
    response = await client.post(
        f"/api/panels/{panel['id']}/columns/calculated",
        json={"name": "n", "type": "number", "formula": "UPPER(first)"},
        headers=builder.headers,
    )
    assert response.status_code == 400


async def test_cycles_are_refused(client: Client, builder: Caller, panel: dict[str, Any]) -> None:
    await base(client, builder, panel["id"], name="x", type="number")
    a = await calculated(client, builder, panel["id"], name="a", type="number", formula="x + 1")
    await calculated(client, builder, panel["id"], name="b", type="number", formula="a * 2")
    url = f"/api/panels/{panel['id']}/columns/{a['id']}"
    cycle = await client.put(url, json={"formula": "b + 1"}, headers=builder.headers)
    assert cycle.status_code == 400
    assert "cycle" in cycle.json()["message"]
    itself = await client.put(url, json={"formula": "a + 1"}, headers=builder.headers)
    assert itself.status_code == 400


async def test_renames_rewrite_formulas(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    first = await base(client, builder, panel["id"], name="first", type="text")
    greeting = await calculated(
        client, builder, panel["id"], name="greeting", type="text", formula='"Hi " & first'
    )
    url = f"/api/panels/{panel['id']}/columns/{first['id']}"
    assert (
        await client.put(url, json={"name": "Given Name"}, headers=builder.headers)
    ).status_code == 200
    columns = await listing(client, builder, panel["id"])
    rewritten = columns["calculatedColumns"][0]
    assert rewritten["id"] == greeting["id"]
    assert rewritten["formula"] == '"Hi " & {Given Name}'
    assert rewritten["dependencies"] == ["Given Name"]
    history = (
        await client.get(
            f"/api/panels/{panel['id']}/changes",
            params={"changeType": "column_modified"},
            headers=builder.headers,
        )
    ).json()
    assert {c["affectedColumn"] for c in history["changes"]} == {"Given Name", "greeting"}


async def test_a_type_change_that_breaks_a_formula_is_409(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    age = await base(client, builder, panel["id"], name="age", type="number")
    await calculated(client, builder, panel["id"], name="older", type="number", formula="age + 1")
    response = await client.put(
        f"/api/panels/{panel['id']}/columns/{age['id']}",
        json={"type": "text"},
        headers=builder.headers,
    )
    assert response.status_code == 409
    assert "older" in response.json()["message"]


async def test_kind_specific_fields(client: Client, builder: Caller, panel: dict[str, Any]) -> None:
    plain = await base(client, builder, panel["id"], name="p", type="number")
    calc = await calculated(client, builder, panel["id"], name="c", type="number", formula="p + 1")
    wrong_for_base = await client.put(
        f"/api/panels/{panel['id']}/columns/{plain['id']}",
        json={"formula": "1"},
        headers=builder.headers,
    )
    assert wrong_for_base.status_code == 400
    wrong_for_calc = await client.put(
        f"/api/panels/{panel['id']}/columns/{calc['id']}",
        json={"sourceField": "x"},
        headers=builder.headers,
    )
    assert wrong_for_calc.status_code == 400
    new_formula = await client.put(
        f"/api/panels/{panel['id']}/columns/{calc['id']}",
        json={"formula": "p * 3"},
        headers=builder.headers,
    )
    assert new_formula.json()["formula"] == "p * 3"


async def test_delete_refused_while_a_formula_reads_the_column(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    p = await base(client, builder, panel["id"], name="p", type="number")
    calc = await calculated(
        client, builder, panel["id"], name="Double P", type="number", formula="p * 2"
    )
    url = f"/api/panels/{panel['id']}/columns"
    blocked = await client.delete(f"{url}/{p['id']}", headers=builder.headers)
    assert blocked.status_code == 409
    assert "Double P" in blocked.json()["message"]
    assert (await client.delete(f"{url}/{calc['id']}", headers=builder.headers)).status_code == 204
    assert (await client.delete(f"{url}/{p['id']}", headers=builder.headers)).status_code == 204
    assert await listing(client, builder, panel["id"]) == {
        "baseColumns": [],
        "calculatedColumns": [],
    }
    assert (await client.delete(f"{url}/{p['id']}", headers=builder.headers)).status_code == 404


async def test_change_records(client: Client, builder: Caller, panel: dict[str, Any]) -> None:
    column = await base(client, builder, panel["id"], name="Status", type="text")
    url = f"/api/panels/{panel['id']}/columns/{column['id']}"
    await client.put(url, json={"type": "select"}, headers=builder.headers)
    await client.delete(url, headers=builder.headers)
    records = (
        await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    ).json()["changes"]
    removed, modified, added = records[:3]
    assert [removed["changeType"], modified["changeType"], added["changeType"]] == [
        "column_removed",
        "column_modified",
        "column_added",
    ]
    assert {r["affectedColumn"] for r in (removed, modified, added)} == {"Status"}
    assert modified["oldValues"] == {"type": "text"}
    assert modified["newValues"] == {"type": "select"}
    assert modified["description"] == 'Column "Status" type changed from text to select'
    assert added["newValues"]["name"] == "Status"
    assert removed["oldValues"]["type"] == "select"


async def test_permissions_and_missing(
    client: Client, builder: Caller, make_caller: CallerFactory, panel: dict[str, Any], share: Any
) -> None:
    """Without a grant the panel does not exist; a viewer may read, not change."""
    stranger = make_caller("sam", "builder")
    url = f"/api/panels/{panel['id']}/columns"
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    await share(builder, "panel", panel["id"])
    assert (
        await client.post(
            f"{url}/base", json={"name": "x", "type": "text"}, headers=stranger.headers
        )
    ).status_code == 403
    assert (await client.get(url, headers=stranger.headers)).status_code == 200
    column = await base(client, builder, panel["id"], name="x", type="text")
    assert (
        await client.put(f"{url}/{column['id']}", json={"name": "y"}, headers=stranger.headers)
    ).status_code == 403
    assert (
        await client.delete(f"{url}/{column['id']}", headers=stranger.headers)
    ).status_code == 403
    assert (
        await client.get("/api/panels/987654321/columns", headers=builder.headers)
    ).status_code == 404
    assert (
        await client.put(f"{url}/987654321", json={}, headers=builder.headers)
    ).status_code == 404


async def test_list_of_200_columns_takes_a_constant_number_of_queries(
    client: Client, app: Litestar, builder: Caller, panel: dict[str, Any]
) -> None:
    for index in range(100):
        await base(client, builder, panel["id"], name=f"b{index}", type="number")
    for index in range(100):
        previous = f"c{index - 1}" if index % 10 else f"b{index}"
        await calculated(
            client, builder, panel["id"], name=f"c{index}", type="number", formula=f"{previous} + 1"
        )
    statements: list[str] = []
    engine = app.state.runtime.db.get_engine().sync_engine

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        url = f"/api/panels/{panel['id']}/columns"
        response = await client.get(url, headers=builder.headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.headers["x-cache"] == "MISS"
    body = response.json()
    assert len(body["baseColumns"]) == len(body["calculatedColumns"]) == 100
    assert body["calculatedColumns"][9]["dependencies"] == ["c8"]
    reads = [
        s for s in statements if s.lstrip().upper().startswith("SELECT") and "set_config" not in s
    ]
    assert len(reads) == 2, reads  # the panel, then all its columns
