"""Change records for every panel mutation, and the two change-history routes."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory

Client = AsyncTestClient[Litestar]


async def history(client: Client, caller: Caller, panel_id: int, **params: Any) -> dict[str, Any]:
    response = await client.get(
        f"/api/panels/{panel_id}/changes", params=params, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_each_mutation_writes_one_record(
    client: Client, builder: Caller, make_caller: CallerFactory, create_panel: Any
) -> None:
    """The builder's changes, read back once the panel is gone by an admin (admin rights)."""
    panel = await create_panel(builder, name="Cardio", metadata={"a": 1})
    url = f"/api/panels/{panel['id']}"
    await client.put(
        url, json={"name": "Cardiology", "metadata": {"b": 2}}, headers=builder.headers
    )
    rule = {"logic": "AND", "conditions": [{"field": "age", "operator": "gte", "value": 65}]}
    await client.put(url, json={"cohortRule": rule}, headers=builder.headers)
    await client.delete(url, headers=builder.headers)

    changes = (
        await client.get(
            "/api/changes/panels", params={"panelId": panel["id"]}, headers=builder.headers
        )
    ).json()
    assert changes["changes"] == []  # a deleted panel's history is for admins only

    admin_view = await client.get(
        "/api/changes/panels",
        params={"panelId": panel["id"]},
        headers=make_caller("root", "admin").headers,
    )
    records = admin_view.json()["changes"]
    assert [c["changeType"] for c in records] == [
        "panel_deleted",
        "cohort_changed",
        "panel_updated",
        "panel_created",
    ]
    deleted, cohort, updated, created = records
    for record in records:
        assert record["changedBy"] == builder.user
        assert record["panelId"] == panel["id"]
        assert record["entityType"] == "panel"
        assert record["entityId"] == panel["id"]
        assert record["changedAt"].endswith("Z")
    assert created["oldValues"] == {}
    assert created["newValues"]["name"] == "Cardio"
    assert created["newValues"]["description"] is None
    assert updated["oldValues"] == {"name": "Cardio", "metadata": {"a": 1}}
    assert updated["newValues"] == {"name": "Cardiology", "metadata": {"a": 1, "b": 2}}
    assert cohort["oldValues"] == {"cohortRule": {"logic": "AND", "conditions": []}}
    assert cohort["newValues"] == {"cohortRule": rule}
    assert deleted["newValues"] == {}
    assert deleted["oldValues"]["name"] == "Cardiology"
    assert deleted["description"] == 'Panel "Cardiology" deleted'


async def test_deleted_panel_history_is_readable_by_admins_only(
    client: Client, builder: Caller, make_caller: CallerFactory, create_panel: Any
) -> None:
    panel = await create_panel(builder)
    await client.delete(f"/api/panels/{panel['id']}", headers=builder.headers)
    admin = make_caller("root", "admin")
    assert (
        await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    ).status_code == 404
    records = await history(client, admin, panel["id"])
    assert [c["changeType"] for c in records["changes"]] == ["panel_deleted", "panel_created"]


async def test_filters_and_paging(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(builder, name="p")
    for index in range(4):
        await client.put(
            f"/api/panels/{panel['id']}", json={"name": f"p{index}"}, headers=builder.headers
        )
    page = await history(client, builder, panel["id"], limit=2)
    assert page["total"] == 5
    assert page["hasMore"] is True
    assert len(page["changes"]) == 2
    last = await history(client, builder, panel["id"], limit=2, offset=4)
    assert last["hasMore"] is False
    assert [c["changeType"] for c in last["changes"]] == ["panel_created"]
    updates = await history(client, builder, panel["id"], changeType="panel_updated")
    assert updates["total"] == 4
    newest = page["changes"][0]["changedAt"]
    since = await history(client, builder, panel["id"], since=newest)
    assert [c["id"] for c in since["changes"]] == [page["changes"][0]["id"]]
    everything = (await client.get("/api/changes/panels", headers=builder.headers)).json()
    assert everything["total"] == 5
    assert everything["changes"][0]["id"] > everything["changes"][-1]["id"]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "1700000000"},
        {"since": "0.5"},
        {"since": "2026-13-01T00:00:00Z"},
        {"changeType": "panel_exploded"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"panelId": 0},
        {"panelId": "x"},
    ],
)
async def test_bad_filters_are_400(client: Client, builder: Caller, params: dict[str, Any]) -> None:
    response = await client.get("/api/changes/panels", params=params, headers=builder.headers)
    assert response.status_code == 400, response.text
    assert response.json()["details"]


async def test_failed_update_leaves_no_record(
    client: Client, builder: Caller, make_caller: CallerFactory, create_panel: Any, share: Any
) -> None:
    panel = await create_panel(builder)
    await share(builder, "panel", panel["id"])
    stranger = make_caller("zed", "builder")
    assert (
        await client.put(f"/api/panels/{panel['id']}", json={"name": "x"}, headers=stranger.headers)
    ).status_code == 403
    etag = '"not-current"'
    response = await client.put(
        f"/api/panels/{panel['id']}",
        json={"name": "x"},
        headers={**builder.headers, "If-Match": etag},
    )
    assert response.status_code == 412
    records = await history(client, builder, panel["id"])
    panel_records = [c for c in records["changes"] if c["entityType"] == "panel"]
    assert [c["changeType"] for c in panel_records] == ["panel_created"]
