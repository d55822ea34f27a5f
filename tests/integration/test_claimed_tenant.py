"""A `tenantId` in any request body must be the token's tenant (API.md, Conventions)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller
from tests.integration.test_permissions import fill

Client = AsyncTestClient[Litestar]

# Every body-taking route, with a body it would otherwise accept.
WRITES = [
    ("POST", "/api/panels", {"name": "p"}),
    ("PUT", "/api/panels/{panel}", {"name": "p"}),
    ("POST", "/api/panels/{panel}/datasources", {"type": "custom", "config": {}}),
    ("POST", "/api/panels/{panel}/columns/base", {"name": "c", "type": "text"}),
    ("POST", "/api/views", {"panelId": "{panel}", "name": "v"}),
    ("PUT", "/api/views/{view}", {"name": "v"}),
    ("PUT", "/api/views/{view}/sorts", {"sorts": []}),
    ("PUT", "/api/views/{view}/filters", {"filters": []}),
    ("POST", "/api/acls/panel/{panel}", {"userEmail": "x@example.com", "permission": "viewer"}),
    ("PUT", "/api/acls/panel/{panel}/{me}", {"permission": "owner"}),
    ("POST", "/api/acls/panel/{panel}/share-public", {"permission": "viewer"}),
    ("PUT", "/api/notifications/views/mark-read", {"notificationIds": []}),
]


@pytest.fixture
async def ids(client: Client, builder: Caller, create_panel: Any) -> dict[str, Any]:
    panel = (await create_panel(builder))["id"]
    view = await client.post(
        "/api/views", json={"panelId": panel, "name": "v"}, headers=builder.headers
    )
    return {"panel": panel, "view": view.json()["id"], "me": builder.email}


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_a_foreign_tenant_in_any_body_is_refused_and_changes_nothing(
    client: Client, builder: Caller, ids: dict[str, Any], method: str, path: str, body: Any
) -> None:
    url = fill(path, ids)
    foreign = {**fill(body, ids), "tenantId": "someone-else"}
    history = await client.get("/api/changes/panels", headers=builder.headers)
    response = await client.request(method, url, json=foreign, headers=builder.headers)
    assert response.status_code == 403, response.text
    assert response.json()["message"] == "Access denied to tenant"
    after = await client.get("/api/changes/panels", headers=builder.headers)
    assert after.json()["total"] == history.json()["total"]  # nothing was written
    own = {**fill(body, ids), "tenantId": builder.tenant}
    response = await client.request(method, url, json=own, headers=builder.headers)
    assert response.status_code < 300, response.text


async def test_the_tenant_check_comes_before_validation_and_sees_escaped_keys(
    client: Client, builder: Caller
) -> None:
    invalid = await client.post(
        "/api/panels", json={"tenantId": "someone-else", "name": 5}, headers=builder.headers
    )
    assert invalid.status_code == 403
    escaped = await client.post(
        "/api/panels",
        content=b'{"tenant\\u0049d": "someone-else", "name": "x"}',
        headers={**builder.headers, "content-type": "application/json"},
    )
    assert escaped.status_code == 403


@pytest.mark.parametrize("name", ["tenantId", "tenant%49d", "%74enantId"])
async def test_a_foreign_tenant_in_the_query_is_refused_however_its_name_is_spelled(
    client: Client, builder: Caller, ids: dict[str, Any], name: str
) -> None:
    url = f"/api/panels/{ids['panel']}?{name}=someone-else"
    assert (await client.get(url, headers=builder.headers)).status_code == 403
    own = f"/api/panels/{ids['panel']}?{name}={builder.tenant}"
    assert (await client.get(own, headers=builder.headers)).status_code == 200
