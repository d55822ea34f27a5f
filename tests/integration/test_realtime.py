"""The realtime stream across processes: two `panels serve` sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from panels.platform.realtime import tenant_channel
from tests.conftest import TEST_SECRET, Caller, CallerFactory, Services
from tests.integration.test_faults import failing_commit  # noqa: F401  (fixture)

Client = AsyncTestClient[Litestar]
PANELS = Path(sys.executable).parent / "panels"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def servers(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two server processes on their own ports, one PostgreSQL and one Redis between them,
    each running a sync worker as `panels serve` does."""
    environment = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT": "0",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "PANELS_DATA_DIR": str(tmp_path_factory.mktemp("servers")),
    }
    ports = [free_port(), free_port()]
    # Logs go to files, not pipes: a pipe nobody reads fills up and then blocks the server.
    log_paths = [tmp_path_factory.mktemp("logs") / f"server-{port}.log" for port in ports]
    processes = [
        subprocess.Popen(
            [str(PANELS), "serve", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"),
        )
        for port, log_path in zip(ports, log_paths, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process, log_path in zip(urls, processes, log_paths, strict=True):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/api/ws"


async def next_of(ws: Any, kind: str, within: float = 5.0) -> dict[str, Any]:
    """The next message of this type (skipping heartbeats and acknowledgements)."""
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return dict(message)


async def nothing_of(ws: Any, kind: str, wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        await next_of(ws, kind, within=wait)


@pytest.fixture
async def rest(servers: list[str]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=servers[0]) as a,
        httpx.AsyncClient(base_url=servers[1]) as b,
    ):
        yield [a, b]


async def test_a_change_through_one_process_reaches_a_socket_on_the_other(
    servers: list[str], rest: list[httpx.AsyncClient], builder: Caller, make_caller: CallerFactory
) -> None:
    a, _ = rest
    panel = (await a.post("/api/panels", json={"name": "Live"}, headers=builder.headers)).json()
    column = (
        await a.post(
            f"/api/panels/{panel['id']}/columns/base",
            json={"name": "Status", "type": "text"},
            headers=builder.headers,
        )
    ).json()
    ann = make_caller("ann", "user")
    await a.post(f"/api/acls/panel/{panel['id']}/share-public", json={}, headers=builder.headers)
    view = (
        await a.post(
            "/api/views",
            json={"panelId": panel["id"], "name": "Ann's", "visibleColumns": [column["id"]]},
            headers=ann.headers,
        )
    ).json()

    async with (
        websockets.connect(ws_url(servers[1]), subprotocols=["bearer", builder.token]) as watcher,
        websockets.connect(ws_url(servers[1])) as ann_socket,
    ):  # type: ignore[list-item]
        await ann_socket.send(json.dumps({"type": "auth", "token": ann.token}))
        await watcher.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]]}))
        assert (await next_of(watcher, "subscribed"))["panelIds"] == [panel["id"]]
        await ann_socket.send(json.dumps({"type": "ping"}))
        await next_of(ann_socket, "pong")

        renamed = await a.put(
            f"/api/panels/{panel['id']}/columns/{column['id']}",
            json={"name": "State"},
            headers=builder.headers,
        )
        assert renamed.status_code == 200
        change = await next_of(watcher, "change")
        assert change["panelId"] == panel["id"]
        assert change["change"]["changeType"] == "column_modified"
        assert change["change"]["affectedColumn"] == "State"
        notification = await next_of(ann_socket, "notification")
        assert notification["notification"]["viewId"] == view["id"]
        assert notification["notification"]["impact"] == "info"
        await nothing_of(ann_socket, "change", wait=0.5)  # Ann subscribed to no panel


async def test_resume_since_a_change_id(
    servers: list[str], rest: list[httpx.AsyncClient], builder: Caller
) -> None:
    a, _ = rest
    panel = (await a.post("/api/panels", json={"name": "Resume"}, headers=builder.headers)).json()
    for name in ("one", "two", "three"):
        await a.put(f"/api/panels/{panel['id']}", json={"name": name}, headers=builder.headers)
    history = (await a.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)).json()[
        "changes"
    ]
    since = history[2]["id"]  # the first rename
    async with websockets.connect(ws_url(servers[1]), subprotocols=["bearer", builder.token]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]], "since": since}))
        replayed = [await next_of(ws, "change") for _ in range(2)]
    assert [e["change"]["id"] for e in replayed] == [history[1]["id"], history[0]["id"]]


async def test_nothing_from_another_tenant_or_an_unknown_panel(
    servers: list[str], rest: list[httpx.AsyncClient], builder: Caller, outsider: Caller
) -> None:
    a, _ = rest
    panel = (await a.post("/api/panels", json={"name": "Private"}, headers=builder.headers)).json()
    async with websockets.connect(
        ws_url(servers[1]), subprotocols=["bearer", outsider.token]
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]]}))
        error = await next_of(ws, "error")
        assert error["panelIds"] == [panel["id"]]
        assert (await next_of(ws, "subscribed"))["panelIds"] == []
        await a.put(
            f"/api/panels/{panel['id']}", json={"name": "Still private"}, headers=builder.headers
        )
        await nothing_of(ws, "change")


async def test_nothing_from_a_panel_of_the_tenant_the_caller_cannot_read(
    servers: list[str], rest: list[httpx.AsyncClient], builder: Caller, member: Caller
) -> None:
    a, _ = rest
    panel = (
        await a.post("/api/panels", json={"name": "Not shared"}, headers=builder.headers)
    ).json()
    async with websockets.connect(ws_url(servers[1]), subprotocols=["bearer", member.token]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "subscribe", "panelIds": [panel["id"]], "since": 0}))
        assert (await next_of(ws, "error"))["panelIds"] == [panel["id"]]
        await a.put(
            f"/api/panels/{panel['id']}", json={"name": "Still not shared"}, headers=builder.headers
        )
        await nothing_of(ws, "change")


async def test_sockets_without_a_valid_token_are_closed(servers: list[str]) -> None:
    for first in (
        '{"type": "subscribe", "panelIds": [1]}',
        '{"type": "auth", "token": "nope"}',
        "not json",
    ):
        async with websockets.connect(ws_url(servers[1])) as ws:
            await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401


async def test_a_rolled_back_change_is_never_announced(
    client: Client,
    services: Services,
    builder: Caller,
    failing_commit: None,  # noqa: F811
) -> None:
    redis = Redis.from_url(services.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(tenant_channel(builder.tenant))
    try:
        assert await pubsub.get_message(timeout=1)  # the subscription's confirmation
        failed = await client.post("/api/panels", json={"name": "explode"}, headers=builder.headers)
        assert failed.status_code == 500
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is None
        created = await client.post("/api/panels", json={"name": "fine"}, headers=builder.headers)
        assert created.status_code == 201
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message is not None
        event = json.loads(message["data"])
        assert event["type"] == "change"
        assert event["change"]["newValues"]["name"] == "fine"
    finally:
        await pubsub.aclose()
        await redis.aclose()
