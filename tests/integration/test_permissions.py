"""API.md's "Roles and sharing" table, route by route, for every kind of caller.

The table below is the specification: the test fails when the OpenAPI document has a route
that has no row here, so a new route cannot ship without saying who may call it. Each caller
runs the table twice: cold, and warm, where an admin has first read every readable route of
the resources (and reads each again right before the caller does), so that whatever the service
caches is there to be served to a caller who may not read it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory
from tests.integration.identity_helpers import PASSWORD, add_user, login
from tests.integration.test_isolation import api_operations

Client = AsyncTestClient[Litestar]
CALLERS = ("admin", "owner", "editor", "viewer", "everyone", "stranger", "outsider")

# Who gets what: the success status is the row's; the rest is the same for every row of a rule.
ANYONE = dict.fromkeys(CALLERS, "ok")
READ = {**ANYONE, "stranger": 404, "outsider": 404}
EDIT = {**READ, "viewer": 403, "everyone": 403}
OWN = {**EDIT, "editor": 403}
SHARE = EDIT  # viewer and editor grants; an owner grant is OWN
CREATE_PANEL = {**ANYONE, "editor": 403, "viewer": 403, "everyone": 403, "stranger": 403}
CREATE_VIEW = READ  # the body names a panel: one the caller cannot read is a 404
# The viewer's personal view: its owner may not publish it, for that needs the panel's write
# right; nobody else but an admin may even read it.
PUBLISH_AS_PANEL_VIEWER = {**dict.fromkeys(CALLERS, 404), "admin": "ok", "viewer": 403}
# Tenant-wide admin routes: the outsider is an admin too, of its own tenant, which it may manage.
TENANT_ADMIN = {**dict.fromkeys(CALLERS, 403), "admin": "ok", "outsider": "ok"}
# A built-in user of the tenant: only its admins manage it; for another tenant it does not exist.
USER_ADMIN = {**dict.fromkeys(CALLERS, 403), "admin": "ok", "outsider": 404}
# The owner's API key: its creator and the tenant's admins see and revoke it; to anyone else it
# does not exist.
OWN_KEY = {**dict.fromkeys(CALLERS, 404), "admin": "ok", "owner": "ok"}
# Reading the viewer's personal view (its rows included): its owner and admins only.
VIEWERS_OWN = {**dict.fromkeys(CALLERS, 404), "admin": "ok", "viewer": "ok"}


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
    # Login and refresh take no token: whatever bearer token is sent is ignored, and the body
    # alone decides (here a built-in user's good password and a live refresh token).
    Row(
        "POST",
        "/api/auth/login",
        "/api/auth/login",
        ANYONE,
        200,
        {"email": "{user_email}", "password": PASSWORD, "tenant": "{tenant}"},
    ),
    Row(
        "POST", "/api/auth/refresh", "/api/auth/refresh", ANYONE, 200, {"refreshToken": "{refresh}"}
    ),
    Row("GET", "/api/auth/me", "/api/auth/me", ANYONE, 200),
    Row(
        "POST",
        "/api/auth/logout",
        "/api/auth/logout",
        ANYONE,
        204,
        {"refreshToken": "rt_" + "0" * 43},
    ),
    Row("GET", "/api/users", "/api/users", TENANT_ADMIN, 200),
    Row(
        "POST",
        "/api/users",
        "/api/users",
        TENANT_ADMIN,
        201,
        {"email": "new-{fresh}@example.com", "password": PASSWORD, "role": "user"},
    ),
    Row("PUT", "/api/users/{user_id}", "/api/users/{user}", USER_ADMIN, 200, {"role": "builder"}),
    Row("GET", "/api/api-keys", "/api/api-keys", ANYONE, 200),
    Row("POST", "/api/api-keys", "/api/api-keys", ANYONE, 201, {"name": "ci", "role": "user"}),
    Row("GET", "/api/audit", "/api/audit", TENANT_ADMIN, 200),
    Row("GET", "/api/organization/members", "/api/organization/members", ANYONE, 200),
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
    Row(
        "POST",
        "/api/panels/{panel_id}/datasources/{source_id}/sync",
        "/api/panels/{panel}/datasources/{file_source}/sync",
        EDIT,
        202,
    ),
    Row(
        "POST",
        "/api/datasources/{source_id}/sync",
        "/api/datasources/{file_source}/sync",
        EDIT,
        202,
    ),
    Row(
        "GET",
        "/api/panels/{panel_id}/datasources/{source_id}/sync-jobs",
        "/api/panels/{panel}/datasources/{file_source}/sync-jobs",
        READ,
        200,
    ),
    Row(
        "GET",
        "/api/datasources/{source_id}/sync-jobs",
        "/api/datasources/{file_source}/sync-jobs",
        READ,
        200,
    ),
    Row("GET", "/api/sync-jobs/{job_id}", "/api/sync-jobs/{job}", READ, 200),
    Row(
        "POST",
        "/api/panels/{panel_id}/datasources/{source_id}/records",
        "/api/panels/{panel}/datasources/{source1}/records",
        EDIT,
        200,
        [{"id": "r1", "k": "r1"}],  # source1's keyField is `k` by now
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
    Row(
        "GET", "/api/panels/{panel_id}/rows", "/api/panels/{panel}/rows?sort=score:desc", READ, 200
    ),
    Row("GET", "/api/views/{view_id}/rows", "/api/views/{view}/rows", READ, 200),
    Row("GET", "/api/views/{view_id}/rows", "/api/views/{viewers_view}/rows", VIEWERS_OWN, 200),
    Row("GET", "/api/views/{view_id}/rows.csv", "/api/views/{view}/rows.csv", READ, 200),
    Row(
        "GET",
        "/api/views/{view_id}/rows.csv",
        "/api/views/{viewers_view}/rows.csv",
        VIEWERS_OWN,
        200,
    ),
    Row("POST", "/api/views/{view_id}/publish", "/api/views/{view}/publish", EDIT, 200),
    Row("POST", "/api/views/{view_id}/unpublish", "/api/views/{view}/unpublish", EDIT, 200),
    Row(
        "POST",
        "/api/views/{view_id}/publish",
        "/api/views/{viewers_view}/publish",
        PUBLISH_AS_PANEL_VIEWER,
        200,
    ),
    Row(
        "POST",
        "/api/views/{view_id}/unpublish",
        "/api/views/{viewers_view}/unpublish",
        PUBLISH_AS_PANEL_VIEWER,
        200,
    ),
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
        SHARE,
        201,
        {"userEmail": "new@example.com", "permission": "viewer"},
    ),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}",
        "/api/acls/view/{view}",
        SHARE,
        201,
        {"userEmail": "new@example.com", "permission": "editor"},
    ),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}",
        "/api/acls/panel/{panel}",
        OWN,
        201,
        {"userEmail": "boss@example.com", "permission": "owner"},
    ),
    Row(
        "PUT",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/spare@example.com",
        SHARE,
        200,
        {"permission": "editor"},
    ),
    Row(
        "PUT",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/spare2@example.com",
        OWN,
        200,
        {"permission": "owner"},
    ),
    Row(
        "PUT",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/co@example.com",
        OWN,
        200,
        {"permission": "editor"},
    ),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}/share-public",
        "/api/acls/view/{view}/share-public",
        SHARE,
        "public",
        {"permission": "viewer"},
    ),
    Row(
        "POST",
        "/api/acls/{resource_type}/{resource_id}/share-public",
        "/api/acls/panel/{panel}/share-public",
        OWN,
        "public",
        {"permission": "owner"},
    ),
    Row(
        "DELETE",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/spare@example.com",
        SHARE,
        204,
    ),
    Row(
        "DELETE",
        "/api/acls/{resource_type}/{resource_id}/{user_email}",
        "/api/acls/panel/{panel}/co2@example.com",
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
    Row("DELETE", "/api/api-keys/{key_id}", "/api/api-keys/{key}", OWN_KEY, 204),
    Row("DELETE", "/api/users/{user_id}", "/api/users/{user}", USER_ADMIN, 204),
]


def test_every_route_has_a_row(app: Litestar) -> None:
    documented = set(api_operations(app.openapi_schema.to_schema()))
    assert documented == {(row.method, row.path) for row in ROWS}


async def resources_for(
    client: Client, owner: Caller, viewer: Caller, public: bool
) -> dict[str, Any]:
    """A panel with sources, columns and views, shared as the table's callers need."""

    async def post(url: str, body: Any, caller: Caller = owner) -> dict[str, Any]:
        response = await client.post(url, json=body, headers=caller.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    panel = (await post("/api/panels", {"name": "Shared"}))["id"]
    base = f"/api/panels/{panel}"
    source1 = (await post(f"{base}/datasources", {"type": "custom", "config": {}}))["id"]
    source2 = (await post(f"{base}/datasources", {"type": "custom", "config": {}}))["id"]
    file_config = {"format": "csv", "content": "id\n1\n"}
    file_source = (await post(f"{base}/datasources", {"type": "file", "config": file_config}))["id"]
    job = await client.post(f"/api/datasources/{file_source}/sync", headers=owner.headers)
    assert job.status_code == 202, job.text
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
    for user, permission in (
        ("spare@example.com", "viewer"),
        ("spare2@example.com", "viewer"),
        ("co@example.com", "owner"),
        ("co2@example.com", "owner"),
    ):
        await post(f"/api/acls/panel/{panel}", {"userEmail": user, "permission": permission})
    viewers_view = (await post("/api/views", {"panelId": panel, "name": "Vi's"}, viewer))["id"]
    return {
        "panel": panel,
        "source1": source1,
        "source2": source2,
        "file_source": file_source,
        "job": job.json()["jobId"],
        "spare_column": spare_column,
        "view": view,
        "viewers_view": viewers_view,
    }


async def identity_for(client: Client, admin: Caller, owner: Caller) -> dict[str, Any]:
    """A built-in user with a live refresh token, and an API key of the owner's."""
    user = await add_user(client, admin)
    key = await client.post(
        "/api/api-keys", json={"name": "o", "role": "user"}, headers=owner.headers
    )
    assert key.status_code == 201, key.text
    return {
        "user": user.id,
        "user_email": user.email,
        "tenant": admin.tenant,
        "refresh": (await login(client, user.email))["refreshToken"],
        "key": key.json()["id"],
        "fresh": uuid.uuid4().hex[:12],
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


async def warm_every_cache(client: Client, admin: Caller, values: dict[str, Any]) -> None:
    """An admin reads every readable route, so each cached read has an entry to serve."""
    for row in ROWS:
        if row.method == "GET":
            await client.get(fill(row.url, values), headers=admin.headers)
    for route in ("", "/sorts", "/filters"):  # the viewer's view, which no row reads
        await client.get(f"/api/views/{values['viewers_view']}{route}", headers=admin.headers)


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("kind", CALLERS)
async def test_each_caller_gets_exactly_the_status_of_the_table(
    client: Client, make_caller: CallerFactory, kind: str, cache: str
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
    values = await resources_for(client, owner, callers["viewer"], public=kind == "everyone")
    values.update(await identity_for(client, callers["admin"], owner))
    values["me"] = caller.email
    if cache == "warm":
        await warm_every_cache(client, callers["admin"], values)
        columns = f"/api/panels/{values['panel']}/columns"
        assert (await client.get(columns, headers=callers["admin"].headers)).headers[
            "x-cache"
        ] == "HIT"  # the warming did fill the cache
    outcomes = []
    for row in ROWS:
        url = fill(row.url, values)
        if cache == "warm" and row.method == "GET":  # writes since the warming may have evicted it
            await client.get(url, headers=callers["admin"].headers)
        expected = row.rule[kind]
        if expected == "ok":
            expected = 201 if row.ok == "public" else row.ok
        response = await client.request(
            row.method, url, json=fill(row.body, values), headers=caller.headers
        )
        if response.status_code != expected:
            outcomes.append(
                (row.method, url, expected, response.status_code, response.headers.get("x-cache"))
            )
    assert outcomes == [], outcomes


async def test_own_grant_listing_includes_grants_to_everyone(
    client: Client, builder: Caller, member: Caller, admin: Caller, create_panel: Any, share: Any
) -> None:
    """`GET /api/acls/user/{email}` lists the `_all` grants that apply to that user, for the
    user and for an admin asking about them (admin rights)."""
    panel = await create_panel(builder)
    await share(builder, "panel", panel["id"])
    for caller in (member, admin):
        listed = await client.get(
            f"/api/acls/user/{member.email}",
            params={"resourceType": "panel"},
            headers=caller.headers,
        )
        assert listed.status_code == 200, listed.text
        assert [(g["resourceId"], g["userEmail"]) for g in listed.json()["acls"]] == [
            (panel["id"], "_all")
        ]
