"""The sync routes without a worker: jobs stay queued, so what the routes write can be checked
as it is (dedup, the transaction, refusals, who may do what)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import bind_tenant, owner_engine, request_engine
from panels.platform.jobs import enqueue
from panels.sync.entities import SyncRun
from tests.conftest import Caller, CallerFactory, Services
from tests.integration.sync_helpers import Client, create_source

PATIENTS = [{"id": "p1", "name": "Ada"}]


async def _panel(client: Client, owner: Caller) -> int:
    response = await client.post("/api/panels", json={"name": "Ward"}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _file_source(client: Client, owner: Caller, panel_id: int) -> int:
    config = {"format": "json", "content": msgspec.json.encode(PATIENTS).decode()}
    return int((await create_source(client, owner, panel_id, "file", config))["id"])


async def test_one_sync_per_source_at_a_time(
    client: Client, builder: Caller, services: Services
) -> None:
    """Concurrent requests (no worker here, so the job stays queued) all get the same job."""
    panel = await _panel(client, builder)
    source = await _file_source(client, builder, panel)
    responses = await asyncio.gather(
        *(client.post(f"/api/datasources/{source}/sync", headers=builder.headers) for _ in range(6))
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["jobId"] for r in responses}) == 1
    listed = await client.get(f"/api/datasources/{source}/sync-jobs", headers=builder.headers)
    assert listed.headers["x-total-count"] == "1"
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            jobs = await connection.scalar(
                text("SELECT count(*) FROM pgqueuer WHERE dedupe_key = :k"),
                {"k": f"sync:{builder.tenant}:{source}"},
            )
    finally:
        await engine.dispose()
    assert jobs == 1


async def test_a_rolled_back_request_leaves_neither_run_nor_job(
    client: Client, builder: Caller, services: Services
) -> None:
    panel = await _panel(client, builder)
    source = await _file_source(client, builder, panel)
    run_id = uuid.uuid4()
    request_db = request_engine(services.database_url, pool_size=1)
    async with AsyncSession(request_db) as session:
        bind_tenant(session, builder.tenant)
        session.add(
            SyncRun(
                id=run_id,
                tenant_id=builder.tenant,
                panel_id=panel,
                datasource_id=source,
                status="queued",
                progress=0.0,
                records_processed=0,
                records_inserted=0,
                records_updated=0,
                records_deleted=0,
                attempts=0,
                created_at=datetime.now(UTC),
            )
        )
        await session.flush()
        job_id = await enqueue(session, "test.rolled-back", b"x", dedupe_key=f"rb:{run_id}")
        assert job_id is not None
        await session.rollback()
    await request_db.dispose()
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            jobs = await connection.scalar(
                text("SELECT count(*) FROM pgqueuer WHERE id = :j"), {"j": job_id}
            )
            runs = await connection.scalar(
                text("SELECT count(*) FROM sync_run WHERE id = :r"), {"r": run_id}
            )
    finally:
        await engine.dispose()
    assert (jobs, runs) == (0, 0)


@pytest.mark.parametrize(
    ("source_type", "config", "field"),
    [
        ("custom", {}, "type"),
        ("api", {"method": "GET"}, "config.url"),
        ("database", {"keyField": "mrn"}, "config.url"),
        ("file", {"format": "csv"}, "config.content"),
    ],
)
async def test_a_source_that_cannot_sync_is_a_400_naming_why(
    client: Client, builder: Caller, source_type: str, config: dict[str, Any], field: str
) -> None:
    panel = await _panel(client, builder)
    source = (await create_source(client, builder, panel, source_type, config))["id"]
    for url in (
        f"/api/panels/{panel}/datasources/{source}/sync",
        f"/api/datasources/{source}/sync",
    ):
        response = await client.post(url, headers=builder.headers)
        assert response.status_code == 400, response.text
        assert [d["field"] for d in response.json()["details"]] == [field]
    listed = await client.get(f"/api/datasources/{source}/sync-jobs", headers=builder.headers)
    assert listed.json() == []


async def test_viewers_read_syncs_and_others_see_nothing(
    client: Client,
    builder: Caller,
    member: Caller,
    outsider: Caller,
    make_caller: CallerFactory,
    share: Any,
) -> None:
    panel = await _panel(client, builder)
    source = await _file_source(client, builder, panel)
    await share(builder, "panel", panel, member.email, "viewer")
    stranger = make_caller("sam", "user")
    job = (await client.post(f"/api/datasources/{source}/sync", headers=builder.headers)).json()
    routes = {
        "start": ("POST", f"/api/panels/{panel}/datasources/{source}/sync"),
        "start by id": ("POST", f"/api/datasources/{source}/sync"),
        "job": ("GET", f"/api/sync-jobs/{job['jobId']}"),
        "list": ("GET", f"/api/panels/{panel}/datasources/{source}/sync-jobs"),
        "list by id": ("GET", f"/api/datasources/{source}/sync-jobs"),
    }
    expected = {
        member: {"start": 403, "start by id": 403, "job": 200, "list": 200, "list by id": 200},
        stranger: dict.fromkeys(routes, 404),
        outsider: dict.fromkeys(routes, 404),
    }
    for caller, statuses in expected.items():
        for name, (method, url) in routes.items():
            response = await client.request(method, url, headers=caller.headers)
            assert response.status_code == statuses[name], (caller.user, name, response.text)
            if response.status_code == 404:
                assert "Ada" not in response.text
    # A panel id that is not the source's own hides the source.
    other = await _panel(client, builder)
    wrong = await client.post(
        f"/api/panels/{other}/datasources/{source}/sync", headers=builder.headers
    )
    assert wrong.status_code == 404


async def test_a_job_id_that_is_not_a_uuid_is_a_400_or_404(client: Client, builder: Caller) -> None:
    for job_id in ("nope", "1", str(uuid.uuid4())):
        response = await client.get(f"/api/sync-jobs/{job_id}", headers=builder.headers)
        assert response.status_code in (400, 404), response.text


async def test_sync_jobs_list_pages_newest_first_with_the_total(
    client: Client, builder: Caller, services: Services
) -> None:
    panel = await _panel(client, builder)
    source = await _file_source(client, builder, panel)
    run_ids = [uuid.uuid4() for _ in range(3)]
    request_db = request_engine(services.database_url, pool_size=1)
    try:
        async with AsyncSession(request_db) as session:
            bind_tenant(session, builder.tenant)
            for hour, run_id in enumerate(run_ids):
                session.add(
                    SyncRun(
                        id=run_id,
                        tenant_id=builder.tenant,
                        panel_id=panel,
                        datasource_id=source,
                        status="success",
                        progress=1.0,
                        records_processed=0,
                        records_inserted=0,
                        records_updated=0,
                        records_deleted=0,
                        attempts=1,
                        created_at=datetime(2026, 1, 1, hour, tzinfo=UTC),
                    )
                )
            await session.commit()
    finally:
        await request_db.dispose()
    url = f"/api/panels/{panel}/datasources/{source}/sync-jobs"
    pages = {}
    for offset in (0, 2, 5):
        listed = await client.get(
            url, params={"limit": 2, "offset": offset}, headers=builder.headers
        )
        assert listed.status_code == 200, listed.text
        assert listed.headers["x-total-count"] == "3"
        pages[offset] = [job["jobId"] for job in listed.json()]
    assert pages == {0: [str(run_ids[2]), str(run_ids[1])], 2: [str(run_ids[0])], 5: []}
