"""`DATABASE_READ_URL` against a real streaming replica whose replay the test pauses.

A paused replica is as stale as a replica can be: whatever it serves after the pause is old.
The writer must still read their own writes, nobody may read (and cache) an old row through a
cached route, and only the routes marked for the replica use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from panels.app import create_app
from panels.platform.runtime import recent_write_key
from tests.conftest import Caller, Services, build_settings
from tests.integration.clusters import Cluster
from tests.integration.databases import migrate

Client = AsyncTestClient[Litestar]


@pytest.fixture(scope="module")
async def primary_and_replica() -> AsyncIterator[tuple[Cluster, Cluster]]:
    primary = await asyncio.to_thread(Cluster.primary)
    try:
        await asyncio.to_thread(primary.psql, "CREATE DATABASE panels")
        await migrate(primary.url("panels"))
        replica = await asyncio.to_thread(primary.replica)
        try:
            await asyncio.to_thread(
                primary.wait_until, "SELECT state FROM pg_stat_replication", "streaming"
            )
            yield primary, replica
        finally:
            await asyncio.to_thread(replica.remove)
    finally:
        await asyncio.to_thread(primary.remove)


@pytest.fixture
async def client(
    services: Services, primary_and_replica: tuple[Cluster, Cluster]
) -> AsyncIterator[Client]:
    primary, replica = primary_and_replica
    settings = build_settings(
        services,
        DATABASE_URL=primary.url("panels"),
        DATABASE_READ_URL=replica.url("panels"),
    )
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        yield client


async def caught_up(primary: Cluster, replica: Cluster) -> None:
    position = await asyncio.to_thread(primary.psql, "SELECT pg_current_wal_lsn()")
    await asyncio.to_thread(
        replica.wait_until, f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn", "t"
    )


def descriptions(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["description"] for c in response.json()["changes"]]


async def test_a_stale_replica_never_serves_a_read_your_write_nor_fills_the_cache(
    client: Client,
    primary_and_replica: tuple[Cluster, Cluster],
    services: Services,
    builder: Caller,
    member: Caller,
    share: Callable[..., Any],
) -> None:
    primary, replica = primary_and_replica
    created = await client.post("/api/panels", json={"name": "Before"}, headers=builder.headers)
    panel = f"/api/panels/{created.json()['id']}"
    await share(builder, "panel", created.json()["id"], user=member.email)
    assert (await client.get(panel, headers=member.headers)).json()["name"] == "Before"
    await caught_up(primary, replica)
    await asyncio.to_thread(replica.psql, "SELECT pg_wal_replay_pause()")
    redis = Redis.from_url(services.redis_url)
    try:
        renamed = await client.put(panel, json={"name": "After"}, headers=builder.headers)
        assert renamed.status_code == 200
        fresh = await client.post("/api/panels", json={"name": "New"}, headers=builder.headers)
        assert fresh.status_code == 201

        # The writer reads their own writes, through cached and replica routes alike.
        new_panel = await client.get(f"/api/panels/{fresh.json()['id']}", headers=builder.headers)
        assert new_panel.status_code == 200
        assert (await client.get(panel, headers=builder.headers)).json()["name"] == "After"
        history = descriptions(await client.get(f"{panel}/changes", headers=builder.headers))
        assert any("After" in d for d in history), history

        # Another user's cached read comes from the primary, so the cache holds the new row.
        for _ in range(2):
            assert (await client.get(panel, headers=member.headers)).json()["name"] == "After"

        # The routes marked for the replica do use it for a user who has not just written,
        # and for the writer once the marker has gone: they show the replica's older state.
        for caller in (member, builder):
            await redis.delete(recent_write_key(caller.tenant, caller.user))
            stale = descriptions(await client.get(f"{panel}/changes", headers=caller.headers))
            assert stale
            assert not any("After" in d for d in stale), stale

        # While Redis cannot tell who wrote recently, every read goes to the primary.
        client.app.state.runtime.breaker.trip(ConnectionError("redis down"))
        history = descriptions(await client.get(f"{panel}/changes", headers=member.headers))
        assert any("After" in d for d in history), history
    finally:
        await redis.aclose()
        await asyncio.to_thread(replica.psql, "SELECT pg_wal_replay_resume()")
