"""API.md's Conventions on every resource, not only panels: an `ETag` on every `GET` (lists
included) and on every response that returns one resource, 304 on `If-None-Match`, 412 on a
stale `If-Match` (after the permission checks), `Location` on created grants, and the
`POST /api/views` rules (`name` required, an unreadable panel is a 404)."""

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
STALE = '"0123456789abcdef0123456789abcdef"'
# Writes that change no single resource, so take no If-Match.
NOT_A_RESOURCE = {("PUT", "/api/notifications/views/mark-read")}
# Lists only a tenant's admins may read; the ETag test reads them as one.
ADMIN_ONLY_GETS = {"/api/users", "/api/audit"}
# A streamed export: an ETag would need the whole file before its first byte (it is written as
# it streams, in constant memory), and it holds TODAY()/NOW() values of the moment.
STREAMED = {"/api/views/{view_id}/rows.csv"}


@dataclass
class World:
    """A panel with a data source, two columns and a view, all owned by `owner`; `viewer`
    holds viewer grants on the panel and the view, and so does `spare@example.com` on the
    panel (the grant the tests change); `stranger` (same tenant) holds none."""

    owner: Caller
    viewer: Caller
    stranger: Caller
    admin: Caller
    panel: int
    source: int
    column: int
    view: int
    job: str  # a sync job of a file source of the panel


async def post(client: Client, caller: Caller, url: str, body: Any) -> Any:
    response = await client.post(url, json=body, headers=caller.headers)
    assert response.status_code in (200, 201), response.text
    return response


@pytest.fixture
async def world(client: Client, make_caller: CallerFactory) -> World:
    owner = make_caller("olga", "builder", email="olga@example.com")
    viewer = make_caller("vic", "user", email="vic@example.com")
    stranger = make_caller("sam", "user", email="sam@example.com")
    panel = (await post(client, owner, "/api/panels", {"name": "Ward"})).json()["id"]
    base = f"/api/panels/{panel}"
    source = await post(client, owner, f"{base}/datasources", {"type": "custom", "config": {}})
    column = await post(client, owner, f"{base}/columns/base", {"name": "score", "type": "number"})
    await post(client, owner, f"{base}/columns/base", {"name": "ward", "type": "text"})
    view = await post(client, owner, "/api/views", {"panelId": panel, "name": "Mine"})
    for kind, resource in (("panel", panel), ("view", view.json()["id"])):
        grant = {"userEmail": viewer.email, "permission": "viewer"}
        await post(client, owner, f"/api/acls/{kind}/{resource}", grant)
    spare = {"userEmail": "spare@example.com", "permission": "viewer"}
    await post(client, owner, f"/api/acls/panel/{panel}", spare)
    file_config = {"format": "csv", "content": "id\n1\n"}
    file_source = await post(
        client, owner, f"{base}/datasources", {"type": "file", "config": file_config}
    )
    job = await client.post(
        f"/api/datasources/{file_source.json()['id']}/sync", headers=owner.headers
    )
    assert job.status_code == 202, job.text
    return World(
        owner,
        viewer,
        stranger,
        make_caller("ada", "admin", email="ada@example.com"),
        panel,
        source.json()["id"],
        column.json()["id"],
        view.json()["id"],
        job.json()["jobId"],
    )


def url_of(path: str, world: World) -> str:
    values = {
        "panel_id": world.panel,
        "source_id": world.source,
        "column_id": world.column,
        "view_id": world.view,
        "resource_type": "panel",
        "resource_id": world.panel,
        "user_email": world.owner.email,
        "job_id": world.job,
    }
    for name in re.findall(r"{(\w+)}", path):
        assert name in values, f"{path}: add {name} to url_of"
    return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), path)


def is_strong_etag(value: str | None) -> bool:
    return value is not None and re.fullmatch(r'"[^"]+"', value) is not None


async def test_every_get_sends_an_etag_and_answers_if_none_match(
    client: Client, app: Litestar, world: World
) -> None:
    spec = app.openapi_schema.to_schema()
    gets = [path for method, path in api_operations(spec) if method == "GET"]
    assert len(gets) >= 12
    missing = []
    for path in gets:
        if path in STREAMED:
            continue
        url = url_of(path, world)
        reader = world.admin if path in ADMIN_ONLY_GETS else world.owner
        first = await client.get(url, headers=reader.headers)
        assert first.status_code == 200, (path, first.text)
        etag = first.headers.get("etag")
        if not is_strong_etag(etag):
            missing.append((path, "no ETag"))
            continue
        again = await client.get(url, headers={**reader.headers, "If-None-Match": etag})
        if again.status_code != 304 or again.headers.get("etag") != etag:
            missing.append((path, again.status_code))
    assert missing == []


async def test_a_list_etag_changes_with_the_list(client: Client, world: World) -> None:
    url = f"/api/acls/panel/{world.panel}"
    before = (await client.get(url, headers=world.owner.headers)).headers["etag"]
    await post(client, world.owner, url, {"userEmail": "new@example.com", "permission": "viewer"})
    after = await client.get(url, headers={**world.owner.headers, "If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before


@dataclass(frozen=True)
class Resource:
    """How to reach one kind of resource: `read` is the GET whose ETag `If-Match` compares
    (None where the contract has no GET of the single resource: then the ETag is the one its
    POST or PUT returned)."""

    name: str
    url: str
    read: str | None
    change: dict[str, Any]
    change_again: dict[str, Any]
    deletable: bool = True


RESOURCES = [
    Resource("panel", "/api/panels/{panel}", "/api/panels/{panel}", {"name": "a"}, {"name": "b"}),
    Resource("view", "/api/views/{view}", "/api/views/{view}", {"name": "a"}, {"name": "b"}),
    Resource(
        "sorts",
        "/api/views/{view}/sorts",
        "/api/views/{view}/sorts",
        {"sorts": [{"columnName": "score"}]},
        {"sorts": [{"columnName": "ward"}]},
        deletable=False,
    ),
    Resource(
        "filters",
        "/api/views/{view}/filters",
        "/api/views/{view}/filters",
        {"filters": [{"columnName": "score", "operator": "gt", "value": 1}]},
        {"filters": [{"columnName": "score", "operator": "gt", "value": 2}]},
        deletable=False,
    ),
    Resource("column", "/api/panels/{panel}/columns/{column}", None, {"name": "a"}, {"name": "b"}),
    Resource(
        "data source",
        "/api/panels/{panel}/datasources/{source}",
        None,
        {"config": {"keyField": "a"}},
        {"config": {"keyField": "b"}},
    ),
    Resource(
        "data source by id",
        "/api/datasources/{source}",
        None,
        {"config": {"keyField": "a"}},
        {"config": {"keyField": "b"}},
    ),
    Resource(
        "grant",
        "/api/acls/panel/{panel}/spare%40example.com",
        None,
        {"permission": "editor"},
        {"permission": "viewer"},
    ),
]


def filled(template: str, world: World) -> str:
    values = {
        "panel": world.panel,
        "view": world.view,
        "column": world.column,
        "source": world.source,
    }
    return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), template)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
async def test_a_stale_if_match_is_412_on_every_resource(
    client: Client, world: World, resource: Resource
) -> None:
    url = filled(resource.url, world)
    owner = world.owner.headers
    first = await client.put(url, json=resource.change, headers=owner)
    assert first.status_code == 200, first.text
    current = first.headers.get("etag")
    assert is_strong_etag(current)
    if resource.read is not None:
        read = await client.get(filled(resource.read, world), headers=owner)
        assert read.headers["etag"] == current, "a PUT's ETag is the one its GET sends"

    stale = await client.put(url, json=resource.change_again, headers={**owner, "If-Match": STALE})
    assert stale.status_code == 412, stale.text
    assert stale.json()["statusCode"] == 412
    # Permission comes first: who may not change it learns nothing from a stale If-Match.
    for caller, status in ((world.viewer, 403), (world.stranger, 404)):
        refused = await client.put(
            url, json=resource.change_again, headers={**caller.headers, "If-Match": STALE}
        )
        assert refused.status_code == status, (caller.user, refused.text)
        if resource.deletable:
            refused = await client.delete(url, headers={**caller.headers, "If-Match": STALE})
            assert refused.status_code == status, (caller.user, refused.text)

    matching = await client.put(
        url, json=resource.change_again, headers={**owner, "If-Match": current}
    )
    assert matching.status_code == 200, matching.text
    assert matching.headers["etag"] != current
    newest = matching.headers["etag"]
    if resource.deletable:
        assert (await client.delete(url, headers={**owner, "If-Match": current})).status_code == 412
        assert (await client.delete(url, headers={**owner, "If-Match": newest})).status_code == 204


async def test_every_resource_write_documents_if_match_and_412(app: Litestar) -> None:
    spec = app.openapi_schema.to_schema()
    undocumented = []
    for method, path in api_operations(spec):
        if method not in ("PUT", "DELETE") or (method, path) in NOT_A_RESOURCE:
            continue
        operation = spec["paths"][path][method.lower()]
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        if "412" not in operation["responses"] or "If-Match" not in headers:
            undocumented.append((method, path))
    assert undocumented == []


async def test_each_response_with_one_resource_carries_its_etag(
    client: Client, world: World
) -> None:
    owner = world.owner.headers
    view_url = f"/api/views/{world.view}"
    for action in ("publish", "unpublish"):
        response = await client.post(f"{view_url}/{action}", headers=owner)
        assert response.status_code == 200
        read = await client.get(view_url, headers=owner)
        assert response.headers["etag"] == read.headers["etag"]

    created = await client.post(
        f"/api/acls/view/{world.view}",
        json={"userEmail": "Pat@Example.com", "permission": "viewer"},
        headers=owner,
    )
    assert created.status_code == 201
    assert is_strong_etag(created.headers.get("etag"))
    # The ETag a POST returns is the one a later If-Match is compared with.
    grant_url = f"/api/acls/view/{world.view}/pat%40example.com"
    changed = await client.put(
        grant_url,
        json={"permission": "editor"},
        headers={**owner, "If-Match": created.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert is_strong_etag(changed.headers.get("etag"))

    public = f"/api/acls/view/{world.view}/share-public"
    first = await client.post(public, json={"permission": "viewer"}, headers=owner)
    second = await client.post(public, json={"permission": "editor"}, headers=owner)
    assert (first.status_code, second.status_code) == (201, 200)
    assert is_strong_etag(first.headers.get("etag"))
    assert is_strong_etag(second.headers.get("etag"))
    assert first.headers["etag"] != second.headers["etag"]


async def test_a_created_grant_has_a_location(client: Client, world: World) -> None:
    owner = world.owner.headers
    created = await client.post(
        f"/api/acls/panel/{world.panel}",
        json={"userEmail": "New.One@Example.com", "permission": "viewer"},
        headers=owner,
    )
    assert created.status_code == 201
    location = created.headers.get("location")
    assert location == f"/api/acls/panel/{world.panel}/new.one%40example.com"
    moved = await client.put(location, json={"permission": "editor"}, headers=owner)
    assert moved.status_code == 200
    assert moved.json()["acl"]["userEmail"] == "new.one@example.com"

    public = await client.post(
        f"/api/acls/panel/{world.panel}/share-public", json={"permission": "viewer"}, headers=owner
    )
    assert public.status_code == 201
    assert public.headers.get("location") == f"/api/acls/panel/{world.panel}/_all"
    again = await client.post(
        f"/api/acls/panel/{world.panel}/share-public", json={"permission": "editor"}, headers=owner
    )
    assert again.status_code == 200
    assert "location" not in again.headers


async def test_a_view_needs_a_name(client: Client, world: World) -> None:
    response = await client.post(
        "/api/views", json={"panelId": world.panel}, headers=world.owner.headers
    )
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == ["body.name"]


@pytest.mark.parametrize("who", ["stranger", "missing panel"])
async def test_a_view_of_a_panel_the_caller_cannot_read_is_404(
    client: Client, world: World, who: str
) -> None:
    caller = world.stranger if who == "stranger" else world.owner
    panel = world.panel if who == "stranger" else 987654321
    response = await client.post(
        "/api/views", json={"panelId": panel, "name": "x"}, headers=caller.headers
    )
    assert response.status_code == 404, response.text
    assert response.json()["message"] == "Panel not found"


@pytest.mark.parametrize(
    "resource", [r for r in RESOURCES if not r.deletable], ids=lambda r: r.name
)
async def test_the_same_sorts_or_filters_again_change_nothing(
    client: Client, world: World, resource: Resource
) -> None:
    """A PUT that changes nothing returns the resource as its GET does, ids included."""
    url = filled(resource.url, world)
    first = await client.put(url, json=resource.change, headers=world.owner.headers)
    again = await client.put(url, json=resource.change, headers=world.owner.headers)
    read = await client.get(url, headers=world.owner.headers)
    assert again.json() == read.json() == first.json()
    assert again.headers["etag"] == read.headers["etag"] == first.headers["etag"]
