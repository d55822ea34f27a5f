"""A panel's rows from the `source_record` table, as the `RowSource` the compiler reads.

One row per key, with one JSONB column per live source: `(array_agg(record) FILTER (WHERE
source_id = :id))[1]` (the primary key makes it the only record of that source and key).

Merging at read time costs a `GROUP BY key` over every record of the panel's sources before
any filter can apply, since the filters read the merged values. Should that cost more than
the page at 1M rows, the alternative is one merged document per key kept at ingest (a
`panel_row(tenant_id, panel_id, key, sources jsonb)` holding `{"<source id>": record}`,
rewritten for the touched keys by each push or sync, in the same transaction): then
`RowSource` is that table with `sources -> '<id>'` as each source column, no grouping is
needed, and expression indexes on the converted values serve filters and sorts on any
source's fields. The compiler is the same either way: it reads only the `RowSource`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ARRAY, BigInteger, Text, column, func, select, table, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from .spec import RowSource, source_column

SOURCE_RECORD = table(
    "source_record",
    column("tenant_id", Text()),
    column("panel_id", BigInteger()),
    column("source_id", BigInteger()),
    column("key", Text()),
    column("record", JSONB()),
)


def panel_rows(tenant_id: str, panel_id: int, live_source_ids: Sequence[int]) -> RowSource:
    """The rows of a panel whose live sources are `live_source_ids` (records of a deleted
    source are left out even before they are purged)."""
    records = SOURCE_RECORD
    sources = tuple(sorted(live_source_ids))
    per_source = [
        type_coerce(
            func.array_agg(records.c.record).filter(records.c.source_id == source_id),
            ARRAY(JSONB()),
        )[1].label(source_column(source_id))
        for source_id in sources
    ]
    rows = (
        select(records.c.key, *per_source)
        .where(
            records.c.tenant_id == tenant_id,
            records.c.panel_id == panel_id,
            records.c.source_id.in_(sources),
        )
        .group_by(records.c.key)
        .subquery("panel_rows")
    )
    return RowSource(rows, sources)
