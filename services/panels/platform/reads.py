"""Reads without a session, for the hot read routes: SQLAlchemy's session, statement and result
machinery cost several times the statement itself there.

`RawQuery` compiles a Core statement once for asyncpg. `read_in_tenant` runs reads on a pooled
connection of the request engine in a read-only transaction as the request role in a tenant
(three round trips: BEGIN with the settings, the reads, COMMIT); `read_at_once` reads in one.
Row-level security binds every statement of both to the tenant, as it does a session's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from panels.platform.db import entering, sql_literal

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

    def written_out(self, values: dict[str, Any]) -> str:
        """The SQL with these values written in as literals, for `read_at_once`."""
        args = self.args(values)
        return _PARAMETER.sub(lambda m: _sql_value(args[int(m[1]) - 1]), self.sql)


_PARAMETER = re.compile(r"\$(\d+)")


def _sql_value(value: Any) -> str:
    """A bound value as a literal: integers, booleans, text and lists of text only (the
    statements compiled here hold no others)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return sql_literal(value)
    if isinstance(value, list | tuple):
        return "ARRAY[" + ",".join(_sql_value(v) for v in value) + "]"
    raise TypeError(f"no literal for {type(value).__name__}")


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER_SIZE = 19  # signature, flags, header extension length


async def read_at_once(engine: AsyncEngine, tenant_id: str, query: str) -> list[bytes]:
    """The rows of `query` (one text column each, say JSON), read as the request role in this
    tenant in ONE round trip, where `read_in_tenant` takes three (BEGIN, the read, COMMIT).

    The role and tenant settings and the read go as one simple query: PostgreSQL runs its
    statements as one implicit transaction, each planned after the one before has run, so
    row-level security binds the read to the tenant and the settings end with it (also behind
    a transaction pooler). The simple query protocol takes no parameters: `query` carries its
    values written in (`RawQuery.written_out`: integers, and text from the verified token as
    escape strings); text a caller typed stays a bound parameter (`read_in_tenant`). A simple
    query returns rows to asyncpg only through COPY, in its binary format, parsed here.
    """
    chunks: list[bytes] = []

    async def collect(data: bytes) -> None:
        chunks.append(bytes(data))

    statement = f"{entering(tenant_id, read_only=True)};COPY ({query}) TO STDOUT (FORMAT binary)"
    proxied = await greenlet_spawn(engine.sync_engine.raw_connection)
    connection: asyncpg.Connection = proxied.driver_connection
    ended = False
    try:
        # asyncpg's COPY of a query takes parameters only by interpolating them on the server
        # (a round trip of its own); its statement-level COPY is what it runs underneath.
        # Logged, when the connection has query loggers, as asyncpg logs its own queries.
        if connection._query_loggers:
            with connection._time_and_log(statement, (), None):
                await connection._copy_out(statement, collect, None)
        else:
            await connection._copy_out(statement, collect, None)
        ended = True
    except asyncpg.PostgresError:
        ended = True  # the implicit transaction has ended with the error
        raise
    finally:
        if not ended:  # cancelled or broken mid-read: never reused
            await greenlet_spawn(proxied.invalidate)
        await greenlet_spawn(proxied.close)
    return _copy_rows(b"".join(chunks))


def _copy_rows(data: bytes) -> list[bytes]:
    """The values of a one-column binary COPY (none may be NULL)."""
    if not data.startswith(_COPY_HEADER):
        raise ValueError("not a binary COPY")
    rows = []
    at = _COPY_HEADER_SIZE
    while data[at : at + 2] != b"\xff\xff":  # the trailer
        size = int.from_bytes(data[at + 2 : at + 6], "big", signed=True)
        if size < 0:
            raise ValueError("a NULL where a value was expected")
        rows.append(data[at + 6 : at + 6 + size])
        at += 6 + size
    return rows


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
