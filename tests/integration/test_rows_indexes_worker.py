"""The index job end to end: a server's own worker builds a view's sort index after the PUT
commits, and drops it once the view is deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from panels.platform.jobs import postgres_dsn
from panels.rows.indexes import INDEX_PREFIX
from tests.conftest import Caller, Services, build_settings

Client = AsyncTestClient[Litestar]


@pytest.fixture(scope="module")
async def worker_client(services: Services) -> AsyncIterator[Client]:
    app = create_app(build_settings(services, IN_PROCESS_WORKER="true"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


async def _indexes_once(services: Services, panel_id: int, count: int) -> list[str]:
    """The panel's indexes once there are `count` of them (within 60 s: after the whole
    suite, the worker may first run jobs other tests left queued)."""
    connection = await asyncpg.connect(postgres_dsn(services.database_url))
    try:
        for _ in range(600):
            rows = await connection.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'panel_row'"
                " AND indexname LIKE $1",
                f"{INDEX_PREFIX}{panel_id}\\_%",
            )
            if len(rows) == count:
                return [row["indexname"] for row in rows]
            await asyncio.sleep(0.1)
        raise AssertionError(f"panel {panel_id} has {len(rows)} indexes, not {count}")
    finally:
        await connection.close()


async def test_the_servers_worker_builds_and_drops_a_views_sort_index(
    worker_client: Client, services: Services, builder: Caller
) -> None:
    client = worker_client
    panel = await client.post("/api/panels", json={"name": "Ward"}, headers=builder.headers)
    assert panel.status_code == 201, panel.text
    panel_id = panel.json()["id"]
    base = f"/api/panels/{panel_id}"
    source = await client.post(
        f"{base}/datasources", json={"type": "custom", "config": {}}, headers=builder.headers
    )
    column = await client.post(
        f"{base}/columns/base",
        json={"name": "Age", "type": "number", "sourceField": "age"},
        headers=builder.headers,
    )
    assert source.status_code == column.status_code == 201, (source.text, column.text)
    view = await client.post(
        "/api/views", json={"panelId": panel_id, "name": "Oldest"}, headers=builder.headers
    )
    assert view.status_code == 201, view.text
    view_url = f"/api/views/{view.json()['id']}"
    response = await client.put(
        f"{view_url}/sorts",
        json={"sorts": [{"columnName": "Age", "direction": "desc"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    await _indexes_once(services, panel_id, 1)
    response = await client.delete(view_url, headers=builder.headers)
    assert response.status_code == 204, response.text
    assert await _indexes_once(services, panel_id, 0) == []
