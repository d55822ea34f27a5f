"""A connection of its own for executing compiled rows statements from synchronous tests
(hypothesis drives them), on an event loop of its own, over a temporary rows table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import Executable, Text, column, table, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from panels.platform.db import async_url
from panels.rows.compiler import RowSource, source_column


def json_text(value: Any) -> str:
    """JSON with Decimal numbers written exactly (as PostgreSQL keeps them in jsonb)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(key)}: {json_text(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    return json.dumps(value)


class RowsDatabase:
    def __init__(self, loop: asyncio.AbstractEventLoop, connection: AsyncConnection) -> None:
        self._loop = loop
        self._connection = connection

    @property
    def dialect(self) -> Any:
        return self._connection.dialect

    def run(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> list[Any]:
        async def execute() -> list[Any]:
            result = await self._connection.execute(statement, parameters)
            return list(result.all()) if result.returns_rows else []

        return self._loop.run_until_complete(execute())

    def rows_table(
        self, source_ids: Sequence[int], rows: Mapping[str, Mapping[int, Any]]
    ) -> RowSource:
        """A fresh temporary table of `rows` (key to each source's record) as a RowSource."""
        names = [source_column(source_id) for source_id in source_ids]
        definition = ", ".join(f"{name} jsonb" for name in names)
        self.run(text("DROP TABLE IF EXISTS pg_temp.panel_rows_t"))
        self.run(text(f"CREATE TEMPORARY TABLE panel_rows_t (key text, {definition})"))
        rows_table = table(
            "panel_rows_t", column("key", Text()), *(column(n, JSONB()) for n in names)
        )
        for key, records in rows.items():
            values = {"key": key}
            for source_id, name in zip(source_ids, names, strict=True):
                record = records.get(source_id)
                values[name] = None if record is None else json_text(record)
            placeholders = ", ".join([":key", *(f"CAST(:{name} AS jsonb)" for name in names)])
            self.run(text(f"INSERT INTO panel_rows_t VALUES ({placeholders})").bindparams(**values))
        return RowSource(rows_table, tuple(source_ids))


@contextmanager
def rows_database(database_url: str) -> Iterator[RowsDatabase]:
    loop = asyncio.new_event_loop()
    engine = create_async_engine(
        async_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    connection = loop.run_until_complete(engine.connect())
    try:
        yield RowsDatabase(loop, connection)
    finally:
        loop.run_until_complete(connection.close())
        loop.run_until_complete(engine.dispose())
        loop.close()
