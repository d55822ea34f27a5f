"""The request role holds in every transaction, and row-level security binds the owner too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from panels.app import create_app
from panels.platform.db import APP_ROLE, async_url, owner_engine, sql_literal
from tests.conftest import Caller, CallerFactory, Services, build_settings
from tests.integration.databases import as_user, fresh_database, migrate

Client = AsyncTestClient[Litestar]
FOREIGN_ROWS = (
    "SELECT current_user, count(*) FROM panel"
    " WHERE tenant_id IS DISTINCT FROM current_setting('app.tenant_id', true)"
)


@pytest.fixture
def seen_by_transactions() -> Iterator[list[tuple[str, int]]]:
    """For each session transaction: its role and how many rows of other tenants it sees."""
    seen: list[tuple[str, int]] = []

    def record(_session: Session, _transaction: Any, connection: Any) -> None:
        role, foreign = connection.execute(text(FOREIGN_ROWS)).one()
        seen.append((role, foreign))

    event.listen(Session, "after_begin", record)
    yield seen
    event.remove(Session, "after_begin", record)


def reset_role(_session: Session, _transaction: Any, connection: Any) -> None:
    """What a transaction pooler, or another client of it, may leave on a server connection."""
    connection.exec_driver_sql("RESET ROLE")


async def test_a_pooled_connection_whose_role_was_reset_still_serves_as_the_request_role(
    services: Services,
    builder: Caller,
    outsider: Caller,
    seen_by_transactions: list[tuple[str, int]],
) -> None:
    app = create_app(build_settings(services, DB_POOL_SIZE="1"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        created = await client.post("/api/panels", json={"name": "P"}, headers=outsider.headers)
        assert created.status_code == 201
        # Runs first in the transaction, and its RESET outlives it on the pooled connection.
        event.listen(Session, "after_begin", reset_role, insert=True)
        try:
            created = await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
        finally:
            event.remove(Session, "after_begin", reset_role)
        assert created.status_code == 201
        listed = await client.get("/api/panels", headers=builder.headers)
        assert listed.status_code == 200
        assert [p["name"] for p in listed.json()] == ["P"]
    assert len(seen_by_transactions) >= 3
    assert set(seen_by_transactions) == {(APP_ROLE, 0)}


async def test_every_tenant_table_forces_row_level_security(services: Services) -> None:
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity"
                        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
                        " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
                        " AND a.attname = 'tenant_id'"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(tables) >= 10
    assert [t for t in tables if not (t.relrowsecurity and t.relforcerowsecurity)] == []


@pytest.fixture
async def owned_database(services: Services) -> AsyncIterator[tuple[str, str]]:
    """A database migrated by an owner that is not a superuser, as in production."""
    owner = f"panels_owner_{uuid.uuid4().hex[:8]}"
    postgres = services.embedded.postgres
    postgres.psql(f"CREATE ROLE {owner} LOGIN; GRANT {APP_ROLE} TO {owner} WITH ADMIN OPTION;")
    try:
        async with fresh_database(services, owner) as url:
            await migrate(url)
            yield url, owner
    finally:
        postgres.psql(f"DROP ROLE IF EXISTS {owner};")


async def test_the_owner_is_bound_by_the_policies_unless_it_deliberately_maintains(
    owned_database: tuple[str, str],
) -> None:
    url, owner = owned_database
    maintenance = owner_engine(url)
    plain = create_async_engine(async_url(url))
    try:
        async with maintenance.begin() as connection:
            await connection.execute(
                text("INSERT INTO panel (tenant_id, user_id, name) VALUES ('t-1', 'u', 'kept')")
            )
            assert (await connection.scalar(text("SELECT count(*) FROM panel"))) == 1
        async with plain.connect() as connection:
            assert (await connection.scalar(text("SELECT current_user"))) == owner
            assert (await connection.scalar(text("SELECT count(*) FROM panel"))) == 0
            with pytest.raises(DBAPIError, match="row-level security"):
                await connection.execute(
                    text("INSERT INTO panel (tenant_id, user_id, name) VALUES ('t-2', 'u', 'x')")
                )
        async with plain.connect() as connection:
            # The maintenance switch does nothing for the request role.
            await connection.execute(text(f"SET ROLE {APP_ROLE}"))
            await connection.execute(text("SET app.maintenance = 'on'"))
            assert (await connection.scalar(text("SELECT count(*) FROM panel"))) == 0
    finally:
        await plain.dispose()
        await maintenance.dispose()


async def test_a_login_role_that_only_holds_the_request_role_serves_requests(
    services: Services, owned_database: tuple[str, str], builder: Caller
) -> None:
    url, _owner = owned_database
    api_role = f"panels_api_{uuid.uuid4().hex[:8]}"
    postgres = services.embedded.postgres
    postgres.psql(f"CREATE ROLE {api_role} LOGIN; GRANT {APP_ROLE} TO {api_role};")
    try:
        # What `panels serve` does as that role: the upgrade finds the database at head.
        await migrate(as_user(url, api_role))
        settings = build_settings(services, DATABASE_URL=as_user(url, api_role))
        async with AsyncTestClient(app=create_app(settings)) as client:
            created = await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
            assert created.status_code == 201, created.text
            read = await client.get(f"/api/panels/{created.json()['id']}", headers=builder.headers)
            assert read.status_code == 200
    finally:
        postgres.psql(f"DROP ROLE {api_role};")


async def test_the_request_role_rides_on_the_transaction_begin(
    services: Services, builder: Caller, make_caller: CallerFactory
) -> None:
    """Entering the role and tenant costs no round trip of its own: no statement but the
    requests' own reaches the driver, and every transaction still reads as the request role
    of its own tenant."""
    app = create_app(build_settings(services))
    engine = app.state.runtime.db.get_engine().sync_engine
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    stranger = make_caller("bob", "builder", tenant_id=f"t-{uuid.uuid4().hex[:12]}")
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        event.listen(engine, "before_cursor_execute", count)
        try:
            created = await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
            url = created.headers["location"]
            assert (await client.get(url, headers=builder.headers)).status_code == 200
            assert (await client.get(url, headers=stranger.headers)).status_code == 404
            listed = await client.get("/api/panels", headers=stranger.headers)
            assert listed.json() == []
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert sent
    assert not [s for s in sent if "set_config" in s]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))))
def test_a_literal_reads_back_as_the_text_it_quotes(services: Services, values: list[str]) -> None:
    async def read_back() -> list[str]:
        connection = await asyncpg.connect(services.database_url)
        try:
            return [await connection.fetchval(f"SELECT {sql_literal(v)}") for v in values]
        finally:
            await connection.close()

    assert asyncio.run(read_back()) == values
