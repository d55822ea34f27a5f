"""Indexes on demand: a view's sorts and filters queue a job that builds the panel's expression
indexes concurrently; the request role's page, count and cursor queries use them; an index
goes once no view needs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Select, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from panels.app import create_app
from panels.platform.db import APP_ROLE, bind_tenant, owner_engine, request_engine
from panels.platform.jobs import postgres_dsn
from panels.records.writer import RecordBatch, write_records
from panels.rows.compiler import (
    BaseColumn,
    Condition,
    RowQuery,
    Sort,
    compile_rows,
    encode_cursor,
    panel_rows,
)
from panels.rows.indexes import INDEX_ENTRYPOINT, INDEX_PREFIX, update_indexes
from panels.rows.planning import CUSTOM_PLANS
from tests.conftest import Caller, Services, build_settings
from tests.integration.rows_world import statements

Client = AsyncTestClient[Litestar]
RECORDS = 5000
# Client text, written into the index's SQL as a literal: it must neither break out of it nor
# differ from the parameter the page query binds.
RISK_FIELD = "risk'Score \\ %_$$"


@pytest.fixture
async def owner(services: Services) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        postgres_dsn(services.database_url), server_settings={"app.maintenance": "on"}
    )
    yield connection
    await connection.close()


async def _records() -> AsyncIterator[RecordBatch]:
    yield [
        (
            n,
            {
                "id": n,
                "ward": f"W{n % 12}",
                RISK_FIELD: (n * 7919) % 10000 / 100,
                "seen": f"2026-{1 + n % 12:02}-{1 + n % 28:02}T{n % 24:02}:30:00+01:00",
            },
        )
        for n in range(RECORDS)
    ]


async def _panel_with_records(
    client: Client, services: Services, builder: Caller, create_panel: Any
) -> dict[str, Any]:
    panel = await create_panel(builder)
    base = f"/api/panels/{panel['id']}"
    source = await client.post(
        f"{base}/datasources", json={"type": "custom", "config": {}}, headers=builder.headers
    )
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]
    columns = {}
    for name, kind, field in (
        ("Ward", "text", "ward"),
        ("Risk", "number", RISK_FIELD),
        ("Seen", "datetime", "seen"),
    ):
        response = await client.post(
            f"{base}/columns/base",
            json={"name": name, "type": kind, "sourceField": field, "dataSourceId": source_id},
            headers=builder.headers,
        )
        assert response.status_code == 201, response.text
        columns[name] = BaseColumn(response.json()["id"], name, kind, field, source_id)
    engine = request_engine(services.database_url, pool_size=1)
    try:
        async with AsyncSession(engine) as session:
            bind_tenant(session, builder.tenant)
            await write_records(
                session,
                tenant_id=builder.tenant,
                panel_id=panel["id"],
                source_id=source_id,
                key_field="id",
                batches=_records(),
                mode="upsert",
            )
            await session.commit()
    finally:
        await engine.dispose()
    return {"id": panel["id"], "source_id": source_id, "columns": columns}


async def _queued_index_jobs(services: Services, panel_id: int) -> int:
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            payloads = await connection.execute(
                text("SELECT payload FROM pgqueuer WHERE entrypoint = :e"), {"e": INDEX_ENTRYPOINT}
            )
            return sum(
                1 for (payload,) in payloads if msgspec.json.decode(payload)["panelId"] == panel_id
            )
    finally:
        await engine.dispose()


async def _panel_indexes(owner: asyncpg.Connection, panel_id: int) -> list[str]:
    rows = await owner.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'panel_row' AND indexname LIKE $1",
        f"{INDEX_PREFIX}{panel_id}\\_%",
    )
    return [row["indexname"] for row in rows]


async def _plan(owner: asyncpg.Connection, tenant: str, statement: Select[Any]) -> str:
    """EXPLAIN of the statement as the request role of `tenant` (row-level security on)."""
    compiled = statement.compile(
        dialect=asyncpg_dialect.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"render_postcompile": True},
    )
    args = [compiled.params[name] for name in compiled.positiontup or ()]
    async with owner.transaction():
        await owner.execute(
            f"SELECT set_config('role', '{APP_ROLE}', true), set_config('app.tenant_id', $1, true)",
            tenant,
        )
        rows = await owner.fetch(f"EXPLAIN {compiled.string}", *args)
    return "\n".join(row[0] for row in rows)


async def test_a_views_sort_gets_an_index_the_page_uses_until_no_view_needs_it(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
) -> None:
    panel = await _panel_with_records(client, services, builder, create_panel)
    panel_id, ward, risk = panel["id"], panel["columns"]["Ward"], panel["columns"]["Risk"]
    queued = await _queued_index_jobs(services, panel_id)
    view = await client.post(
        "/api/views", json={"panelId": panel_id, "name": "Risky"}, headers=builder.headers
    )
    assert view.status_code == 201, view.text
    sorts_url = f"/api/views/{view.json()['id']}/sorts"
    assert await _queued_index_jobs(services, panel_id) == queued  # no sorts, no job
    response = await client.put(
        sorts_url,
        json={"sorts": [{"columnName": "Risk", "direction": "desc"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    assert await _queued_index_jobs(services, panel_id) == queued + 1

    query = RowQuery(
        columns=[ward, risk],
        shown=[ward.id, risk.id],
        now=datetime.now(UTC),
        sorts=[Sort(risk.id, descending=True)],
    )
    page = compile_rows(panel_rows(builder.tenant, panel_id, [panel["source_id"]]), query).page
    await owner.execute("ANALYZE panel_row")
    assert await _panel_indexes(owner, panel_id) == []
    assert INDEX_PREFIX not in await _plan(owner, builder.tenant, page)

    await update_indexes(owner, builder.tenant, panel_id)
    [index] = await _panel_indexes(owner, panel_id)
    plan = await _plan(owner, builder.tenant, page)
    assert f"Index Scan using {index}" in plan, plan

    response = await client.put(sorts_url, json={"sorts": []}, headers=builder.headers)
    assert response.status_code == 200, response.text
    assert await _queued_index_jobs(services, panel_id) == queued + 2
    await update_indexes(owner, builder.tenant, panel_id)
    assert await _panel_indexes(owner, panel_id) == []


async def test_a_datetime_sort_is_indexed_and_a_deleted_panels_indexes_are_dropped(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
) -> None:
    doomed = await _panel_with_records(client, services, builder, create_panel)
    view = await client.post(
        "/api/views", json={"panelId": doomed["id"], "name": "V"}, headers=builder.headers
    )
    # A datetime is converted by immutable SQL only, or no index could hold it.
    sorts = {"sorts": [{"columnName": "Seen", "direction": "desc"}, {"columnName": "Ward"}]}
    response = await client.put(
        f"/api/views/{view.json()['id']}/sorts", json=sorts, headers=builder.headers
    )
    assert response.status_code == 200, response.text
    await update_indexes(owner, builder.tenant, doomed["id"])
    assert len(await _panel_indexes(owner, doomed["id"])) == 1
    response = await client.delete(f"/api/panels/{doomed['id']}", headers=builder.headers)
    assert response.status_code == 204, response.text
    other = await create_panel(builder)
    await update_indexes(owner, builder.tenant, other["id"])
    assert await _panel_indexes(owner, doomed["id"]) == []


async def test_a_new_source_rebuilds_the_index_of_a_column_reading_every_source(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
    add_source_and_column: Any,
) -> None:
    panel = await create_panel(builder)
    await add_source_and_column(builder, panel["id"])  # Age reads every source of the panel
    view = await client.post(
        "/api/views", json={"panelId": panel["id"], "name": "V"}, headers=builder.headers
    )
    response = await client.put(
        f"/api/views/{view.json()['id']}/sorts",
        json={"sorts": [{"columnName": "Age"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    await update_indexes(owner, builder.tenant, panel["id"])
    [before] = await _panel_indexes(owner, panel["id"])
    queued = await _queued_index_jobs(services, panel["id"])
    response = await client.post(
        f"/api/panels/{panel['id']}/datasources",
        json={"type": "custom", "config": {}},
        headers=builder.headers,
    )
    assert response.status_code == 201, response.text
    assert await _queued_index_jobs(services, panel["id"]) == queued + 1
    await update_indexes(owner, builder.tenant, panel["id"])
    [after] = await _panel_indexes(owner, panel["id"])
    assert after != before
    # A column reading another field holds another expression: the panel's indexes follow.
    columns = await client.get(f"/api/panels/{panel['id']}/columns", headers=builder.headers)
    [age] = [c for c in columns.json()["baseColumns"] if c["name"] == "Age"]
    response = await client.put(
        f"/api/panels/{panel['id']}/columns/{age['id']}",
        json={"sourceField": "years"},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    assert await _queued_index_jobs(services, panel["id"]) == queued + 2
    await update_indexes(owner, builder.tenant, panel["id"])
    assert (await _panel_indexes(owner, panel["id"])) not in ([before], [after])


async def test_two_updates_at_once_take_turns_and_agree(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
) -> None:
    panel = await _panel_with_records(client, services, builder, create_panel)
    view = await client.post(
        "/api/views", json={"panelId": panel["id"], "name": "V"}, headers=builder.headers
    )
    response = await client.put(
        f"/api/views/{view.json()['id']}/sorts",
        json={"sorts": [{"columnName": "Risk"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    other = await asyncpg.connect(
        postgres_dsn(services.database_url), server_settings={"app.maintenance": "on"}
    )
    try:
        # A build waits for the snapshots of statements older than its own: a second job
        # waiting for its turn inside a statement would deadlock with it.
        await asyncio.wait_for(
            asyncio.gather(
                update_indexes(owner, builder.tenant, panel["id"]),
                update_indexes(other, builder.tenant, panel["id"]),
            ),
            30,
        )
    finally:
        await other.close()
    assert len(await _panel_indexes(owner, panel["id"])) == 1


async def test_a_views_filter_gets_an_index_that_counts_its_rows_until_it_is_dropped(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
) -> None:
    panel = await _panel_with_records(client, services, builder, create_panel)
    panel_id, ward = panel["id"], panel["columns"]["Ward"]
    view = await client.post(
        "/api/views", json={"panelId": panel_id, "name": "W3"}, headers=builder.headers
    )
    assert view.status_code == 201, view.text
    filters_url = f"/api/views/{view.json()['id']}/filters"
    queued = await _queued_index_jobs(services, panel_id)
    response = await client.put(
        filters_url,
        json={"filters": [{"columnName": "Ward", "operator": "eq", "value": "W3"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    assert await _queued_index_jobs(services, panel_id) == queued + 1

    query = RowQuery(
        columns=[ward],
        shown=[ward.id],
        now=datetime.now(UTC),
        filters=[Condition("eq", "W3", column_id=ward.id)],
    )
    count = compile_rows(panel_rows(builder.tenant, panel_id, [panel["source_id"]]), query).count
    await owner.execute("ANALYZE panel_row")
    assert INDEX_PREFIX not in await _plan(owner, builder.tenant, count)

    await update_indexes(owner, builder.tenant, panel_id)
    [index] = await _panel_indexes(owner, panel_id)
    await owner.execute("ANALYZE panel_row")
    # The filter is the index's condition: the total counts the index's matches.
    assert f"Bitmap Index Scan on {index}" in await _plan(owner, builder.tenant, count)

    # A filter no index serves (it holds for most rows) replaces it: the index goes.
    response = await client.put(
        filters_url,
        json={"filters": [{"columnName": "Ward", "operator": "ne", "value": "W3"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    assert await _queued_index_jobs(services, panel_id) == queued + 2
    await update_indexes(owner, builder.tenant, panel_id)
    assert await _panel_indexes(owner, panel_id) == []


async def test_a_page_by_cursor_starts_from_its_sorts_index(
    client: Client,
    services: Services,
    builder: Caller,
    create_panel: Any,
    owner: asyncpg.Connection,
) -> None:
    panel = await _panel_with_records(client, services, builder, create_panel)
    panel_id, risk = panel["id"], panel["columns"]["Risk"]
    view = await client.post(
        "/api/views", json={"panelId": panel_id, "name": "V"}, headers=builder.headers
    )
    response = await client.put(
        f"/api/views/{view.json()['id']}/sorts",
        json={"sorts": [{"columnName": "Risk", "direction": "desc"}]},
        headers=builder.headers,
    )
    assert response.status_code == 200, response.text
    await update_indexes(owner, builder.tenant, panel_id)
    [index] = await _panel_indexes(owner, panel_id)
    await owner.execute("ANALYZE panel_row")
    sorts = [Sort(risk.id, descending=True)]
    source = panel_rows(builder.tenant, panel_id, [panel["source_id"]])
    first = compile_rows(
        source, RowQuery(columns=[risk], shown=[risk.id], now=datetime.now(UTC), sorts=sorts)
    )
    cursor = encode_cursor(first.sort_keys, [Decimal("50.00")], "2500")
    query = RowQuery(
        columns=[risk], shown=[risk.id], now=datetime.now(UTC), sorts=sorts, cursor=cursor, limit=5
    )
    plan = await _plan(owner, builder.tenant, compile_rows(source, query).page)
    # Both ranges after the cursor (the values up to 50, then the nulls) are found in the
    # index, the first read in its order from 50 down: no scan of the panel.
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert f"Index Scan using {index}" in plan, plan
    assert any(line.endswith("<= 50.00)") for line in conditions), plan
    assert any(line.endswith("IS NULL))") for line in conditions), plan
    assert "Seq Scan" not in plan, plan


async def test_rows_statements_are_planned_for_their_values_every_time(
    client: Client, services: Services, builder: Caller, create_panel: Any
) -> None:
    """A generic plan (PostgreSQL's choice after five runs of a prepared statement) cannot use
    the panel's indexes, whose expressions hold what the statement binds as parameters: the
    rows service asks for custom plans before its statements."""
    panel = await _panel_with_records(client, services, builder, create_panel)
    risk = panel["columns"]["Risk"]
    source = panel_rows(builder.tenant, panel["id"], [panel["source_id"]])

    async def plans_after_eight_pages(custom: bool) -> list[tuple[int, int]]:
        engine = request_engine(services.database_url, pool_size=1)
        try:
            async with AsyncSession(engine) as session:
                bind_tenant(session, builder.tenant)
                for offset in range(8):
                    query = RowQuery(
                        columns=[risk],
                        shown=[risk.id],
                        now=datetime.now(UTC),
                        sorts=[Sort(risk.id, descending=True)],
                        limit=1,
                        offset=offset,
                    )
                    if custom:
                        await session.execute(CUSTOM_PLANS)
                    await session.execute(compile_rows(source, query).page)
                found = await session.execute(
                    text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                        " WHERE statement LIKE 'SELECT base.key%panel_row_visible%'"
                    )
                )
                return [(row[0], row[1]) for row in found]
        finally:
            await engine.dispose()

    # No index yet: PostgreSQL soon finds the generic plan as good, and would keep it.
    [(generic, _custom)] = await plans_after_eight_pages(custom=False)
    assert generic > 0
    assert await plans_after_eight_pages(custom=True) == [(0, 8)]

    app = create_app(build_settings(services))
    async with AsyncTestClient(app=app) as own, statements(app) as sent:
        response = await own.get(f"/api/panels/{panel['id']}/rows", headers=builder.headers)
    assert response.status_code == 200, response.text
    [reading] = [i for i, s in enumerate(sent) if "FROM panel_row_visible" in s]
    assert sent[reading - 1] == str(CUSTOM_PLANS)
