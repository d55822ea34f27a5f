"""Permissions hold for cached reads as for uncached ones, and the rules API.md revised.

Cached tests warm the cache as someone who may read (an admin or the owner), then ask as
someone who may not: the answer must be the uncached one. (Grants removed and published views
gone: test_sharing.py and test_views.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller, CallerFactory

Client = AsyncTestClient[Litestar]
CACHED_READS = ("", "/columns", "/datasources")
PANEL_READS = (*CACHED_READS, "/changes")


async def _warm(client: Client, caller: Caller, panel_id: int) -> None:
    for suffix in CACHED_READS:
        response = await client.get(f"/api/panels/{panel_id}{suffix}", headers=caller.headers)
        assert response.status_code == 200, (suffix, response.text)
        response = await client.get(f"/api/panels/{panel_id}{suffix}", headers=caller.headers)
        assert response.headers["x-cache"] == "HIT", suffix


async def _assert_hidden(client: Client, caller: Caller, panel_id: int) -> None:
    for suffix in PANEL_READS:
        response = await client.get(f"/api/panels/{panel_id}{suffix}", headers=caller.headers)
        assert response.status_code == 404, (suffix, response.status_code, response.text)
        assert response.json()["message"] == "Panel not found"
    listed = await client.get("/api/panels", headers=caller.headers)
    assert panel_id not in [p["id"] for p in listed.json()]


@pytest.mark.parametrize("warmed_by", ["admin", "owner"])
async def test_a_cached_list_is_not_served_to_a_caller_without_a_grant(
    client: Client,
    create_panel: Any,
    add_source_and_column: Any,
    builder: Caller,
    member: Caller,
    make_caller: CallerFactory,
    warmed_by: str,
) -> None:
    panel = dict(await create_panel(builder, name="Cached"))
    await add_source_and_column(builder, panel["id"])
    await _warm(
        client, make_caller("ada", "admin") if warmed_by == "admin" else builder, panel["id"]
    )
    await _assert_hidden(client, member, panel["id"])


async def test_a_panel_viewer_cannot_publish_and_so_widen_access(
    client: Client,
    create_panel: Any,
    add_source_and_column: Any,
    builder: Caller,
    member: Caller,
    make_caller: CallerFactory,
    share: Any,
) -> None:
    panel = dict(await create_panel(builder, name="Cached"))
    await add_source_and_column(builder, panel["id"])
    await share(builder, "panel", panel["id"], member.email, "viewer")
    own_view = await client.post(
        "/api/views", json={"panelId": panel["id"], "name": "Mine"}, headers=member.headers
    )
    assert own_view.status_code == 201
    refused = await client.post(
        f"/api/views/{own_view.json()['id']}/publish", headers=member.headers
    )
    assert refused.status_code == 403
    await _assert_hidden(client, make_caller("dan", "user"), panel["id"])


async def test_change_records_about_a_private_view_stay_private(
    client: Client,
    create_panel: Any,
    add_source_and_column: Any,
    builder: Caller,
    member: Caller,
    make_caller: CallerFactory,
    share: Any,
) -> None:
    panel = dict(await create_panel(builder, name="Cached"))
    await add_source_and_column(builder, panel["id"])
    await share(builder, "panel", panel["id"])  # everyone may read the panel
    private = await client.post(
        "/api/views",
        json={"panelId": panel["id"], "name": "Secret triage", "metadata": {"note": "private"}},
        headers=member.headers,
    )
    view_id = private.json()["id"]
    await client.put(f"/api/views/{view_id}", json={"name": "Still secret"}, headers=member.headers)
    await client.post(
        f"/api/acls/view/{view_id}",
        json={"userEmail": "friend@example.com", "permission": "viewer"},
        headers=member.headers,
    )

    def about_the_view(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            c
            for c in changes
            if (c["entityType"] == "view" and c["entityId"] == view_id)
            or f"view {view_id}:" in c["description"]
        ]

    colleague = make_caller("dan", "user")
    for url in (f"/api/panels/{panel['id']}/changes", "/api/changes/panels"):
        seen = (await client.get(url, headers=colleague.headers)).json()
        assert about_the_view(seen["changes"]) == [], url
        assert "Secret" not in str(seen)
        own = (await client.get(url, headers=member.headers)).json()["changes"]
        assert len(about_the_view(own)) == 3, url  # created, renamed, shared
        admin = (await client.get(url, headers=make_caller("ada", "admin").headers)).json()
        assert len(about_the_view(admin["changes"])) == 3, url
    friend = make_caller("fay", "user", email="friend@example.com")
    shared = (await client.get("/api/changes/panels", headers=friend.headers)).json()["changes"]
    assert len(about_the_view(shared)) == 3


async def test_editors_share_as_viewer_or_editor_but_never_touch_owner_grants(
    client: Client,
    create_panel: Any,
    builder: Caller,
    member: Caller,
    share: Any,
) -> None:
    panel = dict(await create_panel(builder, name="Shared"))
    await share(builder, "panel", panel["id"], member.email, "editor")
    url = f"/api/acls/panel/{panel['id']}"

    async def as_editor(method: str, path: str = "", body: Any = None) -> int:
        response = await client.request(method, url + path, json=body, headers=member.headers)
        return response.status_code

    assert (
        await as_editor("POST", "", {"userEmail": "v@example.com", "permission": "viewer"}) == 201
    )
    assert await as_editor("PUT", "/v@example.com", {"permission": "editor"}) == 200
    assert await as_editor("PUT", "/v@example.com", {"permission": "owner"}) == 403
    assert await as_editor("POST", "", {"userEmail": "o@example.com", "permission": "owner"}) == 403
    # The owner's grant: neither changed nor removed by an editor (403 before the 409 rule).
    assert await as_editor("PUT", f"/{builder.email}", {"permission": "viewer"}) == 403
    assert await as_editor("DELETE", f"/{builder.email}") == 403
    assert await as_editor("POST", "/share-public", {"permission": "viewer"}) == 201
    assert await as_editor("POST", "/share-public", {"permission": "owner"}) == 403
    assert await as_editor("DELETE", "/v@example.com") == 204


async def test_a_users_grants_include_those_to_everyone(
    client: Client,
    create_panel: Any,
    builder: Caller,
    member: Caller,
    share: Any,
) -> None:
    panel = dict(await create_panel(builder, name="Shared"))
    await share(builder, "panel", panel["id"])
    mine = (await client.get(f"/api/acls/user/{member.email}", headers=member.headers)).json()
    assert [(a["resourceId"], a["userEmail"]) for a in mine["acls"]] == [(panel["id"], "_all")]
