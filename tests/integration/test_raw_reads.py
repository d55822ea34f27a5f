"""Reads without a session (`read_in_tenant`): row-level security still binds each statement to
the request's role and tenant, and nothing of the read outlives it on the pooled connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from panels.platform.db import APP_ROLE, request_engine
from panels.platform.reads import read_in_tenant
from tests.conftest import Caller, CallerFactory, Services

Client = AsyncTestClient[Litestar]
# No tenant condition of its own: what it sees, row-level security let through.
SEEN = "SELECT current_user, count(*) FROM panel WHERE id = $1"


@pytest.fixture
async def engine(services: Services) -> AsyncIterator[AsyncEngine]:
    """One pooled connection, so every read reuses what the one before left on it."""
    engine = request_engine(services.database_url, 1)
    yield engine
    await engine.dispose()


async def seen(engine: AsyncEngine, tenant: str, panel_id: int) -> tuple[str, int]:
    found = await read_in_tenant(engine, tenant, lambda c: c.fetchrow(SEEN, panel_id))
    return found[0], found[1]


async def test_a_read_sees_its_own_tenant_as_the_request_role(
    client: Client, create_panel: Any, builder: Caller, engine: AsyncEngine
) -> None:
    panel = await create_panel()
    assert await seen(engine, builder.tenant, panel["id"]) == (APP_ROLE, 1)


async def test_a_read_with_another_tenants_setting_sees_nothing(
    client: Client, create_panel: Any, outsider: Caller, engine: AsyncEngine
) -> None:
    panel = await create_panel()
    assert await seen(engine, outsider.tenant, panel["id"]) == (APP_ROLE, 0)


async def test_a_read_without_the_setting_sees_nothing(
    client: Client, create_panel: Any, builder: Caller, engine: AsyncEngine
) -> None:
    """As the request role, on the same pooled connection right after a read in the panel's
    tenant: the read's tenant ended with its transaction, and without it nothing is seen."""
    panel = await create_panel()
    assert await seen(engine, builder.tenant, panel["id"]) == (APP_ROLE, 1)
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        assert not driver.is_in_transaction()
        async with driver.transaction():
            await driver.execute(f"SET LOCAL ROLE {APP_ROLE}")
            tenant = await driver.fetchval("SELECT current_setting('app.tenant_id', true)")
            assert await driver.fetchrow(SEEN, panel["id"]) == (APP_ROLE, 0)
    assert tenant in (None, "")


async def test_a_read_that_fails_is_rolled_back_and_the_connection_serves_the_next(
    client: Client, create_panel: Any, builder: Caller, engine: AsyncEngine
) -> None:
    panel = await create_panel()

    async def fail(connection: asyncpg.Connection) -> None:
        await connection.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await read_in_tenant(engine, builder.tenant, fail)
    assert await seen(engine, builder.tenant, panel["id"]) == (APP_ROLE, 1)


async def test_a_read_is_read_only(client: Client, builder: Caller, engine: AsyncEngine) -> None:
    async def write(connection: asyncpg.Connection) -> None:
        await connection.execute("DELETE FROM panel")

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await read_in_tenant(engine, builder.tenant, write)


async def test_reads_answer_as_before_for_every_kind_of_caller(
    client: Client,
    create_panel: Any,
    share: Any,
    builder: Caller,
    member: Caller,
    admin: Caller,
    make_caller: CallerFactory,
) -> None:
    """The statements compiled once for every caller: the creator, a grantee by email, an
    admin, and a user of the tenant without a grant, one page at a time and past the end."""
    shared = await create_panel(name="Shared 100%_x")
    private = await create_panel(name="Private")
    await share(builder, "panel", shared["id"], user=member.email)
    stranger = make_caller("dave", "user")

    async def names(caller: Caller, query: str = "") -> tuple[list[str], str]:
        listed = await client.get(f"/api/panels?sort=name{query}", headers=caller.headers)
        assert listed.status_code == 200, listed.text
        return [p["name"] for p in listed.json()], listed.headers["x-total-count"]

    assert await names(builder) == (["Private", "Shared 100%_x"], "2")
    assert await names(admin) == (["Private", "Shared 100%_x"], "2")
    assert await names(member) == (["Shared 100%_x"], "1")
    assert await names(stranger) == ([], "0")
    assert await names(builder, "&limit=1&offset=1") == (["Shared 100%_x"], "2")
    assert await names(builder, "&limit=1&offset=5") == ([], "2")
    assert await names(builder, "&q=0%25_") == (["Shared 100%_x"], "1")
    assert await names(builder, "&q=%25") == (["Shared 100%_x"], "1")
    assert await names(builder, "&q=0_x") == ([], "0")
    assert await names(builder, "&q=Shared&limit=1&offset=5") == ([], "1")
    for caller, status in ((builder, 200), (admin, 200), (member, 404), (stranger, 404)):
        read = await client.get(f"/api/panels/{private['id']}", headers=caller.headers)
        assert read.status_code == status
    read = await client.get(f"/api/panels/{shared['id']}", headers=member.headers)
    assert read.json() == shared
    as_owner = await client.get(f"/api/panels/{shared['id']}", headers=builder.headers)
    assert read.headers["etag"] == as_owner.headers["etag"]


async def test_a_caller_whose_names_need_quoting_reads_what_is_shared_with_them(
    client: Client, create_panel: Any, share: Any, builder: Caller, make_caller: CallerFactory
) -> None:
    """The caller's user id and email are written into a read at once as escape strings."""
    quoted = make_caller("o'neil\\", "user", email="o'neil\\x@example.com")
    panel = await create_panel(name="Shared")
    await create_panel(name="Not shared")
    await share(builder, "panel", panel["id"], user=quoted.email)
    read = await client.get(f"/api/panels/{panel['id']}", headers=quoted.headers)
    assert read.status_code == 200, read.text
    listed = await client.get("/api/panels", headers=quoted.headers)
    assert [p["name"] for p in listed.json()] == ["Shared"]
