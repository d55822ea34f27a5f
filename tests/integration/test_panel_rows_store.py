"""The merged rows kept at ingest (`panel_row`): every write and purge of records leaves them
equal to the panel's records merged by key, and a deleted source's data is never read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from panels.platform.db import bind_tenant, request_engine
from panels.records.purge import purge_orphaned_records
from panels.records.writer import RecordBatch, WriteMode, write_records
from panels.rows.compiler import BaseColumn, RowQuery, compile_rows, panel_rows
from tests.conftest import Caller, Services

Client = AsyncTestClient[Litestar]
Merged = dict[str, dict[str, Any]]


@pytest.fixture
async def engine(services: Services) -> AsyncIterator[AsyncEngine]:
    engine = request_engine(services.database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def panel(client: Client, builder: Caller, create_panel: Any) -> tuple[int, int, int]:
    """A panel and two custom sources: (panel id, first source id, second source id)."""
    created = await create_panel(builder)
    ids = []
    for _ in range(2):
        response = await client.post(
            f"/api/panels/{created['id']}/datasources",
            json={"type": "custom", "config": {}},
            headers=builder.headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return created["id"], ids[0], ids[1]


async def _batches(*batches: list[dict[str, Any]]) -> AsyncIterator[RecordBatch]:
    position = 0
    for batch in batches:
        yield [(position + i, record) for i, record in enumerate(batch)]
        position += len(batch)


async def write(
    engine: AsyncEngine,
    caller: Caller,
    panel_id: int,
    source_id: int,
    *batches: list[dict[str, Any]],
    mode: WriteMode = "upsert",
) -> None:
    async with AsyncSession(engine) as session:
        bind_tenant(session, caller.tenant)
        await write_records(
            session,
            tenant_id=caller.tenant,
            panel_id=panel_id,
            source_id=source_id,
            key_field="id",
            batches=_batches(*batches),
            mode=mode,
        )
        await session.commit()


async def merged_rows(engine: AsyncEngine, caller: Caller, panel_id: int) -> Merged:
    """The panel's `panel_row`s, after checking they equal its records merged by key."""
    async with AsyncSession(engine) as session:
        bind_tenant(session, caller.tenant)
        stored = await session.execute(
            text("SELECT key, sources FROM panel_row WHERE panel_id = :p"), {"p": panel_id}
        )
        expected = await session.execute(
            text(
                "SELECT key, jsonb_object_agg(source_id::text, record) FROM source_record"
                " WHERE panel_id = :p GROUP BY key"
            ),
            {"p": panel_id},
        )
        rows: Merged = dict(stored.tuples().all())
        assert rows == dict(expected.tuples().all())
        return rows


async def test_every_write_keeps_one_merged_row_per_key(
    engine: AsyncEngine, builder: Caller, panel: tuple[int, int, int]
) -> None:
    panel_id, first, second = panel
    await write(engine, builder, panel_id, first, [{"id": 1, "a": 1}, {"id": 2, "a": 2}])
    await write(engine, builder, panel_id, second, [{"id": 2, "b": 2}], [{"id": 3, "b": 3}])
    assert await merged_rows(engine, builder, panel_id) == {
        "1": {str(first): {"id": 1, "a": 1}},
        "2": {str(first): {"id": 2, "a": 2}, str(second): {"id": 2, "b": 2}},
        "3": {str(second): {"id": 3, "b": 3}},
    }
    await write(engine, builder, panel_id, first, [{"id": 2, "a": 20}])
    assert (await merged_rows(engine, builder, panel_id))["2"][str(first)] == {"id": 2, "a": 20}
    # A full sync of the second source without key 2: its entry goes, the row stays; key 3
    # had no other entry, so its row goes.
    await write(engine, builder, panel_id, second, [{"id": 4, "b": 4}], mode="replace")
    assert await merged_rows(engine, builder, panel_id) == {
        "1": {str(first): {"id": 1, "a": 1}},
        "2": {str(first): {"id": 2, "a": 20}},
        "4": {str(second): {"id": 4, "b": 4}},
    }


async def test_concurrent_writes_of_two_sources_sharing_keys_take_turns(
    engine: AsyncEngine, builder: Caller, panel: tuple[int, int, int]
) -> None:
    panel_id, first, second = panel
    keys = list(range(300))
    forward = [[{"id": k, "s": 1}] for k in keys]
    backward = [[{"id": k, "s": 2}] for k in reversed(keys)]
    await asyncio.gather(
        write(engine, builder, panel_id, first, *forward),
        write(engine, builder, panel_id, second, *backward),
    )
    rows = await merged_rows(engine, builder, panel_id)
    assert len(rows) == 300
    assert all(set(sources) == {str(first), str(second)} for sources in rows.values())


async def test_a_deleted_sources_data_is_never_read_and_its_purge_empties_its_rows(
    client: Client, engine: AsyncEngine, builder: Caller, panel: tuple[int, int, int]
) -> None:
    panel_id, first, second = panel
    await write(engine, builder, panel_id, first, [{"id": 1, "v": "kept"}])
    await write(engine, builder, panel_id, second, [{"id": 1, "v": "x"}, {"id": 2, "v": "gone"}])
    response = await client.delete(
        f"/api/panels/{panel_id}/datasources/{second}", headers=builder.headers
    )
    assert response.status_code == 204, response.text
    query = RowQuery(columns=[BaseColumn(1, "V", "text", "v")], shown=[1], now=datetime.now(UTC))
    compiled = compile_rows(panel_rows(builder.tenant, panel_id, [first]), query)
    async with AsyncSession(engine) as session:
        bind_tenant(session, builder.tenant)
        page = (await session.execute(compiled.page)).all()
    assert [tuple(row[:2]) for row in page] == [("1", "kept")]
    async with AsyncSession(engine) as session:
        bind_tenant(session, builder.tenant)
        assert await purge_orphaned_records(session, builder.tenant, 10) == 2
        await session.commit()
    assert await merged_rows(engine, builder, panel_id) == {
        "1": {str(first): {"id": 1, "v": "kept"}}
    }
