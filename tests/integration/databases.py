"""Databases of their own for tests that migrate, own or restart something."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from panels.platform.db import migration_config
from tests.conftest import Services


def as_user(url: str, user: str | None = None, database: str | None = None) -> str:
    """The same server, as another user (trust authentication) or in another database."""
    parsed = make_url(url)
    changes = {"username": user, "database": database}
    parsed = parsed.set(**{k: v for k, v in changes.items() if v is not None})
    return parsed.render_as_string(hide_password=False)


async def migrate(url: str, revision: str = "head") -> None:
    commands = AlembicCommands(sqlalchemy_config=migration_config(url))
    await asyncio.to_thread(commands.upgrade, revision)


@asynccontextmanager
async def fresh_database(services: Services, owner: str | None = None) -> AsyncIterator[str]:
    """An empty database (owned by `owner` when given) on the test server; dropped after."""
    if services.embedded.postgres is None:
        raise RuntimeError("needs the embedded PostgreSQL (DATABASE_URL is set)")
    name = f"panels_fresh_{uuid.uuid4().hex[:10]}"
    postgres = services.embedded.postgres
    owned = f" OWNER {owner}" if owner else ""
    await asyncio.to_thread(postgres.psql, f"CREATE DATABASE {name}{owned};")
    try:
        yield as_user(services.database_url, owner, name)
    finally:
        await asyncio.to_thread(services.embedded.drop_database, name)


@contextmanager
def queries_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements the engine's connections send meanwhile, but those that only begin or
    end a transaction or enter the request role: the statements of sessions (SQLAlchemy's cursor
    events) and those sent on a pooled connection without one (asyncpg's query loggers)."""
    sent: list[str] = []
    drivers: list[Any] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    def attach(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        drivers.append(dbapi_connection.driver_connection)
        drivers[-1].add_query_logger(log)

    def count(*args: Any) -> None:
        sent.append(str(args[2]))

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "checkout", attach)
    event.listen(sync_engine, "before_cursor_execute", count)
    queries: list[str] = []
    try:
        yield queries
    finally:
        event.remove(sync_engine, "checkout", attach)
        event.remove(sync_engine, "before_cursor_execute", count)
        for driver in drivers:
            driver.remove_query_logger(log)
    # A read at once sends the settings and its COPY as one query: its statements one by one.
    statements = [part.strip() for query in sent for part in query.split(";")]
    queries += [
        s
        for s in statements
        if s and "set_config" not in s and not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))
    ]
