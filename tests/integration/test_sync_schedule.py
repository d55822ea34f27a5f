"""Scheduled syncs: a source with `config.syncIntervalMinutes` is queued once that long has
passed since its last run, never while a run is queued or running, and only when complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.app import create_app
from panels.platform.db import owner_engine
from panels.platform.runtime import Runtime
from panels.sync.schedule import queue_due_syncs
from tests.conftest import Caller, Services, build_settings
from tests.integration.sync_helpers import Client, create_source


@pytest.fixture(scope="module")
async def private_client(services: Services) -> AsyncIterator[Client]:
    app: Litestar = create_app(build_settings(services, ALLOW_PRIVATE_SOURCES="true"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
async def runtime(services: Services) -> AsyncIterator[Runtime]:
    """A runtime used on the test's own event loop (no server, no worker)."""
    built: Runtime = create_app(build_settings(services)).state.runtime
    yield built
    await built.db.get_engine().dispose()
    await built.redis.aclose()


async def _runs(client: Client, owner: Caller, source_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/api/datasources/{source_id}/sync-jobs", headers=owner.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def _age_runs(services: Services, source_id: int, minutes: int) -> None:
    """Finish the source's runs `minutes` ago."""
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE sync_run SET status = 'success',"
                    " created_at = now() - make_interval(mins => :m) WHERE datasource_id = :s"
                ),
                {"m": minutes, "s": source_id},
            )
    finally:
        await engine.dispose()


async def test_a_source_is_synced_every_interval(
    private_client: Client, runtime: Runtime, services: Services, builder: Caller
) -> None:
    panel = (
        await private_client.post("/api/panels", json={"name": "Ward"}, headers=builder.headers)
    ).json()["id"]
    url = "http://127.0.0.1:9/patients"
    scheduled = await create_source(
        private_client, builder, panel, "api", {"url": url, "syncIntervalMinutes": 5}
    )
    unscheduled = await create_source(private_client, builder, panel, "api", {"url": url})
    incomplete = await create_source(
        private_client, builder, panel, "api", {"syncIntervalMinutes": 5}
    )
    too_often = await private_client.post(
        f"/api/panels/{panel}/datasources",
        json={"type": "api", "config": {"url": url, "syncIntervalMinutes": 4}},
        headers=builder.headers,
    )
    assert too_often.status_code == 400
    assert too_often.json()["details"][0]["field"] == "body.config.syncIntervalMinutes"

    sources_url = f"/api/panels/{panel}/datasources"
    for _ in range(2):  # cached now
        await private_client.get(sources_url, headers=builder.headers)
    await queue_due_syncs(runtime)
    [run] = await _runs(private_client, builder, scheduled["id"])
    assert run["status"] == "queued"
    listed = (await private_client.get(sources_url, headers=builder.headers)).json()
    assert {s["id"]: s["syncStatus"] for s in listed}[scheduled["id"]] == "queued"
    assert await _runs(private_client, builder, unscheduled["id"]) == []
    assert await _runs(private_client, builder, incomplete["id"]) == []

    await queue_due_syncs(runtime)  # still queued: not a second one
    assert len(await _runs(private_client, builder, scheduled["id"])) == 1

    await _age_runs(services, scheduled["id"], 4)  # finished 4 minutes ago: not yet due
    await queue_due_syncs(runtime)
    assert len(await _runs(private_client, builder, scheduled["id"])) == 1

    await _age_runs(services, scheduled["id"], 6)
    await queue_due_syncs(runtime)
    runs = await _runs(private_client, builder, scheduled["id"])
    assert [r["status"] for r in runs] == ["queued", "success"]
