"""API.md's "Roles and sharing" table, route by route, for every kind of caller.

The table below is the specification: the test fails when the OpenAPI document has a route
that has no row here, so a new route cannot ship without saying who may call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory
from tests.integration.test_isolation import api_operations

Client = AsyncTestClient[Litestar]
CALLERS = ("admin", "owner", "editor", "viewer", "everyone", "stranger", "outsider")

# Who gets what: the success status is the row's; the rest is the same for every row of a rule.
ANYONE = dict.fromkeys(CALLERS, "ok")
READ = {**ANYONE, "stranger": 404, "outsider": 404}
EDIT = {**READ, "viewer": 403, "everyone": 403}
OWN = {**EDIT, "editor": 403}
CREATE_PANEL = {**ANYONE, "editor": 403, "viewer": 403, "everyone": 403, "stranger": 403}
CREATE_VIEW = READ  # the body names a panel: one the caller cannot read is a 404


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as the OpenAPI document writes it
    url: str  # with {placeholders} filled from the caller's own resources
    rule: dict[str, Any]
    ok: int
    body: Any = None


# In the order they run: everything that destroys comes last.
ROWS = [
    Row("GET", "/api/panels", "/api/panels", ANYONE, 200),
    Row("POST", "/api/panels", "/api/panels", CREATE_PANEL, 201, {"name": "made"}),
    Row("GET", "/api/panels/{panel_id}", "/api/panels/{panel}", READ, 200),
    Row("PUT", "/api/panels/{panel_id}", "/api/panels/{panel}", EDIT, 200, {"name": "renamed"}),
    Row("GET", "/api/changes/panels", "/api/changes/panels", ANYONE, 200),
    Row("GET", "/api/panels/{panel_id}/changes", "/api/panels/{panel}/changes", READ, 200),
    Row("GET", "/api/panels/{panel_id}/datasources", "/api/panels/{panel}/datasources", READ, 200),
    Row(
        "POST",
        "/api/panels/{panel_id}/datasources",
        "/api/panels/{panel}/datasources",
        EDIT,
        201,
        {"type": "custom", "config": {}},
    ),
    Row(
        "PUT",
        "/api/panels/{panel_id}/datasources/{source_id}",
        "/api/panels/{panel}/datasources/{source1}",
        EDIT,
        200,
        {"config": {"keyField": "k"}},
    ),
    Row(
        "PUT",
        "/api/datasources/{source_id}",
        "/api/datasources/{source2}",
        EDIT,
        200,
        {"config": {"keyField": "k"}},
    ),
    Row("GET", "/api/panels/{panel_id}/columns", "/api/panels/{panel}/columns", READ, 200),
    Row(
        "POST",
        "/api/panels/{panel_id}/columns/base",
        "/api/panels/{panel}/columns/base",
        EDIT,
        201,
        {"name": "extra", "type": "text"},
    ),
    Row(
        "POST",
        "/api/panels/{panel_id}/columns/calculated",
        "/api/panels/{panel}/columns/calculated",
        EDIT,
        201,
        {"name": "calc", "type": "number", "formula": "score + 1"},
    ),
    Row(
        "PUT",
        "/api/panels/{panel_id}/columns/{column_id}",
        "/api/panels/{panel}/columns/{spare_column}",
        EDIT,
        200,
        {"name": "spare2"},
    ),
    Row("GET", "/api/views", "/api/views", ANYONE, 200),
    Row(
        "POST", "/api/views", "/api/views", CREATE_VIEW, 201, {"panelId": "{panel}", "name": "mine"}
    ),
    Row("GET", "/api/views/{view_id}", "/api/views/{view}", READ, 200),
    Row("PUT", "/api/views/{view_id}", "/api/views/{view}", EDIT, 200, {"name": "v2"}),
    Row("GET", "/api/views/{view_id}/sorts", "/api/views/{view}/sorts", READ, 200),
    Row(
        "PUT",
        "/api/views/{view_id}/sorts",
        "/api/views/{view}/sorts",
        EDIT,
        200,
        {"sorts": [{"columnName": "score"}]},
    ),
    Row("GET", "/api/views/{view_id}/filters", "/api/views/{view}/filters", READ, 200),
    Row(
        "PUT",
        "/api/views/{view_id}/filters",
        "/api/views/{view}/filters",
        EDIT,
        200,
        {"filters": []},
    ),
    Row("POST", "/api/views/{view_id}/publish", "/api/views/{view}/publish", EDIT, 200),
    Row("POST", "/api/views/{view_id}/unpublish", "/api/views/{view}/unpublish", EDIT, 200),
    Row("GET", "/api/notifications/views", "/api/notifications/views", ANYONE, 200),
    Row(
        "PUT",
        "/api/notifications/views/mark-read",
        "/api/notifications/views/mark-read",
        ANYONE,
        200,
        {"notificationIds": [1]},
    ),
    Row("GET", "/api/acls/user/{user_email}", "/api/acls/user/{me}", ANYONE, 200),
    Row("GET", "/api/acls/{resource_type}/{resource_id}", "/api/acls/panel/{panel}", READ, 200),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}",
        "/api/acls/panel/{panel}",
        OWN,
        201,
        {"userEmail": "new@example.com", "permission": "viewer"},
    ),
    Row(
        "PUT",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/spare@example.com",
        OWN,
        200,
        {"permission": "editor"},
    ),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}/share-public",
        "/api/acls/view/{view}/share-public",
        OWN,
        "public",
        {"permission": "viewer"},
    ),
    Row(
        "DELETE",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/spare@example.com",
        OWN,
        204,
    ),
    Row(
        "DELETE",
        "/api/panels/{panel_id}/columns/{column_id}",
        "/api/panels/{panel}/columns/{spare_column}",
        EDIT,
        204,
    ),
    Row(
        "DELETE",
        "/api/panels/{panel_id}/datasources/{source_id}",
        "/api/panels/{panel}/datasources/{source1}",
        EDIT,
        204,
    ),
    Row("DELETE", "/api/datasources/{source_id}", "/api/datasources/{source2}", EDIT, 204),
    Row("DELETE", "/api/views/{view_id}", "/api/views/{view}", OWN, 204),
    Row("DELETE", "/api/panels/{panel_id}", "/api/panels/{panel}", OWN, 204),
]


def test_every_route_has_a_row(app: Litestar) -> None:
    documented = set(api_operations(app.openapi_schema.to_schema()))
    assert documented == {(row.method, row.path) for row in ROWS}


async def resources_for(client: Client, owner: Caller, public: bool) -> dict[str, Any]:
    """A panel with sources, columns and a view, shared as the table's callers need."""

    async def post(url: str, body: Any) -> dict[str, Any]:
        response = await client.post(url, json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    panel = (await post("/api/panels", {"name": "Shared"}))["id"]
    base = f"/api/panels/{panel}"
    source1 = (await post(f"{base}/datasources", {"type": "custom", "config": {}}))["id"]
    source2 = (await post(f"{base}/datasources", {"type": "custom", "config": {}}))["id"]
    score = (await post(f"{base}/columns/base", {"name": "score", "type": "number"}))["id"]
    spare_column = (await post(f"{base}/columns/base", {"name": "spare", "type": "text"}))["id"]
    view = (
        await post("/api/views", {"panelId": panel, "name": "Owner's", "visibleColumns": [score]})
    )["id"]
    for resource, resource_id in (("panel", panel), ("view", view)):
        for user, permission in (("ed@example.com", "editor"), ("vi@example.com", "viewer")):
            await post(
                f"/api/acls/{resource}/{resource_id}", {"userEmail": user, "permission": permission}
            )
        if public:
            await post(f"/api/acls/{resource}/{resource_id}/share-public", {"permission": "viewer"})
    await post(
        f"/api/acls/panel/{panel}", {"userEmail": "spare@example.com", "permission": "viewer"}
    )
    return {
        "panel": panel,
        "source1": source1,
        "source2": source2,
        "spare_column": spare_column,
        "view": view,
    }


def fill(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        whole = re.fullmatch(r"{(\w+)}", template)
        if whole:
            return values[whole.group(1)]
        return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), template)
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


@pytest.mark.parametrize("kind", CALLERS)
async def test_each_caller_gets_exactly_the_status_of_the_table(
    client: Client, make_caller: CallerFactory, kind: str
) -> None:
    owner = make_caller("olga", "builder", email="olga@example.com")
    callers = {
        "admin": make_caller("ada", "admin", email="ada@example.com"),
        "owner": owner,
        "editor": make_caller("ed", "user", email="ed@example.com"),
        "viewer": make_caller("vi", "user", email="vi@example.com"),
        "everyone": make_caller("eve", "user", email="eve@example.com"),
        "stranger": make_caller("sam", "user", email="sam@example.com"),
        "outsider": make_caller(
            "otto", "admin", tenant_id="t-outsider-tenant", email="otto@example.com"
        ),
    }
    caller = callers[kind]
    values = await resources_for(client, owner, public=kind == "everyone")
    values["me"] = caller.email
    outcomes = []
    for row in ROWS:
        expected = row.rule[kind]
        if expected == "ok":
            expected = 201 if row.ok == "public" else row.ok
        response = await client.request(
            row.method, fill(row.url, values), json=fill(row.body, values), headers=caller.headers
        )
        outcomes.append((row.method, row.path, expected, response.status_code))
    wrong = [o for o in outcomes if o[2] != o[3]]
    assert wrong == [], wrong
