"""The CSV export's statement read by a server-side cursor or by `COPY (…) TO STDOUT`.

    uv run python -m benchmarks.rows_copy

Loads the 1,000,000-key panel of `rows.py` (embedded PostgreSQL unless DATABASE_URL is set),
builds the view's sort index, and reads the export's lines (`rows.export.csv_lines`) as the
request role, twice each way: through a cursor (as the export does, `cursor_tuple_fraction =
1`) and through `COPY … TO STDOUT (FORMAT text)`, whose escapes are undone in Python, checking
that both give the same bytes. A cursor's query runs without parallel workers; COPY's may not.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.rows import VIEW_FILTER, VIEW_SORT, Reader, build_view_indexes, query, to_sql
from benchmarks.rows_data import database, make_panel
from panels.platform.jobs import postgres_dsn
from panels.rows.compiler import compile_rows, panel_rows
from panels.rows.export import csv_lines

_ESCAPES = {b"\\": b"\\", b"r": b"\r", b"n": b"\n", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPES[b"v"] = b"\v"


def unescaped(copied: bytes) -> bytes:
    """COPY's text format back to the lines: every line already ends with its (escaped) CRLF,
    so COPY's own row ends are dropped."""
    return re.sub(rb"\\(.)", lambda m: _ESCAPES[m.group(1)], copied.replace(b"\n", b""))


async def compare(reader: Reader, sql: str, args: list[Any]) -> str:
    async with reader.transaction() as connection:
        await connection.execute("SET LOCAL cursor_tuple_fraction = 1")
        started = time.perf_counter()
        lines = [row[0] async for row in connection.cursor(sql, *args, prefetch=5000)]
        by_cursor = time.perf_counter() - started
        expected = "".join(lines).encode()
    async with reader.transaction() as connection:
        chunks: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            chunks.append(chunk)

        started = time.perf_counter()
        await connection.copy_from_query(sql, *args, output=sink, format="text")
        copied = unescaped(b"".join(chunks))
        by_copy = time.perf_counter() - started
        plan = await connection.fetch("EXPLAIN " + sql, *args)
    rows = len(lines)
    parallel = any("Gather" in row[0] for row in plan)
    return (
        f"rows {rows:,}: cursor {by_cursor:.2f} s ({rows / by_cursor:,.0f}/s), COPY "
        f"{by_copy:.2f} s ({rows / by_copy:,.0f}/s), identical {copied == expected}, "
        f"parallel plan for COPY {parallel}"
    )


async def run(url: str) -> None:
    dsn = postgres_dsn(url)
    owner = await asyncpg.connect(dsn, server_settings={"app.maintenance": "on"})
    try:
        panel = await make_panel(owner, 1_000_000)
    finally:
        await owner.close()
    await build_view_indexes(dsn, panel)
    connection = await asyncpg.connect(dsn)
    try:
        reader = Reader(connection, panel)
        source = panel_rows(panel.tenant_id, panel.panel_id, panel.source_ids)
        shown = [(column.id, column.type) for column in panel.columns]
        shapes: dict[str, dict[str, Any]] = {
            "view (Ward = W3, Risk desc)": {"filters": [VIEW_FILTER], "sorts": [VIEW_SORT]},
            "whole panel": {},
        }
        for name, shape in shapes.items():
            compiled = compile_rows(source, query(panel, limit=None, **shape))
            sql, args = to_sql(csv_lines(compiled, shown))
            for _ in range(2):
                print(f"{name}: {await compare(reader, sql, args)}", flush=True)
    finally:
        await connection.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pbench-rows-copy-"))
    try:
        with database(workdir, os.environ.get("DATABASE_URL") or None) as url:
            asyncio.run(run(url))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
