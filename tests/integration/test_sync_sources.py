"""`api` and `database` sources against servers the test runs on this machine (allowed by
ALLOW_PRIVATE_SOURCES in this app's settings), with a worker in the app's process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from panels.app import create_app
from panels.platform.realtime import tenant_channel
from tests.conftest import Caller, Services, build_settings
from tests.integration.sync_helpers import (
    Client,
    SourceServer,
    create_source,
    stored_keys,
    wait_for_job,
)


@pytest.fixture(scope="module")
async def sources_client(services: Services) -> AsyncIterator[Client]:
    app: Litestar = create_app(
        build_settings(
            services,
            IN_PROCESS_WORKER="true",
            JOB_HEARTBEAT_SECONDS="2",
            SYNC_RETRY_MS="50",
            ALLOW_PRIVATE_SOURCES="true",
        )
    )
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def server() -> Iterator[SourceServer]:
    running = SourceServer()
    yield running
    running.close()


def _json(status: int, body: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, msgspec.json.encode(body)


async def _sync(client: Client, owner: Caller, source_id: int) -> dict[str, Any]:
    response = await client.post(
        f"/api/datasources/{source_id}/sync", params={"wait": "true"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _panel(client: Client, owner: Caller) -> int:
    response = await client.post("/api/panels", json={"name": "Ward"}, headers=owner.headers)
    return int(response.json()["id"])


async def test_an_api_source_follows_link_pages_with_its_headers(
    sources_client: Client, services: Services, builder: Caller, server: SourceServer
) -> None:
    seen_tokens: list[str | None] = []

    def first(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        seen_tokens.append(handler.headers.get("X-Api-Key"))
        items = [{"mrn": "a"}, {"mrn": "b"}]
        return _json(200, {"data": {"items": items}}, Link='</second>; rel="next"')

    server.routes["/first"] = first
    server.routes["/second"] = lambda _: _json(200, {"data": {"items": [{"mrn": "c"}]}})
    panel = await _panel(sources_client, builder)
    source = await create_source(
        sources_client,
        builder,
        panel,
        "api",
        {
            "url": server.url("/first"),
            "itemsPath": "data.items",
            "keyField": "mrn",
            "headers": {"X-Api-Key": "s3cret"},
        },
    )
    body = await _sync(sources_client, builder, source["id"])
    assert (body["status"], body["recordsProcessed"]) == ("success", 3), body
    assert body["config"]["headers"] == {"X-Api-Key": "***"}
    assert seen_tokens == ["s3cret"]
    assert await stored_keys(services, source["id"]) == ["a", "b", "c"]


async def test_an_api_source_follows_a_cursor(
    sources_client: Client, services: Services, builder: Caller, server: SourceServer
) -> None:
    def page(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        after = parse_qs(urlsplit(handler.path).query).get("after")
        if after is None:
            return _json(200, {"rows": [{"id": 1}, {"id": 2}], "meta": {"next": "two"}})
        assert after == ["two"]
        return _json(200, {"rows": [{"id": 3}], "meta": {"next": None}})

    server.routes["/patients"] = page
    panel = await _panel(sources_client, builder)
    config = {
        "url": server.url("/patients"),
        "itemsPath": "rows",
        "nextCursorPath": "meta.next",
        "cursorParam": "after",
    }
    source = await create_source(sources_client, builder, panel, "api", config)
    assert source["config"]["nextCursorPath"] == "meta.next"
    body = await _sync(sources_client, builder, source["id"])
    assert (body["status"], body["recordsInserted"]) == ("success", 3), body
    assert await stored_keys(services, source["id"]) == ["1", "2", "3"]
    assert len(server.requests) == 2


async def test_a_source_answering_errors_is_retried_then_reported(
    sources_client: Client, services: Services, builder: Caller, server: SourceServer
) -> None:
    answers = iter([_json(200, [{"id": "x"}]), *[_json(503, {})] * 3])
    server.routes["/flaky"] = lambda _: next(answers)
    panel = await _panel(sources_client, builder)
    source = await create_source(
        sources_client, builder, panel, "api", {"url": server.url("/flaky")}
    )
    assert (await _sync(sources_client, builder, source["id"]))["status"] == "success"
    failed = await _sync(sources_client, builder, source["id"])
    assert (failed["status"], failed["message"]) == ("error", "the source answered HTTP 503")
    assert len(server.requests) == 4  # one good sync, then three attempts
    assert await stored_keys(services, source["id"]) == ["x"]


async def test_a_finished_sync_is_announced_to_the_panel(
    sources_client: Client, services: Services, builder: Caller
) -> None:
    panel = await _panel(sources_client, builder)
    content = msgspec.json.encode([{"id": 1}]).decode()
    source = await create_source(
        sources_client, builder, panel, "file", {"format": "json", "content": content}
    )
    redis = Redis.from_url(services.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(tenant_channel(builder.tenant))
    try:
        body = await _sync(sources_client, builder, source["id"])
        events = []
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline and not events:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message and b'"rows"' in message["data"]:
                events.append(msgspec.json.decode(message["data"]))
    finally:
        await pubsub.aclose()
        await redis.aclose()
    [event] = events
    jobs = await sources_client.get(
        f"/api/datasources/{source['id']}/sync-jobs", headers=builder.headers
    )
    assert event == {
        "type": "rows",
        "panelId": panel,
        "datasourceId": source["id"],
        "jobId": jobs.json()[0]["jobId"],
        "status": body["status"],
    }


@contextlib.contextmanager
def tcp_to_unix(socket_path: str) -> Iterator[int]:
    """A TCP port on 127.0.0.1 forwarding to a unix socket (the test PostgreSQL listens on a
    socket only; a `database` source takes a host). Threads, not the test's event loop: the
    app under test runs on a loop of its own."""

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    class Forward(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(socket_path)
            back = threading.Thread(target=pipe, args=(upstream, self.request), daemon=True)
            back.start()
            pipe(self.request, upstream)
            back.join()
            upstream.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


async def test_a_database_source_reads_one_select_in_batches(
    sources_client: Client, services: Services, builder: Caller
) -> None:
    parts = urlsplit(services.database_url)
    socket_dir = parse_qs(parts.query)["host"][0]
    database = parts.path.lstrip("/")
    with tcp_to_unix(f"{socket_dir}/.s.PGSQL.{parts.port or 5432}") as port:
        url = f"postgresql://{parts.username}@127.0.0.1:{port}/{database}"
        panel = await _panel(sources_client, builder)
        query = (
            "SELECT 'mrn-' || n AS mrn, n AS score, now() AS seen FROM generate_series(1, 12001) n"
        )
        source = await create_source(
            sources_client,
            builder,
            panel,
            "database",
            {"url": url, "query": query, "keyField": "mrn"},
        )
        body = await _sync(sources_client, builder, source["id"])
        assert (body["status"], body["recordsInserted"]) == ("success", 12001), body
        # The session is read-only whatever the query calls.
        writes = "SELECT nextval('panel_id_seq') AS id"
        await sources_client.put(
            f"/api/datasources/{source['id']}",
            json={"config": {"url": url, "query": writes}},
            headers=builder.headers,
        )
        refused = await _sync(sources_client, builder, source["id"])
    assert refused["status"] == "error"
    assert "ReadOnlySQLTransactionError" in refused["message"], refused["message"]
    assert len(await stored_keys(services, source["id"])) == 12001


async def test_a_running_sync_shows_its_progress(
    sources_client: Client, builder: Caller, server: SourceServer
) -> None:
    """The first page is written while the second is still on its way: the job says so."""
    second_page = threading.Event()

    def late(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        second_page.wait(20)
        return _json(200, [{"id": "c"}])

    server.routes["/first"] = lambda _: _json(
        200, [{"id": "a"}, {"id": "b"}], Link="</late>; rel=next"
    )
    server.routes["/late"] = late
    panel = await _panel(sources_client, builder)
    source = await create_source(
        sources_client, builder, panel, "api", {"url": server.url("/first")}
    )
    job = (
        await sources_client.post(f"/api/datasources/{source['id']}/sync", headers=builder.headers)
    ).json()
    try:
        seen = []
        for _ in range(200):
            current = (
                await sources_client.get(f"/api/sync-jobs/{job['jobId']}", headers=builder.headers)
            ).json()
            seen.append((current["status"], current["recordsProcessed"]))
            if current["recordsProcessed"] == 2:
                break
            await asyncio.sleep(0.05)
        assert seen[-1] == ("running", 2), seen
        assert current["progress"] == 0  # an api source's total is not known
    finally:
        second_page.set()
    finished = await wait_for_job(sources_client, builder, job["jobId"])
    assert (finished["status"], finished["recordsProcessed"], finished["progress"]) == (
        "success",
        3,
        1,
    )
