"""The realtime stream keeps to the caller's access as it changes: grants removed, tokens
expiring, and views the caller may not read (two `panels serve` processes, as in
test_realtime)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

from panels.platform.auth import mint_token
from panels.platform.db import owner_engine
from panels.settings import Settings
from tests.conftest import Caller, CallerFactory, Services
from tests.integration.test_realtime import (  # noqa: F401  (fixtures)
    next_of,
    nothing_of,
    rest,
    servers,
    ws_url,
)


async def received(ws: Any, wait: float = 1.0) -> list[dict[str, Any]]:
    """Every message that arrives until `wait` seconds pass without one."""
    messages = []
    with contextlib.suppress(TimeoutError):
        while True:
            async with asyncio.timeout(wait):
                messages.append(json.loads(await ws.recv()))
    return messages


def about_views(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    changes = [m["change"] for m in messages if m["type"] == "change"]
    return [c for c in changes if c["entityType"] == "view" or c["changeType"] == "view_updated"]


async def test_a_viewer_whose_grant_is_removed_is_told_and_gets_nothing_more(
    servers: list[str],  # noqa: F811
    rest: list[httpx.AsyncClient],  # noqa: F811
    builder: Caller,
    member: Caller,
) -> None:
    a, b = rest
    panel = (await a.post("/api/panels", json={"name": "Shared"}, headers=builder.headers)).json()
    url = f"/api/panels/{panel['id']}"
    granted = await a.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": member.email, "permission": "viewer"},
        headers=builder.headers,
    )
    assert granted.status_code == 201
    async with websockets.connect(ws_url(servers[1]), subprotocols=["bearer", member.token]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]]}))
        assert (await next_of(ws, "subscribed"))["panelIds"] == [panel["id"]]
        await a.put(url, json={"name": "Before"}, headers=builder.headers)
        assert (await next_of(ws, "change"))["change"]["newValues"]["name"] == "Before"

        removed = await a.delete(
            f"/api/acls/panel/{panel['id']}/{member.email}", headers=builder.headers
        )
        assert removed.status_code == 204
        # Right behind the revocation, through the other process: no time for a recheck to
        # win a race by luck.
        await b.put(url, json={"name": "After"}, headers=builder.headers)
        messages = await received(ws)
    errors = [m for m in messages if m["type"] == "error"]
    assert errors == [
        {
            "type": "error",
            "message": "Panel no longer readable",
            "panelIds": [panel["id"]],
            "reason": "revoked",
        }
    ]
    renames = [m["change"]["newValues"] for m in messages if m["type"] == "change"]
    assert {"name": "After"} not in renames


async def test_nothing_is_delivered_between_a_revocation_and_its_recheck(
    servers: list[str],  # noqa: F811
    rest: list[httpx.AsyncClient],  # noqa: F811
    services: Services,
    admin: Caller,
    member: Caller,
) -> None:
    """The recheck is held up by a lock; what comes after the revocation waits for it."""
    a, b = rest
    panel = (await a.post("/api/panels", json={"name": "Held"}, headers=admin.headers)).json()
    await a.post(
        f"/api/acls/panel/{panel['id']}",
        json={"userEmail": member.email, "permission": "viewer"},
        headers=admin.headers,
    )
    engine = owner_engine(services.database_url)
    try:
        async with websockets.connect(
            ws_url(servers[1]), subprotocols=["bearer", member.token]
        ) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]]}))
            await next_of(ws, "subscribed")
            async with engine.connect() as owner:
                # A member's recheck reads panel_view; an admin's revocation and rename do not.
                await owner.execute(text("LOCK TABLE panel_view IN ACCESS EXCLUSIVE MODE"))
                removed = await a.delete(
                    f"/api/acls/panel/{panel['id']}/{member.email}", headers=admin.headers
                )
                assert removed.status_code == 204
                renamed = await b.put(
                    f"/api/panels/{panel['id']}", json={"name": "After"}, headers=admin.headers
                )
                assert renamed.status_code == 200
                await nothing_of(ws, "change")
                await owner.rollback()
            messages = await received(ws)
    finally:
        await engine.dispose()
    assert [m["reason"] for m in messages if m["type"] == "error"] == ["revoked"]
    assert [m for m in messages if m["type"] == "change"] == []


async def test_a_socket_is_closed_when_its_token_expires(
    servers: list[str],  # noqa: F811
    settings: Settings,
    tenant: str,
) -> None:
    token = mint_token(
        settings.jwt, tenant=tenant, user="dora", email="dora@example.com", ttl=timedelta(seconds=2)
    )
    async with websockets.connect(ws_url(servers[1]), subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "ping"}))
        await next_of(ws, "pong")
        with pytest.raises(ConnectionClosed) as closed:
            await next_of(ws, "never sent", within=6.0)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


async def test_a_member_who_reads_the_panel_gets_nothing_about_a_private_view(
    servers: list[str],  # noqa: F811
    rest: list[httpx.AsyncClient],  # noqa: F811
    builder: Caller,
    member: Caller,
    make_caller: CallerFactory,
) -> None:
    a, _ = rest
    dave = make_caller("dave", "user")
    panel = (await a.post("/api/panels", json={"name": "Ward"}, headers=builder.headers)).json()
    await a.post(
        f"/api/acls/panel/{panel['id']}/share-public",
        json={"permission": "viewer"},
        headers=builder.headers,
    )
    view = (
        await a.post(
            "/api/views",
            json={"panelId": panel["id"], "name": "Bob's private", "visibleColumns": []},
            headers=builder.headers,
        )
    ).json()
    view_url = f"/api/views/{view['id']}"
    view_grants = f"/api/acls/view/{view['id']}"
    await a.put(view_url, json={"metadata": {"note": "secret"}}, headers=builder.headers)
    await a.post(
        view_grants, json={"userEmail": dave.email, "permission": "viewer"}, headers=builder.headers
    )
    await a.put(
        f"{view_grants}/{dave.email}", json={"permission": "editor"}, headers=builder.headers
    )

    subscribe = {"type": "subscribe", "panelIds": [panel["id"]], "since": 0}
    async with (
        websockets.connect(ws_url(servers[1]), subprotocols=["bearer", member.token]) as ws,  # type: ignore[list-item]
        websockets.connect(ws_url(servers[1]), subprotocols=["bearer", dave.token]) as grantee,  # type: ignore[list-item]
    ):
        await ws.send(json.dumps(subscribe))
        await grantee.send(json.dumps(subscribe))
        replayed = await received(ws)
        assert {"panel_created", "panel_updated"} <= {
            m["change"]["changeType"] for m in replayed if m["type"] == "change"
        }
        assert about_views(replayed) == []
        # Dave, who may read the view, sees its creation, update, and both grant records.
        assert len(about_views(await received(grantee))) == 4

        await a.put(view_url, json={"metadata": {"note": "more secret"}}, headers=builder.headers)
        await a.post(
            view_grants,
            json={"userEmail": "erin@example.com", "permission": "viewer"},
            headers=builder.headers,
        )
        await a.put(f"/api/panels/{panel['id']}", json={"name": "Ward 8"}, headers=builder.headers)
        live = await received(ws)
        assert [m["change"]["newValues"] for m in live if m["type"] == "change"] == [
            {"name": "Ward 8"}
        ]
        assert len(about_views(await received(grantee))) == 2
