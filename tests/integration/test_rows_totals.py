"""Stored totals (`rows.totals`): the recount job counts each saved view's rows and the
panel's, a page miss reads the stored total of the current rows version instead of counting,
and a change of the rows makes it count again until the job has run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from panels.platform.db import owner_engine, request_engine
from panels.platform.jobs import Worker
from panels.rows.recount import recount_kind, recount_totals
from panels.rows.totals import RECOUNT_ENTRYPOINT
from panels.sync.worker import sync_worker
from tests.conftest import Caller, Services
from tests.integration.rows_world import Client, RowsWorld, rows_world

PATIENTS = [{"mrn": f"p{n}", "name": f"N{n}", "age": n, "ward": "AB"[n % 2]} for n in range(1, 9)]
WARD_A = [{"columnName": "Ward", "operator": "eq", "value": "A"}]


@pytest.fixture
async def world(client: Client, builder: Caller) -> RowsWorld:
    world = await rows_world(client, builder, sources=1)
    await world.base("Name", "text", "name")
    await world.base("Age", "number", "age")
    await world.base("Ward", "text", "ward")
    await world.push(world.sources[0], PATIENTS)
    return world


async def _owner(services: Services, statement: str, **values: Any) -> list[Any]:
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), values)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _stored(services: Services, panel: int) -> list[tuple[int, int]]:
    """(version, total) of each total stored for the panel, by total."""
    rows = await _owner(
        services, "SELECT version, total FROM panel_row_total WHERE panel_id = :p", p=panel
    )
    return sorted((row.version, row.total) for row in rows)


@pytest.fixture
async def engine(services: Services) -> AsyncIterator[AsyncEngine]:
    """The request engine, in the tests' loop (the app's runs in the test client's)."""
    engine = request_engine(services.database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _recount(engine: AsyncEngine, world: RowsWorld) -> int:
    return await recount_totals(engine, world.owner.tenant, world.panel)


async def test_the_job_stores_each_views_total_and_the_panels_once_per_version(
    world: RowsWorld, engine: AsyncEngine, services: Services
) -> None:
    await world.view(["Name"], filters=WARD_A)
    await world.view(["Name"], filters=WARD_A, name="Same filters, one count")
    await world.view(["Name", "Age"], name="No filters: the panel's count")
    assert await _recount(engine, world) == 2
    [(version, _), _] = await _stored(services, world.panel)
    assert await _stored(services, world.panel) == [(version, 4), (version, 8)]
    assert await _recount(engine, world) == 0  # every total is current

    await world.push(world.sources[0], [{"mrn": "p9", "name": "N9", "age": 9, "ward": "A"}])
    assert await _recount(engine, world) == 2
    # Totals of the older version are gone with it.
    assert await _stored(services, world.panel) == [(version + 1, 5), (version + 1, 9)]


async def test_a_page_miss_reads_the_stored_total_while_its_version_is_current(
    world: RowsWorld, engine: AsyncEngine, services: Services
) -> None:
    view = await world.view(["Name"], filters=WARD_A)
    await _recount(engine, world)
    # Changed behind the service's back, the stored totals are what pages show: pages read
    # them, not a count.
    await _owner(
        services, "UPDATE panel_row_total SET total = 999 WHERE panel_id = :p", p=world.panel
    )
    assert (await world.rows(f"/api/views/{view}/rows", limit=2))["total"] == 999
    assert (await world.rows(f"/api/panels/{world.panel}/rows", limit=2))["total"] == 999
    # Other filters have no stored total: counted.
    older = '[{"columnName": "Age", "operator": "gt", "value": 6}]'
    filtered = await world.rows(f"/api/panels/{world.panel}/rows", limit=2, filter=older)
    assert filtered["total"] == 2

    # A push raises the rows version in its transaction: from its commit on, the stored
    # totals are not read, and pages count until the job has counted again.
    await world.push(world.sources[0], [{"mrn": "p3", "name": "N3", "age": 3, "ward": "A"}])
    assert (await world.rows(f"/api/views/{view}/rows", limit=2))["total"] == 5
    assert (await world.rows(f"/api/panels/{world.panel}/rows", limit=2))["total"] == 8
    assert await _recount(engine, world) == 2


async def test_a_change_of_what_decides_a_count_is_another_count(
    world: RowsWorld, engine: AsyncEngine, services: Services
) -> None:
    view = await world.view(["Name"], filters=WARD_A)
    await _recount(engine, world)
    await _owner(
        services, "UPDATE panel_row_total SET total = 999 WHERE panel_id = :p", p=world.panel
    )
    ward_b = [{"columnName": "Ward", "operator": "eq", "value": "B"}]
    await world.call("PUT", f"/api/views/{view}/filters", {"filters": ward_b})
    assert (await world.rows(f"/api/views/{view}/rows", limit=2))["total"] == 4
    await world.call("PUT", f"/api/panels/{world.panel}", {"cohortRule": _cohort_age_over(2)})
    assert (await world.rows(f"/api/views/{view}/rows", limit=2))["total"] == 3
    assert (await world.rows(f"/api/panels/{world.panel}/rows", limit=2))["total"] == 6
    assert await _recount(engine, world) == 2
    # Totals of the earlier shapes stay: true for those shapes while the rows are unchanged
    # (found again if the filters go back), and forgotten with this version.
    assert [total for _, total in await _stored(services, world.panel)] == [3, 6, 999, 999]


def _cohort_age_over(age: int) -> dict[str, Any]:
    return {"logic": "AND", "conditions": [{"field": "Age", "operator": "gt", "value": age}]}


async def test_a_count_that_reads_the_clock_is_never_stored(
    world: RowsWorld, engine: AsyncEngine, services: Services
) -> None:
    await world.calculated("Seen", "date", "TODAY()")
    await world.view(["Name"], filters=[{"columnName": "Seen", "operator": "isNotNull"}])
    assert await _recount(engine, world) == 1  # the panel's total only
    assert [total for _, total in await _stored(services, world.panel)] == [8]


async def _queued_recounts(services: Services, panel: int) -> list[Any]:
    """The recounts of the panel waiting in the queue (when each may start)."""
    rows = await _owner(
        services,
        "SELECT payload, execute_after FROM pgqueuer WHERE entrypoint = :e AND status = 'queued'",
        e=RECOUNT_ENTRYPOINT,
    )
    return [
        row.execute_after for row in rows if msgspec.json.decode(row.payload)["panelId"] == panel
    ]


async def test_changes_of_counts_queue_one_recount_per_panel_and_other_changes_none(
    world: RowsWorld, services: Services
) -> None:
    await _owner(
        services,
        "DELETE FROM pgqueuer WHERE entrypoint = :e AND convert_from(payload, 'UTF8')::jsonb"
        " ->> 'panelId' = :p",
        e=RECOUNT_ENTRYPOINT,
        p=str(world.panel),
    )
    await world.push(world.sources[0], PATIENTS)  # nothing changed
    await world.call("PUT", f"/api/panels/{world.panel}", {"name": "Ward 8"})
    assert await _queued_recounts(services, world.panel) == []
    await world.push(world.sources[0], [{"mrn": "p1", "name": "N1", "age": 11, "ward": "A"}])
    [starts] = await _queued_recounts(services, world.panel)
    # A burst of changes before it starts is counted by that one recount.
    view = await world.view(["Name"])
    await world.call("PUT", f"/api/views/{view}/filters", {"filters": WARD_A})
    assert await _queued_recounts(services, world.panel) == [starts]
    [(now,)] = await _owner(services, "SELECT now()")
    assert starts > now  # a moment after the change: the burst's later changes join it


def test_a_servers_worker_runs_recounts(app: Litestar) -> None:
    kinds = sync_worker(app.state.runtime)._kinds
    assert RECOUNT_ENTRYPOINT in [kind.entrypoint for kind in kinds]


async def test_a_worker_stores_the_totals_after_a_push(
    world: RowsWorld, engine: AsyncEngine, services: Services
) -> None:
    # A worker of recounts only: jobs other tests left queued (syncs) do not hold it up.
    worker = Worker(services.database_url, [recount_kind(engine)])
    worker.start()
    try:
        await world.push(world.sources[0], [{"mrn": "p20", "name": "N20", "age": 20, "ward": "B"}])
        for _ in range(200):
            if [total for _, total in await _stored(services, world.panel)] == [9]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(await _stored(services, world.panel))
    finally:
        await worker.close()


async def test_another_tenants_stored_totals_are_out_of_reach(
    world: RowsWorld, engine: AsyncEngine, services: Services, client: Client, make_caller: Any
) -> None:
    await _recount(engine, world)
    other = await rows_world(
        client, make_caller("bob", "builder", tenant_id=f"{world.owner.tenant}-other"), sources=1
    )
    await other.push(other.sources[0], PATIENTS[:3])
    # The other tenant's page reads no total of this tenant's (another panel, and the
    # policies), and its own recount leaves this tenant's totals as they were.
    assert (await other.rows(f"/api/panels/{other.panel}/rows", limit=1))["total"] == 3
    before = await _stored(services, world.panel)
    await recount_totals(engine, other.owner.tenant, world.panel)
    assert await _stored(services, world.panel) == before
