"""The record writer and the purge of deleted sources' records, against the real database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from panels.platform.db import bind_tenant, request_engine
from panels.platform.errors import BadRequest, NotFound
from panels.records.purge import purge_orphaned_records
from panels.records.writer import RecordBatch, RecordCounts, WriteMode, line, write_records
from tests.conftest import Caller, Services

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def engine(services: Services) -> AsyncIterator[AsyncEngine]:
    engine = request_engine(services.database_url, pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture
async def source(client: Client, builder: Caller, create_panel: Any) -> tuple[int, int]:
    panel = await create_panel(builder)
    response = await client.post(
        f"/api/panels/{panel['id']}/datasources",
        json={"type": "custom", "config": {}},
        headers=builder.headers,
    )
    assert response.status_code == 201, response.text
    return panel["id"], response.json()["id"]


async def batches_of(*batches: list[dict[str, Any]]) -> AsyncIterator[RecordBatch]:
    position = 0
    for batch in batches:
        yield [(position + i, record) for i, record in enumerate(batch)]
        position += len(batch)


async def write(
    engine: AsyncEngine,
    caller: Caller,
    source: tuple[int, int],
    *batches: list[dict[str, Any]],
    mode: WriteMode = "upsert",
) -> RecordCounts:
    async with AsyncSession(engine) as session:
        bind_tenant(session, caller.tenant)
        counts = await write_records(
            session,
            tenant_id=caller.tenant,
            panel_id=source[0],
            source_id=source[1],
            key_field="id",
            batches=batches_of(*batches),
            mode=mode,
        )
        await session.commit()
        return counts


async def stored(engine: AsyncEngine, caller: Caller, source_id: int) -> dict[str, Any]:
    async with AsyncSession(engine) as session:
        bind_tenant(session, caller.tenant)
        rows = await session.execute(
            text("SELECT key, record FROM source_record WHERE source_id = :s"), {"s": source_id}
        )
        return dict(rows.tuples().all())


def counts(processed: int, inserted: int = 0, updated: int = 0, deleted: int = 0) -> RecordCounts:
    return RecordCounts(
        records_processed=processed,
        records_inserted=inserted,
        records_updated=updated,
        records_deleted=deleted,
    )


async def test_upsert_inserts_updates_and_skips_unchanged_records(
    engine: AsyncEngine, builder: Caller, source: tuple[int, int]
) -> None:
    first = [{"id": 1, "name": "Ada"}, {"id": "2", "name": "Bo"}, {"id": 3.5, "name": "Cy"}]
    assert await write(engine, builder, source, first) == counts(3, inserted=3)
    assert await write(engine, builder, source, first) == counts(3)
    # The same content with its keys in another order is unchanged too.
    reordered = [{"name": "Ada", "id": 1}]
    assert await write(engine, builder, source, reordered) == counts(1)
    changed = [{"id": 1, "name": "Ada L."}, {"id": 4, "name": "Di"}]
    assert await write(engine, builder, source, changed) == counts(2, inserted=1, updated=1)
    records = await stored(engine, builder, source[1])
    assert set(records) == {"1", "2", "3.5", "4"}
    assert records["1"] == {"id": 1, "name": "Ada L."}


async def test_the_last_record_of_a_key_wins_within_and_across_batches(
    engine: AsyncEngine, builder: Caller, source: tuple[int, int]
) -> None:
    result = await write(
        engine,
        builder,
        source,
        [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}],
        [{"id": 1, "v": "c"}],
    )
    assert result == counts(3, inserted=1, updated=1)
    assert (await stored(engine, builder, source[1]))["1"] == {"id": 1, "v": "c"}


async def test_replace_deletes_only_the_records_not_sent_after_every_batch(
    engine: AsyncEngine, builder: Caller, source: tuple[int, int]
) -> None:
    await write(engine, builder, source, [{"id": n} for n in range(5)])
    result = await write(engine, builder, source, [{"id": 0}], [{"id": 3}], mode="replace")
    assert result == counts(2, deleted=3)
    assert set(await stored(engine, builder, source[1])) == {"0", "3"}
    assert await write(engine, builder, source, mode="replace") == counts(0, deleted=2)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"name": "no key"}, "has no key field `id`"),
        ({"id": None}, "has no key field `id`"),
        ({"id": True}, "`id` must be a string or a number"),
        ({"id": {"a": 1}}, "`id` must be a string or a number"),
        ({"id": ""}, "`id` must be 1 to 512 characters long"),
        ({"id": "k" * 513}, "`id` must be 1 to 512 characters long"),
        ({"id": 9, "note": "a\x00b"}, "must not contain NUL characters"),
        ({"id": 9, "a\x00": 1}, "must not contain NUL characters"),
    ],
)
async def test_a_bad_record_in_a_later_batch_writes_nothing(
    engine: AsyncEngine,
    builder: Caller,
    source: tuple[int, int],
    record: dict[str, Any],
    message: str,
) -> None:
    async with AsyncSession(engine) as session:
        bind_tenant(session, builder.tenant)
        with pytest.raises(BadRequest) as refused:
            await write_records(
                session,
                tenant_id=builder.tenant,
                panel_id=source[0],
                source_id=source[1],
                key_field="id",
                batches=batches_of([{"id": 1}, {"id": 2}], [{"id": 3}, record]),
                mode="replace",
                position=line,
            )
        await session.rollback()
    assert refused.value.detail == f"line 3: {message}"
    assert await stored(engine, builder, source[1]) == {}


async def test_a_backslash_before_u0000_is_text_not_nul(
    engine: AsyncEngine, builder: Caller, source: tuple[int, int]
) -> None:
    await write(engine, builder, source, [{"id": 1, "path": "C:\\u0000"}])
    assert (await stored(engine, builder, source[1]))["1"]["path"] == "C:\\u0000"


async def test_a_source_of_another_panel_or_tenant_is_not_found(
    engine: AsyncEngine,
    builder: Caller,
    outsider: Caller,
    source: tuple[int, int],
) -> None:
    with pytest.raises(NotFound):
        await write(engine, builder, (source[0] + 1_000_000, source[1]), [{"id": 1}])
    with pytest.raises(NotFound):
        await write(engine, outsider, source, [{"id": 1}])


async def test_records_of_a_deleted_source_are_purged_in_bounded_batches(
    client: Client, engine: AsyncEngine, builder: Caller, source: tuple[int, int]
) -> None:
    panel_id, source_id = source
    await write(engine, builder, source, [{"id": n} for n in range(5)])
    kept = await client.post(
        f"/api/panels/{panel_id}/datasources", json={"type": "custom"}, headers=builder.headers
    )
    kept_source = (panel_id, kept.json()["id"])
    await write(engine, builder, kept_source, [{"id": "stays"}])
    async with AsyncSession(engine) as session:
        bind_tenant(session, builder.tenant)
        assert await purge_orphaned_records(session, builder.tenant, 10) == 0
    response = await client.delete(
        f"/api/panels/{panel_id}/datasources/{source_id}", headers=builder.headers
    )
    assert response.status_code == 204
    purged = []
    async with AsyncSession(engine) as session:
        bind_tenant(session, builder.tenant)
        for _ in range(4):
            purged.append(await purge_orphaned_records(session, builder.tenant, 2))
            await session.commit()
    assert purged == [2, 2, 1, 0]
    assert await stored(engine, builder, source_id) == {}
    assert set(await stored(engine, builder, kept_source[1])) == {"stays"}


async def test_concurrent_writes_to_one_source_take_turns_instead_of_deadlocking(
    engine: AsyncEngine, services: Services, builder: Caller, source: tuple[int, int]
) -> None:
    """Two pushes of the same keys in opposite orders: without taking turns, each would wait
    for the other's second batch (a deadlock, which PostgreSQL ends with an error)."""
    second_engine = request_engine(services.database_url, pool_size=1)
    first_batches_done = [asyncio.Event(), asyncio.Event()]

    async def batches(me: int, halves: list[list[dict[str, Any]]]) -> AsyncIterator[RecordBatch]:
        yield list(enumerate(halves[0]))
        first_batches_done[me].set()
        # Give the other writer the chance to write its first batch (it cannot while they
        # take turns, hence the timeout).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_batches_done[1 - me].wait(), 2)
            await asyncio.sleep(0.3)  # the other's first batch is handed over, now merged too
        yield list(enumerate(halves[1]))

    async def run(me: int, on: AsyncEngine, halves: list[list[dict[str, Any]]]) -> RecordCounts:
        async with AsyncSession(on) as session:
            bind_tenant(session, builder.tenant)
            counts = await write_records(
                session,
                tenant_id=builder.tenant,
                panel_id=source[0],
                source_id=source[1],
                key_field="id",
                batches=batches(me, halves),
                mode="upsert",
            )
            await session.commit()
            return counts

    low = [{"id": n} for n in range(50)]
    high = [{"id": n} for n in range(50, 100)]
    try:
        first, second = await asyncio.gather(
            run(0, engine, [low, high]), run(1, second_engine, [high, low])
        )
    finally:
        await second_engine.dispose()
    assert first.records_inserted + second.records_inserted == 100
    assert len(await stored(engine, builder, source[1])) == 100
