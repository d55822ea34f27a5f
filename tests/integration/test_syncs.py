"""Syncs (API.md, "Panel data (rows)"): the routes, the job queue, and file sources, with a
worker running in the app's process as under `panels serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.app import create_app
from panels.platform.db import owner_engine
from tests.conftest import Caller, Services, build_settings
from tests.integration.sync_helpers import Client, create_source, stored_keys, wait_for_job

PATIENTS = [{"id": "p1", "name": "Ada"}, {"id": "p2", "name": "Bo"}, {"id": "p3", "name": "Cy"}]


@pytest.fixture(scope="module")
async def sync_app(services: Services) -> Litestar:
    return create_app(
        build_settings(
            services,
            IN_PROCESS_WORKER="true",
            JOB_HEARTBEAT_SECONDS="2",
            SYNC_RETRY_MS="50",
        )
    )


@pytest.fixture(scope="module")
async def sync_client(sync_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=sync_app, raise_server_exceptions=False) as client:
        yield client


async def _panel(client: Client, owner: Caller) -> int:
    response = await client.post("/api/panels", json={"name": "Ward"}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _file_source(client: Client, owner: Caller, panel_id: int, **config: Any) -> int:
    config = {"format": "json", "content": msgspec.json.encode(PATIENTS).decode(), **config}
    return int((await create_source(client, owner, panel_id, "file", config))["id"])


@pytest.mark.parametrize(
    ("form", "content"),
    [
        ("json", msgspec.json.encode(PATIENTS).decode()),
        ("ndjson", "\n".join(msgspec.json.encode(p).decode() for p in PATIENTS) + "\n"),
        ("csv", "id,name\np1,Ada\np2,Bo\np3,Cy\n"),
    ],
)
async def test_a_file_sync_brings_the_records_in(
    sync_client: Client, services: Services, builder: Caller, form: str, content: str
) -> None:
    panel = await _panel(sync_client, builder)
    source = await _file_source(sync_client, builder, panel, format=form, content=content)
    started = await sync_client.post(
        f"/api/panels/{panel}/datasources/{source}/sync", headers=builder.headers
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body == {
        "jobId": body["jobId"],
        "datasourceId": source,
        "status": "queued",
        "syncStatus": "queued",
    }
    assert started.headers["location"] == f"/api/sync-jobs/{body['jobId']}"
    job = await wait_for_job(sync_client, builder, body["jobId"])
    assert job["status"] == "success", job
    assert (job["recordsProcessed"], job["recordsInserted"], job["progress"]) == (3, 3, 1)
    assert (job["attempts"], job["error"], job["panelId"]) == (1, None, panel)
    assert job["startedAt"] is not None
    assert job["finishedAt"] is not None
    assert await stored_keys(services, source) == ["p1", "p2", "p3"]
    sources = await sync_client.get(f"/api/panels/{panel}/datasources", headers=builder.headers)
    [shown] = sources.json()
    assert shown["syncStatus"] == "success"
    assert shown["lastSync"] is not None


async def test_wait_answers_with_the_source_and_the_outcome(
    sync_client: Client, services: Services, builder: Caller
) -> None:
    panel = await _panel(sync_client, builder)
    source = await _file_source(sync_client, builder, panel)
    first = await sync_client.post(
        f"/api/datasources/{source}/sync", params={"wait": "true"}, headers=builder.headers
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["id"], body["type"]) == (source, "file")
    assert (body["status"], body["syncStatus"], body["message"]) == ("success", "success", None)
    assert (body["recordsProcessed"], body["recordsInserted"], body["recordsDeleted"]) == (3, 3, 0)
    assert isinstance(body["durationMs"], int)
    # A full sync replaces: p3 is gone from the content, so it is deleted; p2 changed.
    content = msgspec.json.encode([PATIENTS[0], {"id": "p2", "name": "Bea"}]).decode()
    changed = await sync_client.put(
        f"/api/datasources/{source}",
        json={"config": {"format": "json", "content": content}},
        headers=builder.headers,
    )
    assert changed.status_code == 200, changed.text
    second = await sync_client.post(
        f"/api/datasources/{source}/sync", params={"wait": "1"}, headers=builder.headers
    )
    body = second.json()
    assert (body["recordsProcessed"], body["recordsInserted"]) == (2, 0)
    assert (body["recordsUpdated"], body["recordsDeleted"]) == (1, 1)
    assert await stored_keys(services, source) == ["p1", "p2"]
    listed = await sync_client.get(
        f"/api/panels/{panel}/datasources/{source}/sync-jobs", headers=builder.headers
    )
    assert listed.status_code == 200
    assert listed.headers["x-total-count"] == "2"
    assert [j["recordsDeleted"] for j in listed.json()] == [1, 0]  # newest first
    page = await sync_client.get(
        f"/api/datasources/{source}/sync-jobs",
        params={"limit": 1, "offset": 1},
        headers=builder.headers,
    )
    assert [j["recordsDeleted"] for j in page.json()] == [0]
    assert page.headers["x-total-count"] == "2"


async def test_a_failing_source_keeps_the_last_good_records(
    sync_client: Client, services: Services, builder: Caller
) -> None:
    """Three attempts with backoff, then `error` naming the record; nothing half-written."""
    panel = await _panel(sync_client, builder)
    source = await _file_source(sync_client, builder, panel)
    good = await sync_client.post(
        f"/api/datasources/{source}/sync", params={"wait": "true"}, headers=builder.headers
    )
    assert good.json()["status"] == "success"
    # The second record has no key: nothing of this content may be written, p1's change neither.
    bad = msgspec.json.encode([{"id": "p1", "name": "changed"}, {"name": "no key"}]).decode()
    await sync_client.put(
        f"/api/datasources/{source}",
        json={"config": {"format": "json", "content": bad}},
        headers=builder.headers,
    )
    failed = await sync_client.post(
        f"/api/datasources/{source}/sync", params={"wait": "true"}, headers=builder.headers
    )
    body = failed.json()
    assert (failed.status_code, body["status"], body["syncStatus"]) == (200, "error", "error")
    assert "config.content[1]" in body["message"], body["message"]
    job = (
        await sync_client.get(f"/api/datasources/{source}/sync-jobs", headers=builder.headers)
    ).json()[0]
    assert (job["attempts"], job["status"], job["progress"]) == (3, "error", 1)
    assert await stored_keys(services, source) == ["p1", "p2", "p3"]
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            name = await connection.scalar(
                text("SELECT record->>'name' FROM source_record WHERE source_id = :s AND key='p1'"),
                {"s": source},
            )
    finally:
        await engine.dispose()
    assert name == "Ada"


async def test_deleting_a_synced_source_frees_its_records_in_the_background(
    sync_client: Client, services: Services, builder: Caller
) -> None:
    panel = await _panel(sync_client, builder)
    kept = await _file_source(sync_client, builder, panel)
    dropped = await _file_source(sync_client, builder, panel)
    other_panel = await _panel(sync_client, builder)
    with_panel = await _file_source(sync_client, builder, other_panel)
    for source in (kept, dropped, with_panel):
        synced = await sync_client.post(
            f"/api/datasources/{source}/sync", params={"wait": "true"}, headers=builder.headers
        )
        assert synced.json()["status"] == "success"
    deleted = await sync_client.delete(f"/api/datasources/{dropped}", headers=builder.headers)
    assert deleted.status_code == 204
    deleted = await sync_client.delete(f"/api/panels/{other_panel}", headers=builder.headers)
    assert deleted.status_code == 204
    for _ in range(100):
        if not await stored_keys(services, dropped) and not await stored_keys(services, with_panel):
            break
        await asyncio.sleep(0.1)
    assert await stored_keys(services, dropped) == []
    assert await stored_keys(services, with_panel) == []
    assert await stored_keys(services, kept) == ["p1", "p2", "p3"]
