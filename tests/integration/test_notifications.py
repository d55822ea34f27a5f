"""View notifications: one per affected view owner, never to the actor, with the impact rules."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def setup(
    client: Client, builder: Caller, make_caller: CallerFactory, create_panel: Any
) -> dict[str, Any]:
    """A panel by the builder, two views by two other users, each using some columns."""
    panel = await create_panel(builder, name="Ward")
    base = f"/api/panels/{panel['id']}"
    await client.post(
        f"/api/acls/panel/{panel['id']}/share-public", json={}, headers=builder.headers
    )
    source = (
        await client.post(
            f"{base}/datasources", json={"type": "custom", "config": {}}, headers=builder.headers
        )
    ).json()
    columns = {}
    for name, kind, extra in (
        ("Status", "text", {"dataSourceId": source["id"]}),
        ("Age", "number", {}),
        ("Spare", "text", {}),
    ):
        response = await client.post(
            f"{base}/columns/base",
            json={"name": name, "type": kind, **extra},
            headers=builder.headers,
        )
        columns[name] = response.json()["id"]
    calc = await client.post(
        f"{base}/columns/calculated",
        json={"name": "Older", "type": "number", "formula": "Age + 1"},
        headers=builder.headers,
    )
    columns["Older"] = calc.json()["id"]
    ann, ben = make_caller("ann", "user"), make_caller("ben", "user")
    views = {}
    for owner, visible in ((ann, ["Status", "Age"]), (ben, ["Older"])):
        body = {
            "panelId": panel["id"],
            "name": f"{owner.user}'s view",
            "visibleColumns": [columns[c] for c in visible],
        }
        views[owner.user] = (
            await client.post("/api/views", json=body, headers=owner.headers)
        ).json()
    await client.put(
        f"/api/views/{views['ben']['id']}/filters",
        json={"filters": [{"columnName": "Age", "operator": "gt", "value": 3}]},
        headers=ben.headers,
    )
    return {
        "panel": panel,
        "source": source,
        "columns": columns,
        "views": views,
        "ann": ann,
        "ben": ben,
        "base": base,
    }


async def inbox(client: Client, caller: Caller, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/notifications/views", params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_renaming_a_column_is_info_for_views_that_use_it(
    client: Client, builder: Caller, setup: dict[str, Any]
) -> None:
    await client.put(
        f"{setup['base']}/columns/{setup['columns']['Status']}",
        json={"name": "State"},
        headers=builder.headers,
    )
    ann = await inbox(client, setup["ann"])
    assert ann["total"] == 1
    assert ann["unreadCount"] == 1
    note = ann["notifications"][0]
    assert note["impact"] == "info"
    assert note["viewId"] == setup["views"]["ann"]["id"]
    assert note["userId"] == "ann"
    assert note["isRead"] is False
    assert note["readAt"] is None
    assert note["view"] == {
        "id": setup["views"]["ann"]["id"],
        "name": "ann's view",
        "panelId": setup["panel"]["id"],
        "publishedBy": None,
    }
    assert "renamed" in note["message"]
    change = (
        await client.get(
            f"{setup['base']}/changes",
            params={"changeType": "column_modified"},
            headers=builder.headers,
        )
    ).json()["changes"][0]
    assert note["panelChangeId"] == change["id"]
    assert (await inbox(client, setup["ben"]))["total"] == 0


async def test_retyping_is_a_warning_and_reaches_sorts_and_filters(
    client: Client, builder: Caller, setup: dict[str, Any]
) -> None:
    await client.put(
        f"{setup['base']}/columns/{setup['columns']['Spare']}",
        json={"type": "select"},
        headers=builder.headers,
    )
    assert (await inbox(client, setup["ann"]))["total"] == 0  # nobody uses Spare
    formula = await client.put(
        f"{setup['base']}/columns/{setup['columns']['Older']}",
        json={"formula": "Age + 2"},
        headers=builder.headers,
    )
    assert formula.status_code == 200
    ben = await inbox(client, setup["ben"])
    assert [n["impact"] for n in ben["notifications"]] == ["warning"]
    assert "formula" in ben["notifications"][0]["message"]


async def test_removing_a_column_is_breaking(
    client: Client, builder: Caller, setup: dict[str, Any]
) -> None:
    response = await client.delete(
        f"{setup['base']}/columns/{setup['columns']['Status']}", headers=builder.headers
    )
    assert response.status_code == 204
    ann = await inbox(client, setup["ann"])
    assert [n["impact"] for n in ann["notifications"]] == ["breaking"]
    assert "removed" in ann["notifications"][0]["message"]


async def test_data_source_changes(client: Client, builder: Caller, setup: dict[str, Any]) -> None:
    url = f"/api/datasources/{setup['source']['id']}"
    await client.put(url, json={"config": {"keyField": "mrn"}}, headers=builder.headers)
    await client.delete(url, headers=builder.headers)
    ann = await inbox(client, setup["ann"])
    assert [n["impact"] for n in ann["notifications"]] == ["breaking", "warning"]
    assert (await inbox(client, setup["ben"]))["total"] == 0  # Ben's view reads no column of it


async def test_a_new_cohort_rule_warns_every_view_of_the_panel(
    client: Client, builder: Caller, setup: dict[str, Any]
) -> None:
    rule = {"logic": "AND", "conditions": [{"field": "age", "operator": "gt", "value": 1}]}
    await client.put(setup["base"], json={"cohortRule": rule}, headers=builder.headers)
    for user in ("ann", "ben"):
        notes = (await inbox(client, setup[user]))["notifications"]
        assert [n["impact"] for n in notes] == ["warning"]
        assert "cohort rule" in notes[0]["message"]
    await client.put(setup["base"], json={"name": "Renamed panel"}, headers=builder.headers)
    assert (await inbox(client, setup["ann"]))["total"] == 1  # a name is no cohort change


async def test_never_to_the_actor(
    client: Client, builder: Caller, setup: dict[str, Any], share: Any
) -> None:
    ann = setup["ann"]  # made an editor of the panel, Ann herself changes what her view uses
    await share(builder, "panel", setup["panel"]["id"], user=ann.email, permission="editor")
    renamed = await client.put(
        f"{setup['base']}/columns/{setup['columns']['Status']}",
        json={"name": "Mine"},
        headers=ann.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert (await inbox(client, setup["ann"]))["total"] == 0


async def test_filters_paging_and_mark_read(
    client: Client, builder: Caller, setup: dict[str, Any]
) -> None:
    base, columns = setup["base"], setup["columns"]
    await client.put(
        f"{base}/columns/{columns['Status']}", json={"name": "S2"}, headers=builder.headers
    )
    await client.put(
        f"{base}/columns/{columns['Age']}", json={"type": "text"}, headers=builder.headers
    )  # 409: Older reads it
    await client.put(
        f"{base}/columns/{columns['Age']}", json={"name": "Years"}, headers=builder.headers
    )
    await client.put(
        base, json={"cohortRule": {"logic": "OR", "conditions": []}}, headers=builder.headers
    )
    ann = await inbox(client, setup["ann"])
    assert ann["total"] == 3
    assert [n["impact"] for n in ann["notifications"]] == ["warning", "info", "info"]
    page = await inbox(client, setup["ann"], limit=2)
    assert page["hasMore"] is True
    assert len(page["notifications"]) == 2
    assert (await inbox(client, setup["ann"], limit=2, offset=2))["hasMore"] is False
    assert (await inbox(client, setup["ann"], notificationType="info"))["total"] == 2
    newest = ann["notifications"][0]
    assert [
        n["id"]
        for n in (await inbox(client, setup["ann"], since=newest["createdAt"]))["notifications"]
    ] == [newest["id"]]

    ids = [n["id"] for n in ann["notifications"]]
    ben_ids = [n["id"] for n in (await inbox(client, setup["ben"]))["notifications"]]
    stolen = await client.put(
        "/api/notifications/views/mark-read",
        json={"notificationIds": ben_ids},
        headers=setup["ann"].headers,
    )
    assert stolen.json() == {"updated": 0}
    assert (await inbox(client, setup["ben"]))["unreadCount"] == len(ben_ids)
    marked = await client.put(
        "/api/notifications/views/mark-read",
        json={"notificationIds": ids[:2]},
        headers=setup["ann"].headers,
    )
    assert marked.json() == {"updated": 2}
    again = await client.put(
        "/api/notifications/views/mark-read",
        json={"notificationIds": ids},
        headers=setup["ann"].headers,
    )
    assert again.json() == {"updated": 1}
    after = await inbox(client, setup["ann"])
    assert after["unreadCount"] == 0
    assert all(n["isRead"] and n["readAt"] for n in after["notifications"])
    assert (await inbox(client, setup["ann"], isRead="false"))["total"] == 0
    assert (await inbox(client, setup["ann"], isRead="1"))["total"] == 3


async def test_other_tenants_see_and_touch_nothing(
    client: Client, builder: Caller, outsider: Caller, setup: dict[str, Any]
) -> None:
    await client.put(
        f"{setup['base']}/columns/{setup['columns']['Status']}",
        json={"name": "S3"},
        headers=builder.headers,
    )
    ids = [n["id"] for n in (await inbox(client, setup["ann"]))["notifications"]]
    assert ids
    assert (await inbox(client, outsider))["total"] == 0
    marked = await client.put(
        "/api/notifications/views/mark-read",
        json={"notificationIds": ids},
        headers=outsider.headers,
    )
    assert marked.json() == {"updated": 0}
    assert (await inbox(client, setup["ann"]))["unreadCount"] == len(ids)


@pytest.mark.parametrize(
    "params",
    [
        {"notificationType": "urgent"},
        {"isRead": "maybe"},
        {"since": "1700000000"},
        {"since": "0.5"},
        {"limit": 0},
        {"limit": 101},
    ],
)
async def test_bad_filters_are_400(client: Client, member: Caller, params: dict[str, Any]) -> None:
    response = await client.get("/api/notifications/views", params=params, headers=member.headers)
    assert response.status_code == 400, response.text


async def test_mark_read_limits(client: Client, member: Caller) -> None:
    too_many = await client.put(
        "/api/notifications/views/mark-read",
        json={"notificationIds": list(range(1, 1002))},
        headers=member.headers,
    )
    assert too_many.status_code == 400
    assert (
        await client.put(
            "/api/notifications/views/mark-read",
            json={"notificationIds": [0]},
            headers=member.headers,
        )
    ).status_code == 400
    assert (
        await client.put(
            "/api/notifications/views/mark-read",
            json={"notificationIds": []},
            headers=member.headers,
        )
    ).json() == {"updated": 0}
