"""Tenant isolation: the service filter, row-level security, and every route as another tenant."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import owner_engine, request_engine
from tests.conftest import Caller, Services
from tests.integration.identity_helpers import add_user

Client = AsyncTestClient[Litestar]

# How to fill each path parameter with a resource of tenant A. A new route whose path
# parameter is missing here fails `test_every_route_hides_other_tenants_resources`.
PATH_PARAMETERS = {
    "panel_id": "panel",
    "source_id": "datasource",
    "column_id": "column",
    "view_id": "view",
    "resource_type": "kind",
    "resource_id": "panel",
    "user_email": "owner",
    "job_id": "job",
    "user_id": "user",
    "key_id": "key",
}
# Routes about the caller rather than a resource of A: they answer, with nothing of A's.
ANSWERS_WITH_NOTHING = {"/api/acls/user/{user_email}": {"acls": []}}
# A valid body where an empty one is not, so that the request reaches the lookup (a body that fails
# validation is a 400 whether or not the resource exists, which reveals nothing).
VALID_BODIES = {
    "/api/panels/{panel_id}/datasources": {"type": "custom", "config": {}},
    "/api/panels/{panel_id}/columns/base": {"name": "x", "type": "text"},
    "/api/panels/{panel_id}/columns/calculated": {"name": "y", "type": "number", "formula": "1"},
    "/api/panels/{panel_id}/datasources/{source_id}/records": [{"id": "r1"}],
    "/api/views/{view_id}/sorts": {"sorts": []},
    "/api/views/{view_id}/filters": {"filters": []},
    "/api/acls/{resource_type}/{resource_id}": {
        "userEmail": "x@example.com",
        "permission": "viewer",
    },
    "/api/acls/{resource_type}/{resource_id}/{user_email}": {"permission": "viewer"},
    "/api/users/{user_id}": {"role": "admin"},
}


async def tenant_a_resources(
    client: Client, owner: Caller, create_panel: Any, admin: Caller | None = None
) -> dict[str, int]:
    """A's panel, source, job, column and view; with A's admin, also a built-in user and an
    API key (whose name appears in A's key list and audit list)."""
    identity: dict[str, int] = {}
    if admin is not None:
        identity["user"] = (await add_user(client, admin, email="secret-of-a@example.com")).id
        key = await client.post(
            "/api/api-keys", json={"name": "Secret of A key", "role": "user"}, headers=owner.headers
        )
        assert key.status_code == 201, key.text
        identity["key"] = key.json()["id"]
    panel = await create_panel(owner, name="Secret of A")
    base = f"/api/panels/{panel['id']}"
    await client.put(base, json={"name": "Secret of A, v2"}, headers=owner.headers)
    source = await client.post(
        f"{base}/datasources",
        json={
            "type": "file",
            "config": {"format": "json", "keyField": "Secret of A", "content": "[]"},
        },
        headers=owner.headers,
    )
    job = await client.post(f"/api/datasources/{source.json()['id']}/sync", headers=owner.headers)
    assert job.status_code == 202, job.text
    column = await client.post(
        f"{base}/columns/base",
        json={"name": "Secret of A column", "type": "text"},
        headers=owner.headers,
    )
    view = await client.post(
        "/api/views",
        json={
            "panelId": panel["id"],
            "name": "Secret of A view",
            "visibleColumns": [column.json()["id"]],
        },
        headers=owner.headers,
    )
    assert source.status_code == column.status_code == view.status_code == 201
    await client.put(
        f"/api/views/{view.json()['id']}/sorts",
        json={"sorts": [{"columnName": "Secret of A column"}]},
        headers=owner.headers,
    )
    return {
        "kind": "panel",  # type: ignore[dict-item]
        "owner": owner.email,  # type: ignore[dict-item]
        "panel": panel["id"],
        "datasource": source.json()["id"],
        "column": column.json()["id"],
        "view": view.json()["id"],
        "job": job.json()["jobId"],
        **identity,
    }


def api_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    ]


async def test_every_route_hides_other_tenants_resources(
    client: Client, builder: Caller, admin: Caller, outsider: Caller, create_panel: Any
) -> None:
    resources = await tenant_a_resources(client, builder, create_panel, admin)
    spec = (await client.get("/schema/openapi.json")).json()
    checked = 0
    for method, path in api_operations(spec):
        names = re.findall(r"{(\w+)}", path)
        if not names:
            continue
        for name in names:
            assert name in PATH_PARAMETERS, f"{method} {path}: add {name} to PATH_PARAMETERS"
        url = re.sub(r"{(\w+)}", lambda m: str(resources[PATH_PARAMETERS[m.group(1)]]), path)
        body = VALID_BODIES.get(path, {}) if method in ("POST", "PUT") else {}
        response = await client.request(method, url, json=body, headers=outsider.headers)
        if path in ANSWERS_WITH_NOTHING:
            assert response.json() == ANSWERS_WITH_NOTHING[path], (method, path)
            continue
        assert response.status_code == 404, (method, path, response.text)
        assert "Secret of A" not in response.text
        checked += 1
    assert checked >= 4
    # A still sees everything, untouched.
    panel = await client.get(f"/api/panels/{resources['panel']}", headers=builder.headers)
    assert panel.json()["name"] == "Secret of A, v2"
    columns = await client.get(f"/api/panels/{resources['panel']}/columns", headers=builder.headers)
    assert [c["id"] for c in columns.json()["baseColumns"]] == [resources["column"]]
    sources = await client.get(
        f"/api/panels/{resources['panel']}/datasources", headers=builder.headers
    )
    assert [s["id"] for s in sources.json()] == [resources["datasource"]]
    users = await client.get("/api/users", headers=admin.headers)
    assert [(u["id"], u["role"]) for u in users.json()] == [(resources["user"], "user")]
    keys = await client.get("/api/api-keys", headers=builder.headers)
    assert [k["id"] for k in keys.json()] == [resources["key"]]


async def test_lists_show_nothing_of_other_tenants(
    client: Client, builder: Caller, admin: Caller, outsider: Caller, create_panel: Any
) -> None:
    resources = await tenant_a_resources(client, builder, create_panel, admin)
    spec = (await client.get("/schema/openapi.json")).json()
    for method, path in api_operations(spec):
        if method != "GET" or "{" in path:
            continue
        response = await client.get(
            path, params={"panelId": resources["panel"]}, headers=outsider.headers
        )
        assert response.status_code == 200, path
        assert "Secret of A" not in response.text, path
        assert "secret-of-a" not in response.text, path
    panels = await client.get("/api/panels", params={"q": "Secret"}, headers=outsider.headers)
    assert panels.json() == []
    assert panels.headers["x-total-count"] == "0"
    changes = await client.get(
        "/api/changes/panels", params={"panelId": resources["panel"]}, headers=outsider.headers
    )
    assert changes.json() == {"changes": [], "total": 0, "hasMore": False}


async def test_request_role_without_tenant_sees_no_rows(
    services: Services, client: Client, builder: Caller, create_panel: Any
) -> None:
    await create_panel(builder)
    owner = owner_engine(services.database_url)
    engine = request_engine(services.database_url, pool_size=1)
    try:
        async with owner.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM panel"))).scalar_one() > 0
            # Every table with a tenant_id, so a new one is covered without a change here.
            tenant_tables = (
                await connection.scalars(
                    text(
                        "SELECT table_name FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                    )
                )
            ).all()
        assert "panel" in tenant_tables
        async with AsyncSession(engine) as connection:
            role = (await connection.execute(text("SELECT current_user"))).scalar_one()
            assert role == "panels_app"
            for table in tenant_tables:
                count = (
                    await connection.execute(text(f"SELECT count(*) FROM {table}"))
                ).scalar_one()
                assert count == 0, table
            await connection.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": builder.tenant}
            )
            assert (await connection.execute(text("SELECT count(*) FROM panel"))).scalar_one() == 1
    finally:
        await engine.dispose()
        await owner.dispose()


async def test_request_role_cannot_write_into_another_tenant(services: Services) -> None:
    engine = request_engine(services.database_url, pool_size=1)
    try:
        async with AsyncSession(engine) as connection:
            await connection.execute(text("SELECT set_config('app.tenant_id', 't-mine', true)"))
            with pytest.raises(DBAPIError, match="row-level security"):
                await connection.execute(
                    text(
                        "INSERT INTO panel (tenant_id, user_id, name) VALUES ('t-theirs', 'u', 'x')"
                    )
                )
    finally:
        await engine.dispose()


async def test_change_log_is_append_only_for_the_request_role(services: Services) -> None:
    engine = request_engine(services.database_url, pool_size=1)
    try:
        async with AsyncSession(engine) as connection:
            with pytest.raises(DBAPIError, match="permission denied"):
                await connection.execute(text("DELETE FROM panel_change"))
    finally:
        await engine.dispose()
