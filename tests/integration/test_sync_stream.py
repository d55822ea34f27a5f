"""A finished sync reaches the realtime subscribers of its panel, and only them, across
processes (two `panels serve`, each running its own worker, as in test_realtime)."""

from __future__ import annotations

import json

import httpx
import msgspec
import websockets

from tests.conftest import Caller
from tests.integration.test_realtime import (  # noqa: F401  (fixtures)
    next_of,
    nothing_of,
    rest,
    servers,
    ws_url,
)


async def test_a_finished_sync_is_announced_to_the_panels_subscribers(
    servers: list[str],  # noqa: F811
    rest: list[httpx.AsyncClient],  # noqa: F811
    builder: Caller,
) -> None:
    a, _b = rest
    synced, other = [
        (await a.post("/api/panels", json={"name": name}, headers=builder.headers)).json()["id"]
        for name in ("Synced", "Other")
    ]
    content = msgspec.json.encode([{"id": 1}, {"id": 2}]).decode()
    source = (
        await a.post(
            f"/api/panels/{synced}/datasources",
            json={"type": "file", "config": {"format": "json", "content": content}},
            headers=builder.headers,
        )
    ).json()["id"]
    protocols = ["bearer", builder.token]
    async with (
        websockets.connect(ws_url(servers[1]), subprotocols=protocols) as watching,  # type: ignore[arg-type]
        websockets.connect(ws_url(servers[1]), subprotocols=protocols) as elsewhere,  # type: ignore[arg-type]
    ):
        for ws, panel in ((watching, synced), (elsewhere, other)):
            await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel]}))
            assert (await next_of(ws, "subscribed"))["panelIds"] == [panel]
        finished = await a.post(
            f"/api/datasources/{source}/sync",
            params={"wait": "true"},
            headers=builder.headers,
            timeout=70,
        )
        assert finished.status_code == 200, finished.text
        event = await next_of(watching, "rows")
        await nothing_of(elsewhere, "rows")
    jobs = await a.get(f"/api/datasources/{source}/sync-jobs", headers=builder.headers)
    assert event == {
        "type": "rows",
        "panelId": synced,
        "datasourceId": source,
        "jobId": jobs.json()[0]["jobId"],
        "status": "success",
    }
