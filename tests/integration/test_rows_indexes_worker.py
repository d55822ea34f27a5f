"""The index job end to end: a worker builds a view's sort index after the PUT commits, and
drops it once the view is deleted; servers' workers run the job."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.platform.jobs import Worker, postgres_dsn
from panels.rows.indexes import INDEX_ENTRYPOINT, INDEX_PREFIX, index_kind
from panels.sync.worker import sync_worker
from tests.conftest import Caller, Services

Client = AsyncTestClient[Litestar]


async def _indexes_once(services: Services, panel_id: int, count: int) -> list[str]:
    """The panel's indexes once there are `count` of them (within 20 s)."""
    connection = await asyncpg.connect(postgres_dsn(services.database_url))
    try:
        for _ in range(200):
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


def test_a_servers_worker_runs_index_jobs(app: Litestar) -> None:
    kinds = sync_worker(app.state.runtime)._kinds
    assert INDEX_ENTRYPOINT in [kind.entrypoint for kind in kinds]


async def test_a_worker_builds_and_drops_a_views_sort_index(
    app: Litestar, client: Client, services: Services, builder: Caller, create_panel: Any
) -> None:
    # A worker of index jobs only: jobs other tests left queued (syncs) do not hold it up.
    worker = Worker(services.database_url, [index_kind(app.state.runtime)])
    worker.start()
    try:
        panel = await create_panel(builder)
        base = f"/api/panels/{panel['id']}"
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
            "/api/views", json={"panelId": panel["id"], "name": "Oldest"}, headers=builder.headers
        )
        assert view.status_code == 201, view.text
        view_url = f"/api/views/{view.json()['id']}"
        response = await client.put(
            f"{view_url}/sorts",
            json={"sorts": [{"columnName": "Age", "direction": "desc"}]},
            headers=builder.headers,
        )
        assert response.status_code == 200, response.text
        await _indexes_once(services, panel["id"], 1)
        response = await client.delete(view_url, headers=builder.headers)
        assert response.status_code == 204, response.text
        assert await _indexes_once(services, panel["id"], 0) == []
    finally:
        await worker.close()
