"""Rows of a 1,000,000-key panel at SQL level: pages, counts, a deep cursor, a full export.

    uv run python -m benchmarks.rows [--records 1000000] [--repeats 20]

Starts an embedded PostgreSQL in a temporary folder (or uses DATABASE_URL), migrates it, and
loads a panel of two sources merged by key (`rows_data.py`: 6 base columns, 3 calculated, one
a chain of 3). Every query is compiled by `compile_rows` over `panel_rows` and run on a plain
asyncpg connection as the request role with the tenant set (row-level security on), each in a
transaction of its own; only the statement is timed. Prints p50/p99 per scenario over
`--repeats` runs (fewer when a scenario's time budget runs out: the column says how many).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from benchmarks.rows_data import Panel, database, make_panel, merged_at_read
from benchmarks.runner.common import log
from benchmarks.runner.measure import rss_mb
from panels.platform.db import APP_ROLE
from panels.platform.jobs import postgres_dsn
from panels.rows.compiler import (
    BaseColumn,
    CompiledRows,
    Condition,
    RowQuery,
    RowSource,
    Sort,
    compile_export,
    compile_rows,
    encode_cursor,
    panel_rows,
    sort_label,
)
from panels.rows.compiler.pivot import PANEL_ROW
from panels.rows.export import BATCH_ROWS, csv_lines
from panels.rows.indexes import ViewShape, wanted_indexes
from panels.rows.planning import EXPORT_PLANS
from panels.rows.services import _page_with_total
from panels.rows.totals import stored_total

NOW = datetime(2026, 12, 1, tzinfo=UTC)
VIEW_FILTER = Condition("eq", "W3", column_id=3)
VIEW_SORT = Sort(4, descending=True)
CALCULATED_FILTER = Condition("eq", "high", column_id=9)
STORED_KEY = "the view"  # the count key its stored total is kept under
BUDGET_SECONDS = 60.0
_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


def to_sql(statement: Select[Any]) -> tuple[str, list[Any]]:
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors
    args = []
    for name in compiled.positiontup or ():
        value = compiled.params[name]
        processor = processors.get(name)
        args.append(processor(value) if processor is not None else value)
    return compiled.string, args


def query(panel: Panel, **shape: Any) -> RowQuery:
    shown = [column.id for column in panel.columns]
    return RowQuery(columns=panel.columns, shown=shown, now=NOW, **shape)


class Reader:
    """One connection as the request role of the panel's tenant."""

    def __init__(self, connection: asyncpg.Connection, panel: Panel) -> None:
        self.connection = connection
        self.panel = panel

    @contextlib.asynccontextmanager
    async def transaction(self) -> Any:
        async with self.connection.transaction():
            await self.connection.execute(
                f"SELECT set_config('role', '{APP_ROLE}', true),"
                " set_config('app.tenant_id', $1, true),"
                # As the rows service does (`rows.services.CUSTOM_PLANS`).
                " set_config('plan_cache_mode', 'force_custom_plan', true)",
                self.panel.tenant_id,
            )
            yield self.connection

    def stored(self, count_key: str) -> Any:
        """The panel's total stored under `count_key` (`rows.totals.stored_total`)."""
        return stored_total(self.panel.tenant_id, self.panel.panel_id, count_key)

    async def fetch(self, statement: Select[Any]) -> tuple[float, list[Any]]:
        sql, args = to_sql(statement)
        async with self.transaction() as connection:
            started = time.perf_counter()
            rows = await connection.fetch(sql, *args)
            return time.perf_counter() - started, rows

    async def explain(self, statement: Select[Any]) -> str:
        sql, args = to_sql(statement)
        async with self.transaction() as connection:
            plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
        return "\n".join(row[0] for row in plan)


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def repeat(
    reader: Reader, statement: Select[Any], repeats: int, budget: float = BUDGET_SECONDS
) -> dict[str, Any]:
    samples: list[float] = []
    spent = 0.0
    rows: list[Any] = []
    while len(samples) < repeats and (spent < budget or len(samples) < 3):
        seconds, rows = await reader.fetch(statement)
        samples.append(seconds)
        spent += seconds
    return {
        "p50": statistics.median(samples) * 1000,
        "p99": percentile(samples, 0.99) * 1000,
        "runs": len(samples),
        "rows": rows,
    }


async def deep_cursor(reader: Reader, source: RowSource, sorts: Sequence[Sort], depth: int) -> str:
    """The cursor of the row at `depth` (found once with OFFSET, untimed)."""
    compiled = compile_rows(source, query(reader.panel, sorts=sorts, offset=depth - 1, limit=1))
    _, rows = await reader.fetch(compiled.page)
    row = rows[0]
    values = [row[sort_label(i)] for i in range(len(sorts))]
    return encode_cursor(compiled.sort_keys, values, row["key"])


async def export(reader: Reader, source: RowSource, **shape: Any) -> dict[str, Any]:
    """The CSV export's statement (`csv_lines` over `compile_export`, what the export route
    runs) of the rows of `shape`, its lines read through a server-side cursor as the route
    reads them (`export.EXPORT_PLANS` set) and discarded; the backend's CPU time from its
    `/proc/<pid>/stat` (PostgreSQL on this machine), which moves less with the load than
    the wall time."""
    exported = compile_export(source, query(reader.panel, limit=None, **shape))
    shown = [(column.id, column.type) for column in reader.panel.columns]
    sql, args = to_sql(csv_lines(exported, shown))
    before = rss_mb(os.getpid()) or 0.0
    peak = before
    count = 0
    async with reader.transaction() as connection:
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        await connection.execute(str(EXPORT_PLANS))
        cpu_before = backend_cpu_seconds(backend)
        started = time.perf_counter()
        async for _line in connection.cursor(sql, *args, prefetch=BATCH_ROWS):
            count += 1
            if count % 100_000 == 0:
                peak = max(peak, rss_mb(os.getpid()) or 0.0)
        seconds = time.perf_counter() - started
        cpu = backend_cpu_seconds(backend) - cpu_before
    return {
        "rows": count,
        "seconds": seconds,
        "rate": count / seconds,
        "rss": peak - before,
        "database_cpu": cpu,
    }


def backend_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process of this machine (a PostgreSQL backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The plan lines worth reading: the nodes, not their conditions.
_PLAN_NODES = (
    "Scan",
    "Limit",
    "InitPlan",
    "never executed",
    "Append",
    "Aggregate",
    "Sort  ",
    "Execution Time",
    "Gather",
)


async def plans(reader: Reader, source: RowSource, records: int) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) node lines of the page with its total, the deep cursor
    page and the ad-hoc page, as the request role."""
    view = compile_rows(source, query(reader.panel, filters=[VIEW_FILTER], sorts=[VIEW_SORT]))
    adhoc = compile_rows(
        source, query(reader.panel, filters=[CALCULATED_FILTER], sorts=[VIEW_SORT])
    )
    cursor = await deep_cursor(reader, source, [VIEW_SORT], records // 2)
    deep = compile_rows(source, query(reader.panel, sorts=[VIEW_SORT], cursor=cursor))
    page_20 = compile_rows(
        source, query(reader.panel, filters=[VIEW_FILTER], sorts=[VIEW_SORT], offset=950)
    )
    for label, statement in (
        ("view page with its total (a count miss)", _page_with_total(view, reader.stored(""))),
        ("view page with its stored total", _page_with_total(view, reader.stored(STORED_KEY))),
        ("view page 20 (offset 950)", page_20.page),
        ("deep page by cursor", deep.page),
        ("ad-hoc page", adhoc.page),
        ("ad-hoc count", adhoc.count),
    ):
        plan = await reader.explain(statement)
        nodes = [line for line in plan.splitlines() if any(n in line for n in _PLAN_NODES)]
        print(f"\nplan of the {label}:\n" + "\n".join(line[:160] for line in nodes))


# The exports measured: the whole panel, and the view (filtered and sorted).
WHOLE_PANEL: dict[str, Any] = {}
VIEW_SHAPE: dict[str, Any] = {"filters": [VIEW_FILTER], "sorts": [VIEW_SORT]}


async def scenarios(
    reader: Reader,
    source: RowSource,
    repeats: int,
    records: int,
    exports: Sequence[tuple[str, dict[str, Any]]] = (),
) -> list[tuple[str, Any]]:
    view = compile_rows(source, query(reader.panel, filters=[VIEW_FILTER], sorts=[VIEW_SORT]))
    adhoc = compile_rows(
        source, query(reader.panel, filters=[CALCULATED_FILTER], sorts=[VIEW_SORT])
    )
    whole = compile_rows(source, query(reader.panel))
    results: list[tuple[str, Any]] = []

    async def measure(label: str, statement: Select[Any]) -> None:
        result = await repeat(reader, statement, repeats)
        results.append((label, result))
        log(f"{label}: p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms ({result['runs']})")

    await measure("view page 50 (filter Ward = W3, sort Risk desc)", view.page)
    await measure("view count (total of that page)", view.count)
    await measure(
        "view page with its total, one statement (a count miss)",
        _page_with_total(view, reader.stored("")),
    )
    await store_view_total(reader, view)
    await measure(
        "view page with its stored total, one statement (the recount job's)",
        _page_with_total(view, reader.stored(STORED_KEY)),
    )
    page_20 = compile_rows(
        source, query(reader.panel, filters=[VIEW_FILTER], sorts=[VIEW_SORT], offset=950)
    )
    await measure("view page 20 (offset 950)", page_20.page)
    await measure("ad-hoc filter Band = high (calculated, chain of 3) + sort", adhoc.page)
    await measure("ad-hoc count", adhoc.count)
    await measure("panel count (no filter)", whole.count)
    depth = records // 2
    cursor = await deep_cursor(reader, source, [VIEW_SORT], depth)
    deep = compile_rows(source, query(reader.panel, sorts=[VIEW_SORT], cursor=cursor))
    await measure(f"deep page by cursor (after row {depth:,}, sort Risk desc)", deep.page)
    for label, shape in exports:
        exported = await export(reader, source, **shape)
        log(f"{label}: {exported}")
        results.append((label, exported))
    return results


async def store_view_total(reader: Reader, view: CompiledRows) -> None:
    """Store the view's total as the recount job does (`rows.recount`), under STORED_KEY at
    the panel's rows version."""
    _seconds, [(total,)] = await reader.fetch(view.count)
    async with reader.transaction() as connection:
        await connection.execute(
            "INSERT INTO panel_row_total (tenant_id, panel_id, count_key, version, total)"
            " SELECT tenant_id, panel_id, $1, version, $2 FROM panel_row_version"
            " WHERE tenant_id = $3 AND panel_id = $4"
            " ON CONFLICT (tenant_id, panel_id, count_key) DO UPDATE SET total = excluded.total",
            STORED_KEY,
            total,
            reader.panel.tenant_id,
            reader.panel.panel_id,
        )


def print_table(title: str, results: list[tuple[str, Any]]) -> None:
    print(f"\n{title}\n")
    print("| query | p50 ms | p99 ms | runs |")
    print("|---|---:|---:|---:|")
    for label, result in results:
        if label.startswith("export"):
            continue
        print(f"| {label} | {result['p50']:.1f} | {result['p99']:.1f} | {result['runs']} |")
    for label, result in results:
        if label.startswith("export"):
            print(
                f"\n{label}, CSV lines through a server-side cursor: {result['rows']:,} rows in"
                f" {result['seconds']:.2f} s, {result['rate']:,.0f} rows/s, client RSS growth"
                f" {result['rss']:.1f} MB; CPU of the PostgreSQL backend"
                f" {result['database_cpu']:.2f} s"
                f" ({result['rows'] / max(result['database_cpu'], 0.01):,.0f} rows per CPU-second)"
            )


async def build_view_indexes(dsn: str, panel: Panel) -> None:
    """The indexes the index job builds for a view filtered by VIEW_FILTER and sorted by
    VIEW_SORT, then ANALYZE."""
    base_columns = [column for column in panel.columns if isinstance(column, BaseColumn)]
    view = ViewShape(
        [(VIEW_SORT.column_id, VIEW_SORT.descending)],
        [(VIEW_FILTER.column_id, VIEW_FILTER.operator, VIEW_FILTER.logical_operator)],
    )
    owner = await asyncpg.connect(dsn, server_settings={"app.maintenance": "on"})
    try:
        for statement in wanted_indexes(
            panel.panel_id, panel.source_ids, base_columns, [view]
        ).values():
            started = time.perf_counter()
            await owner.execute(statement)
            log(f"index built in {time.perf_counter() - started:.1f} s")
        await owner.execute("ANALYZE panel_row")
    finally:
        await owner.close()


async def run(
    url: str, records: int, repeats: int, read_time_merge: bool, with_export: bool
) -> None:
    dsn = postgres_dsn(url)
    owner = await asyncpg.connect(dsn, server_settings={"app.maintenance": "on"})
    try:
        started = time.perf_counter()
        panel = await make_panel(owner, records)
        log(f"loaded {records:,} keys in {time.perf_counter() - started:.1f} s")
    finally:
        await owner.close()
    connection = await asyncpg.connect(dsn)
    try:
        reader = Reader(connection, panel)
        if read_time_merge:
            merged = merged_at_read(panel)
            results = await scenarios(reader, merged, repeats, records)
            print_table("rows merged at read time (GROUP BY key over source_record)", results)
        source = panel_rows(panel.tenant_id, panel.panel_id, panel.source_ids)
        # The table itself, under its row-level security policies: how rows were read before
        # panel_row_visible (migration 20261201_0012).
        policed = panel_rows(panel.tenant_id, panel.panel_id, panel.source_ids, PANEL_ROW)
        whole = [("export of the whole panel", WHOLE_PANEL)] if with_export else []
        results = await scenarios(reader, source, repeats, records, whole)
        print_table("panel_row_visible, no index built", results)
        await build_view_indexes(dsn, panel)
        results = await scenarios(reader, policed, repeats, records)
        print_table("panel_row under row-level security, the view's indexes built", results)
        view = [("export of the view", VIEW_SHAPE)] if with_export else []
        results = await scenarios(reader, source, repeats, records, view)
        print_table("panel_row_visible, the view's indexes built", results)
        await plans(reader, source, records)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--read-time-merge",
        action="store_true",
        help="also measure rows merged at read time (slow: about a minute more)",
    )
    parser.add_argument("--no-export", action="store_true", help="skip the CSV exports")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pbench-rows-"))
    try:
        with database(workdir, os.environ.get("DATABASE_URL") or None) as url:
            asyncio.run(
                run(url, args.records, args.repeats, args.read_time_merge, not args.no_export)
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
