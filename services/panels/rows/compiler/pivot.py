"""A panel's rows from the `panel_row` table, as the `RowSource` the compiler reads.

Rows are read through `panel_row_visible`, the view of the rows of the transaction's tenant
(migration 20261201_0012): there row-level security does not keep the query's conditions out
of the indexes (`rows.indexes`). The tenant is also named here, as on every other table.

One `panel_row` per key holds `{"<source id>": record}` for every source of the panel with a
record for that key, kept up to date at ingest by the records writer (migration
20261201_0011). Merging at read time instead (a `GROUP BY key` over `source_record`) cost
over a second at 1,000,000 keys before any filter could apply (benchmarks/README.md).

Each live source's record is `sources -> '<id>'`; a row shows only while one of the live
sources has a record for its key, so the entries of a deleted source are never read, even
before the purge removes them. The panel and source ids are written into the SQL as constants
(integers from the database, never client text): the partial expression indexes built for
views hold the same constants, and the planner matches them only to identical expressions.
(A column's path and the conversions' constants are parameters: only a plan made for their
values can use those indexes, `rows.services.CUSTOM_PLANS`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    column,
    false,
    func,
    literal_column,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import TableClause

from .spec import RowSource, source_column


def _rows_table(name: str) -> TableClause:
    return table(
        name,
        column("tenant_id", Text()),
        column("panel_id", BigInteger()),
        column("key", Text()),
        column("sources", JSONB()),
    )


# What indexes are built on, and what rows queries read (the same columns).
PANEL_ROW = _rows_table("panel_row")
PANEL_ROW_VISIBLE = _rows_table("panel_row_visible")


def source_record_of(source_id: int, rows: TableClause = PANEL_ROW_VISIBLE) -> Any:
    """`sources -> '<id>'`: the record of one source in a row of `rows`."""
    record = rows.c.sources.op("->")(literal_column(f"'{int(source_id)}'"))
    return type_coerce(record, JSONB())


def panel_rows(
    tenant_id: str,
    panel_id: int,
    live_source_ids: Sequence[int],
    rows: TableClause = PANEL_ROW_VISIBLE,
) -> RowSource:
    """The rows of a panel whose live sources are `live_source_ids` (records of a deleted
    source are left out even before they are purged), read from `rows` (`PANEL_ROW`: the
    table under its policies, as before the view existed, which benchmarks/rows.py compares)."""
    sources = tuple(sorted(live_source_ids))
    records = [source_record_of(source_id, rows) for source_id in sources]
    # "Has a record of a live source" written as a null test, which the planner estimates
    # as nearly always true (a JSONB operator such as `?|` gets a guess of 0.1%, and a row
    # estimate that low keeps it from reading a page off a sort index).
    present = func.coalesce(*records).is_not(None) if records else false()
    selected = (
        select(
            rows.c.key,
            *(record.label(source_column(id)) for id, record in zip(sources, records, strict=True)),
        )
        .where(
            rows.c.tenant_id == tenant_id,
            rows.c.panel_id == literal_column(str(int(panel_id)), BigInteger()),
            present,
        )
        .subquery("panel_rows")
    )
    return RowSource(selected, sources)
