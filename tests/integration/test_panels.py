"""Every rule of API.md's Panels section."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory
from tests.integration.databases import queries_sent

Client = AsyncTestClient[Litestar]


async def test_create_with_defaults(client: Client, builder: Caller) -> None:
    response = await client.post("/api/panels", json={}, headers=builder.headers)
    assert response.status_code == 201
    panel = response.json()
    assert response.headers["location"] == f"/api/panels/{panel['id']}"
    assert panel["name"] == "New Panel"
    assert panel["description"] is None
    assert panel["metadata"] == {}
    assert panel["cohortRule"] == {"logic": "AND", "conditions": []}
    assert panel["tenantId"] == builder.tenant
    assert panel["userId"] == builder.user
    assert panel["createdAt"].endswith("Z")
    assert len(panel["createdAt"]) == 24


async def test_create_round_trips_every_field(client: Client, builder: Caller) -> None:
    body = {
        "name": "Discharge planning",
        "description": "Patients due home this week",
        "metadata": {"team": "ward-7", "nested": {"a": [1, 2]}},
        "cohortRule": {
            "logic": "OR",
            "conditions": [
                {"field": "age", "operator": "between", "value": [18, 65]},
                {"field": "status", "operator": "in", "value": ["open", "review"]},
                {"field": "dischargedAt", "operator": "isNull"},
            ],
        },
    }
    created = (await client.post("/api/panels", json=body, headers=builder.headers)).json()
    fetched = (await client.get(f"/api/panels/{created['id']}", headers=builder.headers)).json()
    assert fetched == created
    assert fetched["cohortRule"]["conditions"][2] == {
        "field": "dischargedAt",
        "operator": "isNull",
        "value": None,
    }
    assert fetched["metadata"] == body["metadata"]


async def test_identity_comes_from_the_token(client: Client, builder: Caller) -> None:
    response = await client.post(
        "/api/panels",
        json={"name": "Mine", "userId": "someone-else", "tenantId": builder.tenant, "extra": 1},
        headers=builder.headers,
    )
    assert response.status_code == 201
    assert response.json()["userId"] == builder.user


async def test_tenant_id_of_another_tenant_is_refused(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    body = {"name": "x", "tenantId": "someone-else"}
    response = await client.post("/api/panels", json=body, headers=builder.headers)
    assert response.status_code == 403
    assert response.json()["message"] == "Access denied to tenant"
    panel = await create_panel(builder)
    response = await client.put(f"/api/panels/{panel['id']}", json=body, headers=builder.headers)
    assert response.status_code == 403
    response = await client.get(
        "/api/panels", params={"tenantId": "someone-else"}, headers=builder.headers
    )
    assert response.status_code == 403
    response = await client.get(
        "/api/panels", params={"tenantId": builder.tenant}, headers=builder.headers
    )
    assert response.status_code == 200


async def test_plain_users_cannot_create(client: Client, member: Caller) -> None:
    response = await client.post("/api/panels", json={"name": "x"}, headers=member.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 256}, "body.name"),
        ({"name": None}, "body.name"),
        ({"name": 5}, "body.name"),
        ({"name": "bad\u0000name"}, "body.name"),
        ({"description": "x" * 2001}, "body.description"),
        ({"metadata": None}, "body.metadata"),
        ({"metadata": []}, "body.metadata"),
        ({"cohortRule": None}, "body.cohortRule"),
        ({"cohortRule": {"logic": "and"}}, "body.cohortRule.logic"),
        (
            {"cohortRule": {"conditions": [{"field": "a", "operator": "like", "value": 1}]}},
            "body.cohortRule.conditions[0].operator",
        ),
        (
            {"cohortRule": {"conditions": [{"field": "a", "operator": "in", "value": 1}]}},
            "body.cohortRule.conditions[0].value",
        ),
        (
            {"cohortRule": {"conditions": [{"field": "a", "operator": "between", "value": [1]}]}},
            "body.cohortRule.conditions[0].value",
        ),
        (
            {"cohortRule": {"conditions": [{"field": "a", "operator": "isNull", "value": 1}]}},
            "body.cohortRule.conditions[0].value",
        ),
        (
            {"cohortRule": {"conditions": [{"field": "a", "operator": "contains", "value": 3}]}},
            "body.cohortRule.conditions[0].value",
        ),
        (
            {"cohortRule": {"conditions": [{"field": "", "operator": "eq", "value": 3}]}},
            "body.cohortRule.conditions[0].field",
        ),
    ],
)
async def test_create_validation(
    client: Client, builder: Caller, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/panels", json=body, headers=builder.headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["statusCode"] == 400
    assert error["error"] == "Bad Request"
    assert [d["field"] for d in error["details"]] == [field]


async def test_metadata_depth_and_text_are_limited(client: Client, builder: Caller) -> None:
    deep: Any = "leaf"
    for _ in range(20):
        deep = {"k": deep}
    for metadata in ({"deep": deep}, {"nul": "a\u0000b"}, {"bad\u0000key": 1}):
        response = await client.post(
            "/api/panels", json={"metadata": metadata}, headers=builder.headers
        )
        assert response.status_code == 400, response.text
        assert response.json()["details"][0]["field"].startswith("body.metadata")


async def test_get_missing_panel_is_404(client: Client, builder: Caller) -> None:
    response = await client.get("/api/panels/987654321987", headers=builder.headers)
    assert response.status_code == 404
    assert response.json()["message"] == "Panel not found"


@pytest.mark.parametrize(
    "bad_id", ["0", "-3", "abc", "1.5", "99999999999999999999", "9223372036854775808"]
)
async def test_path_ids_that_are_not_positive_64_bit_integers(
    client: Client, builder: Caller, bad_id: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, f"/api/panels/{bad_id}", json={}, headers=builder.headers
        )
        assert response.status_code in (400, 404), (method, bad_id, response.text)
        assert response.json()["statusCode"] == response.status_code


async def test_update_fields(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(
        builder, name="Before", description="text", metadata={"keep": 1, "drop": 2, "change": "a"}
    )
    url = f"/api/panels/{panel['id']}"
    response = await client.put(
        url,
        json={
            "name": "After",
            "description": None,
            "metadata": {"drop": None, "change": "b", "add": True},
        },
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "After"
    assert updated["description"] is None
    assert updated["metadata"] == {"keep": 1, "change": "b", "add": True}
    assert updated["updatedAt"] >= panel["updatedAt"]
    assert updated["createdAt"] == panel["createdAt"]
    rule = {"logic": "OR", "conditions": [{"field": "x", "operator": "eq", "value": 1}]}
    replaced = (await client.put(url, json={"cohortRule": rule}, headers=builder.headers)).json()
    assert replaced["cohortRule"] == rule
    assert replaced["metadata"] == updated["metadata"]


async def test_update_validation(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    for body, field in (
        ({"name": ""}, "body.name"),
        ({"name": None}, "body.name"),
        ({"metadata": None}, "body.metadata"),
        ({"cohortRule": None}, "body.cohortRule"),
    ):
        response = await client.put(url, json=body, headers=builder.headers)
        assert response.status_code == 400, response.text
        assert response.json()["details"][0]["field"] == field
    unchanged = (await client.get(url, headers=builder.headers)).json()
    assert unchanged["name"] == panel["name"]


async def test_update_that_changes_nothing_records_nothing(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    panel = await create_panel(builder, name="Same")
    response = await client.put(
        f"/api/panels/{panel['id']}", json={"name": "Same"}, headers=builder.headers
    )
    assert response.status_code == 200
    assert response.json() == panel
    changes = (
        await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    ).json()
    assert [c["changeType"] for c in changes["changes"]] == ["panel_created"]


async def test_only_owner_editor_or_admin_changes_a_panel(
    client: Client, builder: Caller, make_caller: CallerFactory, create_panel: Any, share: Any
) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    stranger = make_caller("dave", "builder")
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.put(url, json={"name": "x"}, headers=stranger.headers)).status_code == 404
    await share(builder, "panel", panel["id"], user="dave@example.com")
    assert (await client.get(url, headers=stranger.headers)).status_code == 200
    assert (await client.put(url, json={"name": "x"}, headers=stranger.headers)).status_code == 403
    assert (await client.delete(url, headers=stranger.headers)).status_code == 403
    await client.put(
        f"/api/acls/panel/{panel['id']}/dave@example.com",
        json={"permission": "editor"},
        headers=builder.headers,
    )
    assert (
        await client.put(url, json={"name": "by editor"}, headers=stranger.headers)
    ).status_code == 200
    assert (await client.delete(url, headers=stranger.headers)).status_code == 403
    admin = make_caller("erin", "admin")
    assert (
        await client.put(url, json={"name": "by admin"}, headers=admin.headers)
    ).status_code == 200
    assert (
        await client.put(url, json={"name": "by owner"}, headers=builder.headers)
    ).status_code == 200


async def test_delete(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    response = await client.delete(url, headers=builder.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(url, headers=builder.headers)).status_code == 404
    assert (await client.delete(url, headers=builder.headers)).status_code == 404
    assert (await client.put(url, json={"name": "x"}, headers=builder.headers)).status_code == 404


async def test_list_paging_sorting_and_search(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    names = ["Cardio", "alpha ward", "Beta", "Ward 50%_off", "Ward 5"]
    ids = [(await create_panel(builder, name=n))["id"] for n in names]
    response = await client.get("/api/panels", headers=builder.headers)
    assert response.status_code == 200
    assert response.headers["x-total-count"] == "5"
    assert [p["id"] for p in response.json()] == list(reversed(ids))  # newest first by default

    by_name = await client.get("/api/panels", params={"sort": "name"}, headers=builder.headers)
    assert [p["name"] for p in by_name.json()] == sorted(names)
    desc = await client.get(
        "/api/panels", params={"sort": "name", "direction": "desc"}, headers=builder.headers
    )
    assert [p["name"] for p in desc.json()] == sorted(names, reverse=True)
    oldest = await client.get(
        "/api/panels", params={"sort": "createdAt", "direction": "asc"}, headers=builder.headers
    )
    assert [p["id"] for p in oldest.json()] == ids

    page = await client.get(
        "/api/panels",
        params={"sort": "createdAt", "direction": "asc", "limit": 2, "offset": 2},
        headers=builder.headers,
    )
    assert [p["id"] for p in page.json()] == ids[2:4]
    assert page.headers["x-total-count"] == "5"

    found = await client.get("/api/panels", params={"q": "WARD"}, headers=builder.headers)
    assert sorted(p["name"] for p in found.json()) == sorted(
        ["alpha ward", "Ward 50%_off", "Ward 5"]
    )
    assert found.headers["x-total-count"] == "3"
    literal = await client.get("/api/panels", params={"q": "50%_"}, headers=builder.headers)
    assert [p["name"] for p in literal.json()] == ["Ward 50%_off"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"offset": -1},
        {"sort": "owner"},
        {"direction": "up"},
        {"q": "x" * 256},
    ],
)
async def test_list_rejects_out_of_range_parameters(
    client: Client, builder: Caller, params: dict[str, Any]
) -> None:
    response = await client.get("/api/panels", params=params, headers=builder.headers)
    assert response.status_code == 400, response.text
    assert response.json()["details"]


async def test_list_accepts_the_maximum_limit(client: Client, builder: Caller) -> None:
    response = await client.get("/api/panels", params={"limit": 500}, headers=builder.headers)
    assert response.status_code == 200


async def test_total_is_kept_past_the_last_page(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    for name in ("a", "b"):
        await create_panel(builder, name=name)
    past = await client.get("/api/panels", params={"offset": 10}, headers=builder.headers)
    assert past.json() == []
    assert past.headers["x-total-count"] == "2"
    changes = await client.get(
        "/api/changes/panels", params={"offset": 10}, headers=builder.headers
    )
    assert changes.json() == {"changes": [], "total": 2, "hasMore": False}


async def test_a_put_is_two_statements_and_its_record(
    client: Client, app: Litestar, builder: Caller, member: Caller, create_panel: Any, share: Any
) -> None:
    """The read that locks the panel and answers the caller's right, then the change with its
    record; what a GET then shows is what the PUT answered, and the change is recorded."""
    panel = await create_panel(builder, name="Before")
    await share(builder, "panel", panel["id"], user=member.email, permission="editor")
    url = f"/api/panels/{panel['id']}"
    await client.get(url, headers=member.headers)
    cached = await client.get(url, headers=member.headers)
    assert cached.headers["x-cache"] == "HIT"
    with queries_sent(app.state.runtime.db.get_engine()) as queries:
        response = await client.put(url, json={"name": "After"}, headers=member.headers)
    assert response.status_code == 200, response.text
    assert len(queries) == 2, queries
    read = await client.get(url, headers=member.headers)
    assert read.headers["x-cache"] == "MISS"  # the PUT's statements still bump the cache
    assert read.json() == response.json()
    assert read.headers["etag"] == response.headers["etag"]
    changes = (await client.get(f"{url}/changes", headers=builder.headers)).json()
    by_member = [c for c in changes["changes"] if c["changedBy"] == member.user]
    assert [(c["changeType"], c["oldValues"], c["newValues"]) for c in by_member] == [
        ("panel_updated", {"name": "Before"}, {"name": "After"})
    ]
