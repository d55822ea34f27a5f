"""The request role holds in every transaction, and row-level security binds the owner too
(but for `panel_row`, which the request role reads through a view that filters the tenant)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from panels.app import create_app
from panels.platform.db import APP_ROLE, async_url, owner_engine, sql_literal
from panels.platform.jobs import postgres_dsn
from panels.rows.compiler import BaseColumn, RowQuery, compile_rows, panel_rows
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
    assert all(t.relrowsecurity for t in tables)
    # panel_row only: its owner reads it for the request role through panel_row_visible,
    # which filters the tenant itself (migration 20261201_0012, tested below).
    assert [t.relname for t in tables if not t.relforcerowsecurity] == ["panel_row"]


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


async def _rows_of_two_tenants(owner: asyncpg.Connection) -> None:
    # Without FORCE the owner writes panel_row without the maintenance switch.
    await owner.execute(
        "INSERT INTO panel_row (tenant_id, panel_id, key, sources) VALUES"
        """ ('t-a', 1, 'a1', '{"1": {"n": "1e999999"}}'), ('t-a', 1, 'a2', '{"1": {"n": 2}}'),"""
        """ ('t-b', 2, 'b1', '{"2": {"n": "secret"}}'), ('t-b', 2, 'b2', '{"2": {"n": 3}}')"""
    )


async def test_the_request_role_reaches_no_other_tenants_rows_through_the_view_or_the_table(
    owned_database: tuple[str, str],
) -> None:
    url, _owner = owned_database
    owner = await asyncpg.connect(postgres_dsn(url))
    try:
        await _rows_of_two_tenants(owner)
        # The owner bypasses panel_row's policies now (the departure from 20261130_0007),
        # but not the view's tenant condition.
        assert await owner.fetchval("SELECT count(*) FROM panel_row") == 4
        assert await owner.fetchval("SELECT count(*) FROM panel_row_visible") == 0

        async def as_request_role(tenant: str | None, statement: str, *args: Any) -> Any:
            async with owner.transaction():
                await owner.execute(f"SET LOCAL ROLE {APP_ROLE}")
                if tenant is not None:
                    await owner.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                return await owner.fetch(statement, *args)

        for rows in ("panel_row_visible", "panel_row"):
            assert await as_request_role(None, f"SELECT key FROM {rows}") == []
            found = await as_request_role("t-a", f"SELECT key FROM {rows} ORDER BY key")
            assert [row["key"] for row in found] == ["a1", "a2"]
            other = f"SELECT key FROM {rows} WHERE tenant_id = 't-b' OR panel_id = 2"
            assert await as_request_role("t-a", other) == []

        # The compiler naming the other tenant and its panel changes nothing: the database
        # enforces the transaction's tenant.
        number = BaseColumn(1, "N", "number", "n", 2)
        query = RowQuery(columns=[number], shown=[1], now=datetime.now(UTC))
        compiled = compile_rows(panel_rows("t-b", 2, [2]), query)
        for statement in (compiled.page, compiled.count):
            sql, args = _sql(statement)
            assert [tuple(row) for row in await as_request_role("t-a", sql, *args)] in (
                [],
                [(0,)],
            )
        sql, args = _sql(compiled.page)
        assert len(await as_request_role("t-b", sql, *args)) == 2

        # The view is for reading: writing through it would write as its owner.
        for write in (
            "INSERT INTO panel_row_visible VALUES ('t-b', 2, 'x', '{}')",
            "UPDATE panel_row_visible SET sources = '{}'",
            "DELETE FROM panel_row_visible",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await as_request_role("t-a", write)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await as_request_role("t-a", "INSERT INTO panel_row VALUES ('t-b', 2, 'x', '{}')")
    finally:
        await owner.close()


def _sql(statement: Any) -> tuple[str, list[Any]]:
    compiled = statement.compile(
        dialect=asyncpg_dialect.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"render_postcompile": True},
    )
    return compiled.string, [compiled.params[name] for name in compiled.positiontup or ()]


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
