"""Grants: the routes of API.md's Sharing section and the rules around owners."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.platform.db import owner_engine
from tests.conftest import Caller, CallerFactory, Services
from tests.integration.databases import queries_sent

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def panel(create_panel: Any, builder: Caller) -> dict[str, Any]:
    return dict(await create_panel(builder, name="Shared things"))


async def acls(
    client: Client, caller: Caller, resource: str, resource_id: int
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/acls/{resource}/{resource_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["acls"])


async def test_the_creator_owns_what_they_create(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    grants = await acls(client, builder, "panel", panel["id"])
    assert [(g["userEmail"], g["permission"], g["resourceType"]) for g in grants] == [
        (builder.email, "owner", "panel")
    ]
    assert grants[0]["tenantId"] == builder.tenant
    assert grants[0]["createdAt"].endswith("Z")


async def test_grant_lifecycle(
    client: Client, builder: Caller, make_caller: CallerFactory, panel: dict[str, Any]
) -> None:
    reader = make_caller("rita", "user", email="Rita@Example.com")
    url = f"/api/acls/panel/{panel['id']}"
    assert (
        await client.get(f"/api/panels/{panel['id']}", headers=reader.headers)
    ).status_code == 404
    created = await client.post(
        url, json={"userEmail": "RITA@example.com", "permission": "viewer"}, headers=builder.headers
    )
    assert created.status_code == 201
    assert created.json()["acl"]["userEmail"] == "rita@example.com"
    assert (
        await client.get(f"/api/panels/{panel['id']}", headers=reader.headers)
    ).status_code == 200
    duplicate = await client.post(
        url, json={"userEmail": "rita@example.com", "permission": "editor"}, headers=builder.headers
    )
    assert duplicate.status_code == 409
    promoted = await client.put(
        f"{url}/rita@example.com", json={"permission": "editor"}, headers=builder.headers
    )
    assert promoted.json()["acl"]["permission"] == "editor"
    assert (
        await client.put(
            f"/api/panels/{panel['id']}", json={"name": "by rita"}, headers=reader.headers
        )
    ).status_code == 200
    # Editors share as viewer or editor, never as owner.
    assert (
        await client.post(
            url, json={"userEmail": "x@example.com", "permission": "owner"}, headers=reader.headers
        )
    ).status_code == 403
    assert (
        await client.post(
            url, json={"userEmail": "x@example.com", "permission": "viewer"}, headers=reader.headers
        )
    ).status_code == 201
    assert (
        await client.delete(f"{url}/rita@example.com", headers=builder.headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/panels/{panel['id']}", headers=reader.headers)
    ).status_code == 404
    assert (
        await client.delete(f"{url}/rita@example.com", headers=builder.headers)
    ).status_code == 404


@pytest.mark.parametrize("permission", ["viewer", "editor"])
async def test_a_removed_grant_hides_the_panel_at_once_even_when_cached(
    client: Client,
    builder: Caller,
    make_caller: CallerFactory,
    panel: dict[str, Any],
    share: Any,
    add_source_and_column: Any,
    permission: str,
) -> None:
    reader = make_caller("rita", email="rita@example.com")
    base = f"/api/panels/{panel['id']}"
    await add_source_and_column(builder, panel["id"])
    await share(builder, "panel", panel["id"], user=reader.email, permission=permission)
    reads = (base, f"{base}/columns", f"{base}/datasources")
    for read in reads:
        for caller in (reader, builder, reader, builder):
            assert (await client.get(read, headers=caller.headers)).status_code == 200
        assert (await client.get(read, headers=reader.headers)).headers["x-cache"] == "HIT"
    removed = await client.delete(
        f"/api/acls/panel/{panel['id']}/{reader.email}", headers=builder.headers
    )
    assert removed.status_code == 204
    for read in reads:  # the owner fills the cache again first: it must not be served to rita
        assert (await client.get(read, headers=builder.headers)).status_code == 200
        response = await client.get(read, headers=reader.headers)
        assert response.status_code == 404, (read, response.headers.get("x-cache"))


async def test_grants_by_user_id(
    client: Client, builder: Caller, make_caller: CallerFactory, panel: dict[str, Any]
) -> None:
    no_email = make_caller("u-42", "user", email=None)
    await client.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": "u-42", "permission": "viewer"},
        headers=builder.headers,
    )
    assert (
        await client.get(f"/api/panels/{panel['id']}", headers=no_email.headers)
    ).status_code == 200


async def test_the_last_owner_stays(client: Client, builder: Caller, panel: dict[str, Any]) -> None:
    url = f"/api/acls/panel/{panel['id']}/{builder.email}"
    assert (
        await client.put(url, json={"permission": "editor"}, headers=builder.headers)
    ).status_code == 409
    assert (await client.delete(url, headers=builder.headers)).status_code == 409
    await client.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": "co@example.com", "permission": "owner"},
        headers=builder.headers,
    )
    assert (
        await client.put(url, json={"permission": "editor"}, headers=builder.headers)
    ).status_code == 200


async def test_share_public(
    client: Client, builder: Caller, member: Caller, panel: dict[str, Any]
) -> None:
    url = f"/api/acls/panel/{panel['id']}/share-public"
    first = await client.post(url, json={"permission": "viewer"}, headers=builder.headers)
    assert first.status_code == 201
    assert first.json()["acl"]["userEmail"] == "_all"
    assert (
        await client.get(f"/api/panels/{panel['id']}", headers=member.headers)
    ).status_code == 200
    again = await client.post(url, json={"permission": "editor"}, headers=builder.headers)
    assert again.status_code == 200
    assert again.json()["acl"]["permission"] == "editor"
    assert (
        await client.put(
            f"/api/panels/{panel['id']}", json={"name": "anyone"}, headers=member.headers
        )
    ).status_code == 200


async def test_user_grant_listing_is_ones_own_or_anyones_for_an_admin(
    client: Client, builder: Caller, member: Caller, admin: Caller, panel: dict[str, Any]
) -> None:
    """A user lists their own grants only; an admin lists anyone's (admin rights)."""
    await client.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": member.email, "permission": "viewer"},
        headers=builder.headers,
    )
    own = await client.get(f"/api/acls/user/{member.email}", headers=member.headers)
    assert [g["resourceId"] for g in own.json()["acls"]] == [panel["id"]]
    assert (
        await client.get(f"/api/acls/user/{builder.email}", headers=member.headers)
    ).status_code == 403
    as_admin = await client.get(
        f"/api/acls/user/{builder.email}", params={"resourceType": "panel"}, headers=admin.headers
    )
    assert [g["resourceId"] for g in as_admin.json()["acls"]] == [panel["id"]]
    assert (
        await client.get(
            f"/api/acls/user/{builder.email}",
            params={"resourceType": "view"},
            headers=admin.headers,
        )
    ).json() == {"acls": []}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/acls/folder/1", {"userEmail": "a@b.c", "permission": "viewer"}),
        ("/api/acls/panel/{id}", {"userEmail": "a@b.c", "permission": "admin"}),
        ("/api/acls/panel/{id}", {"userEmail": "", "permission": "viewer"}),
        ("/api/acls/panel/{id}", {"userEmail": "has space", "permission": "viewer"}),
        ("/api/acls/panel/{id}", {"permission": "viewer"}),
    ],
)
async def test_grant_validation(
    client: Client, builder: Caller, panel: dict[str, Any], path: str, body: dict[str, Any]
) -> None:
    response = await client.post(
        path.replace("{id}", str(panel["id"])), json=body, headers=builder.headers
    )
    assert response.status_code == 400, response.text


async def test_deleting_a_resource_removes_its_grants(
    client: Client, builder: Caller, panel: dict[str, Any], services: Services
) -> None:
    view = (
        await client.post(
            "/api/views", json={"panelId": panel["id"], "name": "v"}, headers=builder.headers
        )
    ).json()
    await client.post(f"/api/acls/view/{view['id']}/share-public", json={}, headers=builder.headers)
    assert (
        await client.delete(f"/api/panels/{panel['id']}", headers=builder.headers)
    ).status_code == 204
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            left = (
                await connection.execute(
                    text("SELECT count(*) FROM resource_grant WHERE tenant_id = :t"),
                    {"t": builder.tenant},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert left == 0


async def test_grant_changes_are_recorded(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    await client.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": "r@example.com", "permission": "viewer"},
        headers=builder.headers,
    )
    history = (
        await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    ).json()["changes"]
    grant = history[0]
    assert grant["entityType"] == "grant"
    assert grant["changeType"] == "panel_updated"
    assert grant["newValues"]["userEmail"] == "r@example.com"


async def test_listing_panels_with_500_grants_among_10000_is_one_query(
    client: Client, app: Litestar, make_caller: CallerFactory, services: Services
) -> None:
    user = make_caller("lena", "user", email="lena@example.com")
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO panel (tenant_id, user_id, name) "
                    "SELECT :t, 'someone', 'panel ' || n FROM generate_series(1, 10000) n"
                ),
                {"t": user.tenant},
            )
            await connection.execute(
                text(
                    "INSERT INTO resource_grant"
                    " (tenant_id, resource_type, resource_id, user_email, permission) "
                    "SELECT tenant_id, 'panel', id, :u, 'viewer' FROM panel WHERE tenant_id = :t "
                    "ORDER BY id LIMIT 500"
                ),
                {"t": user.tenant, "u": user.email},
            )
    finally:
        await engine.dispose()
    with queries_sent(app.state.runtime.db.get_engine()) as queries:
        response = await client.get("/api/panels", params={"limit": 500}, headers=user.headers)
    assert response.status_code == 200
    assert response.headers["x-total-count"] == "500"
    assert len(response.json()) == 500
    assert len(queries) == 1, queries  # the page with its total; grants filtered inside it
