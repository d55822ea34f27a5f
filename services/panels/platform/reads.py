"""Reads without a session, for the hot read routes: SQLAlchemy's session, statement and result
machinery cost several times the statement itself there.

`RawQuery` compiles a Core statement once for asyncpg. `read_in_tenant` runs reads on a pooled
connection of the request engine in a read-only transaction as the request role in a tenant
(three round trips: BEGIN with the settings, the reads, COMMIT); `read_rows` is its usual
read. Row-level security binds every statement to the tenant, as it does a session's.

Measured and not kept (benchmarks/README.md, "Round trips and sessions on the hot routes"):
the settings and the read as one simple query, its rows through a binary COPY, in one round
trip. The service saved about 40 µs per read, but PostgreSQL planned the statement on every
read (0.25-0.3 ms with the permission conditions) where prepared statements plan once, it
needed asyncpg's private COPY entry point, and it wrote the caller's ids into the SQL text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from panels.platform.db import entering

T = TypeVar("T")


_ASYNCPG = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class RawQuery:
    """A Core statement compiled once for asyncpg: its SQL (`$n` parameters) and how to order
    the values of its named bind parameters. Literal values in the statement (a resource type,
    a flag) stay bound parameters, with the values they were built with."""

    __slots__ = ("_defaults", "_names", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = str(compiled)
        self._names = tuple(getattr(compiled, "positiontup", None) or ())
        self._defaults = compiled.params

    def args(self, values: dict[str, Any]) -> list[Any]:
        defaults = self._defaults
        return [values[n] if n in values else defaults[n] for n in self._names]


async def read_in_tenant(
    engine: AsyncEngine, tenant_id: str, read: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """`read` on a pooled connection of the request engine, in a read-only transaction as the
    request role in this tenant, without a session: for the hot reads, where SQLAlchemy's
    session, statement and result machinery cost several times the statement itself.

    The transaction is begun with the role and tenant in one round trip, as a session's is
    (`RequestConnection`), so row-level security binds every statement `read` runs; it ends
    before the connection goes back to the pool, which never sees it open.
    """
    proxied = await greenlet_spawn(engine.sync_engine.raw_connection)
    connection: asyncpg.Connection = proxied.driver_connection
    ended = False
    try:
        await connection.execute(f"BEGIN READ ONLY;{entering(tenant_id)}")
        try:
            result = await read(connection)
        except Exception:
            await connection.execute("ROLLBACK")
            ended = True
            raise
        await connection.execute("COMMIT")
        ended = True
        return result
    finally:
        if not ended:  # cancelled or broken mid-transaction: never reused
            await greenlet_spawn(proxied.invalidate)
        await greenlet_spawn(proxied.close)


async def read_rows(
    engine: AsyncEngine, tenant_id: str, query: RawQuery, values: dict[str, Any]
) -> list[str]:
    """The first column of each row of `query` (a JSON text, say), read in this tenant; the
    statement is prepared once per pooled connection (asyncpg's statement cache)."""

    async def fetch(connection: asyncpg.Connection) -> list[str]:
        return [row[0] for row in await connection.fetch(query.sql, *query.args(values))]

    return await read_in_tenant(engine, tenant_id, fetch)
