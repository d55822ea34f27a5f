"""API.md's Views section: personal and published views, sorts, filters, column changes."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from panels.platform.db import owner_engine
from panels.view.entities import PanelView
from tests.conftest import Caller, CallerFactory, Services

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def panel(client: Client, create_panel: Any, builder: Caller, share: Any) -> dict[str, Any]:
    created = dict(await create_panel(builder, name="Cases"))
    await share(builder, "panel", created["id"])
    url = f"/api/panels/{created['id']}/columns"
    ids = {}
    for name, kind in (
        ("Status", "select"),
        ("Age", "number"),
        ("Opened", "date"),
        ("Urgent", "boolean"),
    ):
        response = await client.post(
            f"{url}/base", json={"name": name, "type": kind}, headers=builder.headers
        )
        ids[name] = response.json()["id"]
    created["columns"] = ids
    return created


async def create_view(
    client: Client, caller: Caller, panel: dict[str, Any], **body: Any
) -> dict[str, Any]:
    payload = {"panelId": panel["id"], "name": "Mine", **body}
    response = await client.post("/api/views", json=payload, headers=caller.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_and_read(client: Client, member: Caller, panel: dict[str, Any]) -> None:
    columns = panel["columns"]
    view = await create_view(
        client,
        member,
        panel,
        visibleColumns=[columns["Status"], str(columns["Age"])],
        metadata={"a": 1},
    )
    assert view["ownerUserId"] == member.user
    assert view["tenantId"] == member.tenant
    assert view["isPublished"] is False
    assert view["publishedAt"] is None
    assert view["publishedBy"] is None
    assert view["visibleColumns"] == [str(columns["Status"]), str(columns["Age"])]
    assert view["sort"] == []
    assert view["filters"] == []
    fetched = await client.get(f"/api/views/{view['id']}", headers=member.headers)
    assert fetched.status_code == 200
    assert fetched.json() == view
    assert fetched.headers["x-cache"] == "MISS"
    assert (await client.get(f"/api/views/{view['id']}", headers=member.headers)).headers[
        "x-cache"
    ] == "HIT"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "body.panelId"),
        ({"panelId": "one", "name": "x"}, "body.panelId"),
        ({"name": ""}, "body.name"),
        ({"visibleColumns": ["abc"]}, "body.visibleColumns[0]"),
        ({"visibleColumns": [987654321]}, "body.visibleColumns[0]"),
        ({"metadata": None}, "body.metadata"),
    ],
)
async def test_create_validation(
    client: Client, member: Caller, panel: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    payload = {"panelId": panel["id"], "name": "v", **body}
    if "panelId" not in body and field == "body.panelId":
        payload.pop("panelId")
    response = await client.post("/api/views", json=payload, headers=member.headers)
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"] == field


async def test_a_panel_the_caller_cannot_read_is_no_panel(
    client: Client,
    outsider: Caller,
    make_caller: CallerFactory,
    create_panel: Any,
    panel: dict[str, Any],
) -> None:
    """API.md: a `panelId` the caller cannot read is a 404, like a missing one."""
    private = await create_panel(name="Private")
    stranger = make_caller("sam")
    for caller, panel_id in (
        (outsider, panel["id"]),
        (stranger, private["id"]),
        (stranger, 987654321),
    ):
        response = await client.post(
            "/api/views", json={"panelId": panel_id, "name": "x"}, headers=caller.headers
        )
        assert response.status_code == 404, (caller.user, panel_id, response.text)
        assert response.json()["message"] == "Panel not found"


async def test_personal_views_are_private_until_published(
    client: Client,
    member: Caller,
    builder: Caller,
    make_caller: CallerFactory,
    panel: dict[str, Any],
    share: Any,
) -> None:
    """Only the owner sees a personal view until it is published; an admin reads and changes
    it all along (admin rights). Publishing needs the panel's write right too."""
    await share(builder, "panel", panel["id"], user=member.email, permission="editor")
    view = await create_view(client, member, panel)
    url = f"/api/views/{view['id']}"
    colleague, admin = make_caller("dan", "user"), make_caller("ada", "admin")
    await client.get(url, headers=member.headers)  # cached for the owner
    assert (await client.get(url, headers=colleague.headers)).status_code == 404
    assert (await client.get(f"{url}/sorts", headers=colleague.headers)).status_code == 404
    assert (await client.put(url, json={"name": "x"}, headers=colleague.headers)).status_code == 404
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    assert (await client.get("/api/views", headers=colleague.headers)).json() == {
        "views": [],
        "total": 0,
    }

    published = await client.post(f"{url}/publish", headers=member.headers)
    assert published.status_code == 200
    body = published.json()
    assert body["isPublished"] is True
    assert body["publishedBy"] == member.user
    assert body["publishedAt"].endswith("Z")
    seen = await client.get(url, headers=colleague.headers)
    assert seen.status_code == 200
    assert (await client.get("/api/views", headers=colleague.headers)).json()["total"] == 1
    assert (await client.put(url, json={"name": "x"}, headers=colleague.headers)).status_code == 403
    assert (await client.post(f"{url}/unpublish", headers=colleague.headers)).status_code == 403
    assert (await client.delete(url, headers=colleague.headers)).status_code == 403
    assert (
        await client.put(url, json={"name": "by admin"}, headers=admin.headers)
    ).status_code == 200

    unpublished = (await client.post(f"{url}/unpublish", headers=member.headers)).json()
    assert unpublished["isPublished"] is False
    assert unpublished["publishedAt"] is None
    assert unpublished["publishedBy"] is None
    assert (await client.get(url, headers=colleague.headers)).status_code == 404


async def test_list_filters_paging_and_order(
    client: Client,
    member: Caller,
    panel: dict[str, Any],
    create_panel: Any,
    builder: Caller,
    share: Any,
) -> None:
    await share(builder, "panel", panel["id"], user=member.email, permission="editor")
    other_panel = await create_panel(builder, name="Other")
    await client.post(
        f"/api/acls/panel/{other_panel['id']}/share-public", json={}, headers=builder.headers
    )
    first = await create_view(client, member, panel, name="first")
    second = await create_view(client, member, panel, name="second")
    third = await create_view(client, member, {"id": other_panel["id"]}, name="third")
    await client.post(f"/api/views/{first['id']}/publish", headers=member.headers)
    everything = (await client.get("/api/views", headers=member.headers)).json()
    assert [v["id"] for v in everything["views"]] == [first["id"], third["id"], second["id"]]
    assert everything["total"] == 3
    of_panel = (
        await client.get("/api/views", params={"panelId": panel["id"]}, headers=member.headers)
    ).json()
    assert {v["id"] for v in of_panel["views"]} == {first["id"], second["id"]}
    for flag, expected in (
        ("true", [first["id"]]),
        ("1", [first["id"]]),
        ("false", [third["id"], second["id"]]),
        ("0", [third["id"], second["id"]]),
    ):
        page = (
            await client.get("/api/views", params={"published": flag}, headers=member.headers)
        ).json()
        assert [v["id"] for v in page["views"]] == expected, flag
    paged = (
        await client.get("/api/views", params={"limit": 1, "offset": 1}, headers=member.headers)
    ).json()
    assert paged["total"] == 3
    assert [v["id"] for v in paged["views"]] == [third["id"]]
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"published": "maybe"},
        {"panelId": "x"},
    ):
        assert (
            await client.get("/api/views", params=params, headers=member.headers)
        ).status_code == 400, params


async def test_update_merges_metadata(
    client: Client, member: Caller, panel: dict[str, Any]
) -> None:
    view = await create_view(client, member, panel, metadata={"keep": 1, "drop": 2})
    url = f"/api/views/{view['id']}"
    response = await client.put(
        url,
        json={
            "name": "Renamed",
            "metadata": {"drop": None, "add": 3},
            "visibleColumns": [panel["columns"]["Age"]],
        },
        headers=member.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Renamed"
    assert updated["metadata"] == {"keep": 1, "add": 3}
    assert updated["visibleColumns"] == [str(panel["columns"]["Age"])]
    assert (
        await client.put(url, json={"visibleColumns": [1, 1]}, headers=member.headers)
    ).status_code == 400
    assert (await client.put(url, json={"name": None}, headers=member.headers)).status_code == 400


async def test_sorts_replace_and_resolve_names(
    client: Client, member: Caller, panel: dict[str, Any]
) -> None:
    view = await create_view(client, member, panel)
    url = f"/api/views/{view['id']}/sorts"
    body = {
        "sorts": [
            {"columnName": "age", "direction": "desc", "order": 5},
            {"columnName": str(panel["columns"]["Status"]), "order": 1},
        ]
    }
    response = await client.put(url, json=body, headers=member.headers)
    assert response.status_code == 200, response.text
    sorts = response.json()["sorts"]
    assert [(s["columnName"], s["direction"], s["order"]) for s in sorts] == [
        ("Status", "asc", 1),
        ("Age", "desc", 5),
    ]
    assert (await client.get(url, headers=member.headers)).json()["sorts"] == sorts
    replaced = (
        await client.put(url, json={"sorts": [{"columnName": "Opened"}]}, headers=member.headers)
    ).json()["sorts"]
    assert [(s["columnName"], s["order"]) for s in replaced] == [("Opened", 0)]
    view_body = (await client.get(f"/api/views/{view['id']}", headers=member.headers)).json()
    assert view_body["sort"] == replaced
    for bad in (
        {"sorts": [{"columnName": "Nope"}]},
        {"sorts": [{"columnName": "Age"}, {"columnName": "age"}]},
        {"sorts": [{"columnName": "Age", "direction": "up"}]},
        {"sorts": [{"columnName": "Age", "order": -1}]},
        {"sorts": None},
        {},
    ):
        assert (await client.put(url, json=bad, headers=member.headers)).status_code == 400, bad


@pytest.mark.parametrize(
    "item",
    [
        {"columnName": "Age", "operator": "gt", "value": 30},
        {"columnName": "Age", "operator": "between", "value": [18, 65]},
        {"columnName": "Status", "operator": "in", "value": ["open", "review"]},
        {"columnName": "Status", "operator": "contains", "value": "pen"},
        {"columnName": "Opened", "operator": "gte", "value": "2026-01-01"},
        {"columnName": "Urgent", "operator": "eq", "value": True},
        {"columnName": "Urgent", "operator": "isNull"},
    ],
)
async def test_filters_accepted(
    client: Client, member: Caller, panel: dict[str, Any], item: dict[str, Any]
) -> None:
    view = await create_view(client, member, panel)
    response = await client.put(
        f"/api/views/{view['id']}/filters", json={"filters": [item]}, headers=member.headers
    )
    assert response.status_code == 200, response.text
    stored = response.json()["filters"][0]
    assert stored["columnName"] == item["columnName"]
    assert stored["logicalOperator"] == "and"
    assert stored["value"] == item.get("value")


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"columnName": "Nope", "operator": "eq", "value": 1}, "body.filters[0].columnName"),
        ({"columnName": "Age", "operator": "like", "value": 1}, "body.filters[0].operator"),
        ({"columnName": "Age", "operator": "in", "value": 1}, "body.filters[0].value"),
        ({"columnName": "Age", "operator": "between", "value": [1, 2, 3]}, "body.filters[0].value"),
        ({"columnName": "Age", "operator": "isNull", "value": 1}, "body.filters[0].value"),
        ({"columnName": "Age", "operator": "gt", "value": "old"}, "body.filters[0].value"),
        ({"columnName": "Age", "operator": "contains", "value": "3"}, "body.filters[0].value"),
        ({"columnName": "Opened", "operator": "gt", "value": "yesterday"}, "body.filters[0].value"),
        ({"columnName": "Urgent", "operator": "gt", "value": True}, "body.filters[0].value"),
        ({"columnName": "Urgent", "operator": "eq", "value": "yes"}, "body.filters[0].value"),
        (
            {"columnName": "Age", "operator": "eq", "value": 1, "logicalOperator": "xor"},
            "body.filters[0].logicalOperator",
        ),
    ],
)
async def test_filters_refused(
    client: Client, member: Caller, panel: dict[str, Any], item: dict[str, Any], field: str
) -> None:
    view = await create_view(client, member, panel)
    response = await client.put(
        f"/api/views/{view['id']}/filters", json={"filters": [item]}, headers=member.headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"] == field


async def test_a_column_rename_shows_in_sorts_and_filters(
    client: Client, member: Caller, builder: Caller, panel: dict[str, Any]
) -> None:
    view = await create_view(client, member, panel)
    url = f"/api/views/{view['id']}"
    await client.put(
        f"{url}/sorts", json={"sorts": [{"columnName": "Age"}]}, headers=member.headers
    )
    await client.put(
        f"{url}/filters",
        json={"filters": [{"columnName": "Age", "operator": "gt", "value": 1}]},
        headers=member.headers,
    )
    await client.get(url, headers=member.headers)
    rename = await client.put(
        f"/api/panels/{panel['id']}/columns/{panel['columns']['Age']}",
        json={"name": "Age in years"},
        headers=builder.headers,
    )
    assert rename.status_code == 200
    after = await client.get(url, headers=member.headers)
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["sort"][0]["columnName"] == "Age in years"
    assert after.json()["filters"][0]["columnName"] == "Age in years"
    assert (await client.get(f"{url}/filters", headers=member.headers)).json()["filters"][0][
        "columnName"
    ] == "Age in years"


async def setup_views_using_age(
    client: Client, owners: tuple[Caller, ...], panel: dict[str, Any]
) -> list[int]:
    """One view per owner that shows, sorts and filters by Age and Status."""
    columns = panel["columns"]
    ids = []
    for owner in owners:
        view = await create_view(
            client, owner, panel, visibleColumns=[columns["Age"], columns["Status"]]
        )
        url = f"/api/views/{view['id']}"
        await client.put(
            f"{url}/sorts",
            json={"sorts": [{"columnName": "Age"}, {"columnName": "Status"}]},
            headers=owner.headers,
        )
        await client.put(
            f"{url}/filters",
            json={
                "filters": [
                    {"columnName": "Age", "operator": "gt", "value": 1},
                    {"columnName": "Status", "operator": "eq", "value": "open"},
                ]
            },
            headers=owner.headers,
        )
        ids.append(view["id"])
    return ids


async def test_a_column_removal_cleans_every_view(
    client: Client,
    member: Caller,
    make_caller: CallerFactory,
    builder: Caller,
    panel: dict[str, Any],
) -> None:
    owners = (member, make_caller("ada"))
    ids = await setup_views_using_age(client, owners, panel)
    response = await client.delete(
        f"/api/panels/{panel['id']}/columns/{panel['columns']['Age']}", headers=builder.headers
    )
    assert response.status_code == 204
    for owner, view_id in zip(owners, ids, strict=True):
        view = (await client.get(f"/api/views/{view_id}", headers=owner.headers)).json()
        assert view["visibleColumns"] == [str(panel["columns"]["Status"])]
        assert [s["columnName"] for s in view["sort"]] == ["Status"]
        assert [f["columnName"] for f in view["filters"]] == ["Status"]


async def test_a_failure_after_the_views_are_cleaned_changes_nothing(
    client: Client,
    member: Caller,
    make_caller: CallerFactory,
    builder: Caller,
    panel: dict[str, Any],
    services: Services,
) -> None:
    owners = (member, make_caller("ada"))
    ids = await setup_views_using_age(client, owners, panel)

    async def read_views() -> list[dict[str, Any]]:
        return [
            (await client.get(f"/api/views/{view_id}", headers=owner.headers)).json()
            for owner, view_id in zip(owners, ids, strict=True)
        ]

    before = await read_views()
    flushed: list[int] = []

    def fail_once_views_are_cleaned(session: Session, _context: Any) -> None:
        changed = [o for o in session.dirty if isinstance(o, PanelView) and o.id in ids]
        flushed.extend(v.id for v in changed)
        if changed:
            raise RuntimeError("injected failure before the column itself is deleted")

    event.listen(Session, "after_flush", fail_once_views_are_cleaned)
    try:
        response = await client.delete(
            f"/api/panels/{panel['id']}/columns/{panel['columns']['Age']}", headers=builder.headers
        )
    finally:
        event.remove(Session, "after_flush", fail_once_views_are_cleaned)
    assert response.status_code == 500
    assert flushed  # the failure did happen in the middle of the removal
    after = await read_views()
    assert after == before
    columns = (
        await client.get(f"/api/panels/{panel['id']}/columns", headers=builder.headers)
    ).json()
    assert "Age" in [c["name"] for c in columns["baseColumns"]]
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            count = (
                await connection.execute(
                    text("SELECT count(*) FROM view_sort WHERE view_id = ANY(:ids)"), {"ids": ids}
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert count == 4


async def test_change_records(
    client: Client, member: Caller, builder: Caller, panel: dict[str, Any], share: Any
) -> None:
    await share(builder, "panel", panel["id"], user=member.email, permission="editor")
    view = await create_view(client, member, panel, name="Tracked")
    url = f"/api/views/{view['id']}"
    await client.put(url, json={"name": "Tracked 2"}, headers=member.headers)
    await client.put(
        f"{url}/sorts", json={"sorts": [{"columnName": "Age"}]}, headers=member.headers
    )
    await client.post(f"{url}/publish", headers=member.headers)
    await client.post(f"{url}/unpublish", headers=member.headers)
    await client.delete(url, headers=member.headers)
    records = (
        await client.get(
            f"/api/panels/{panel['id']}/changes", params={"limit": 6}, headers=member.headers
        )
    ).json()["changes"]
    assert [r["changeType"] for r in records] == [
        "view_deleted",
        "view_unpublished",
        "view_published",
        "view_updated",
        "view_updated",
        "view_created",
    ]
    for record in records:
        assert record["entityType"] == "view"
        assert record["entityId"] == view["id"]
        assert record["changedBy"] == member.user
    assert records[4]["oldValues"] == {"name": "Tracked"}
    assert records[4]["newValues"] == {"name": "Tracked 2"}
    assert records[3]["newValues"]["sort"] == [
        {"columnName": "Age", "direction": "asc", "order": 0}
    ]
    assert records[2]["newValues"] == {"isPublished": True}


async def test_delete(client: Client, member: Caller, panel: dict[str, Any]) -> None:
    view = await create_view(client, member, panel)
    url = f"/api/views/{view['id']}"
    await client.put(
        f"{url}/sorts", json={"sorts": [{"columnName": "Age"}]}, headers=member.headers
    )
    assert (await client.delete(url, headers=member.headers)).status_code == 204
    assert (await client.get(url, headers=member.headers)).status_code == 404
    assert (await client.get(f"{url}/sorts", headers=member.headers)).status_code == 404


async def test_deleting_the_panel_removes_its_views(
    client: Client, member: Caller, builder: Caller, panel: dict[str, Any]
) -> None:
    view = await create_view(client, member, panel)
    assert (
        await client.delete(f"/api/panels/{panel['id']}", headers=builder.headers)
    ).status_code == 204
    assert (await client.get(f"/api/views/{view['id']}", headers=member.headers)).status_code == 404


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("ending", ["delete", "unpublish"])
async def test_the_panel_is_hidden_again_once_its_only_published_view_is_gone(
    client: Client,
    builder: Caller,
    member: Caller,
    create_panel: Any,
    add_source_and_column: Any,
    ending: str,
    cached: bool,
) -> None:
    """A published view opens its panel to the tenant only while it is published, whatever the
    cache holds from the time it was."""
    panel = await create_panel(name="Published for a while")
    base = f"/api/panels/{panel['id']}"
    await add_source_and_column(builder, panel["id"])
    view = await create_view(client, builder, panel, name="Everyone's")
    url = f"/api/views/{view['id']}"
    assert (await client.post(f"{url}/publish", headers=builder.headers)).status_code == 200
    reads = (base, f"{base}/columns", f"{base}/datasources")
    if cached:
        for read in reads:
            for caller in (builder, member, builder, member):
                assert (await client.get(read, headers=caller.headers)).status_code == 200
    if ending == "delete":
        assert (await client.delete(url, headers=builder.headers)).status_code == 204
    else:
        assert (await client.post(f"{url}/unpublish", headers=builder.headers)).status_code == 200
    if cached:  # the owner reads again, so what is cached is current
        for read in reads:
            assert (await client.get(read, headers=builder.headers)).status_code == 200
            assert (await client.get(read, headers=builder.headers)).headers["x-cache"] == "HIT"
    for read in reads:
        response = await client.get(read, headers=member.headers)
        assert response.status_code == 404, (read, response.headers.get("x-cache"))


async def test_listing_1000_views_takes_a_constant_number_of_queries(
    client: Client, app: Litestar, member: Caller, panel: dict[str, Any], services: Services
) -> None:
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO panel_view"
                    " (tenant_id, panel_id, name, owner_user_id, visible_columns)"
                    " SELECT :t, :p, 'bulk ' || n, :u, ARRAY[:c]::bigint[]"
                    " FROM generate_series(1, 1000) n"
                ),
                {
                    "t": member.tenant,
                    "p": panel["id"],
                    "u": member.user,
                    "c": panel["columns"]["Age"],
                },
            )
            await connection.execute(
                text(
                    "INSERT INTO view_sort"
                    " (tenant_id, panel_id, view_id, column_id, direction, sort_order)"
                    " SELECT tenant_id, panel_id, id, :c, 'asc', 0"
                    " FROM panel_view WHERE tenant_id = :t"
                ),
                {"t": member.tenant, "c": panel["columns"]["Age"]},
            )
    finally:
        await engine.dispose()
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sync_engine = app.state.runtime.db.get_engine().sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    try:
        response = await client.get("/api/views", params={"limit": 500}, headers=member.headers)
    finally:
        event.remove(sync_engine, "before_cursor_execute", count)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1000
    assert len(body["views"]) == 500
    assert body["views"][0]["sort"][0]["columnName"] == "Age"
    queries = [s for s in statements if "set_config" not in s]
    # The page of views with its total (one query, a window count), their sorts, their
    # filters, and the names of the columns they use: four, however many views there are.
    assert len(queries) == 4, queries


async def test_a_view_read_in_one_round_trip_is_the_one_a_list_shows(
    client: Client,
    member: Caller,
    make_caller: CallerFactory,
    share: Any,
    panel: dict[str, Any],
) -> None:
    """A missed view is read without a session, its sorts, filters and column names in one
    statement: the same representation (and ETag) as the session's list builds, for whoever
    may read it, and a 404 for whoever may not."""
    view = await create_view(client, member, panel, metadata={"b": 1, "a": {"z": None, "y": 2}})
    url = f"/api/views/{view['id']}"
    sorts = [{"columnName": "Opened"}, {"columnName": "Age", "direction": "desc", "order": 0}]
    filters = [
        {"columnName": "Age", "operator": "gt", "value": 5},
        {"columnName": "Status", "operator": "in", "value": ["a", "b"], "logicalOperator": "or"},
    ]
    for part, body in (("sorts", sorts), ("filters", filters)):
        response = await client.put(f"{url}/{part}", json={part: body}, headers=member.headers)
        assert response.status_code == 200, response.text
    read = await client.get(url, headers=member.headers)
    assert read.status_code == 200
    assert [s["columnName"] for s in read.json()["sort"]] == ["Opened", "Age"]  # (order, id)
    assert [f["value"] for f in read.json()["filters"]] == [5, ["a", "b"]]
    listed = await client.get(f"/api/views?panelId={panel['id']}", headers=member.headers)
    assert listed.json()["views"] == [read.json()]
    changed = await client.put(url, json={"name": "Renamed"}, headers=member.headers)
    assert changed.status_code == 200
    again = await client.get(url, headers=member.headers)
    assert again.json() == changed.json()
    assert again.headers["etag"] == changed.headers["etag"]
    colleague = make_caller("dave", "user")
    assert (await client.get(url, headers=colleague.headers)).status_code == 404
    await share(member, "view", view["id"], user=colleague.email)
    seen = await client.get(url, headers=colleague.headers)
    assert seen.status_code == 200
    assert seen.json() == again.json()
