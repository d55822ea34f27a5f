"""The rows benchmark's data: a database migrated to head and a panel of synthetic patients.

Two sources merged by key: `patients` (every key: name, born, ward, riskScore, admitted) and
`vitals` (every other key: `vitals.hr`). Made with `generate_series` as the tables' owner
(maintenance on), which row-level security lets past; the reads run as the request role.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Text, column, func, select, table, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from panels.column.formula import parse
from panels.rows.compiler import BaseColumn, CalculatedColumn, Column, RowSource, source_column

TENANT = "bench-rows"


def panel_columns(patients: int, vitals: int) -> list[Column]:
    """6 base columns (5 from `patients`, 1 from `vitals`) and 3 calculated, one a chain of 3:
    Band reads Load, which reads Doubled."""
    return [
        BaseColumn(1, "Name", "text", "name", patients),
        BaseColumn(2, "Born", "date", "born", patients),
        BaseColumn(3, "Ward", "select", "ward", patients),
        BaseColumn(4, "Risk", "number", "riskScore", patients),
        BaseColumn(5, "Admitted", "boolean", "admitted", patients),
        BaseColumn(6, "HR", "number", "vitals.hr", vitals),
        CalculatedColumn(7, "Doubled", "number", parse("Risk * 2")),
        CalculatedColumn(8, "Load", "number", parse("Doubled + COALESCE(HR, 0)")),
        CalculatedColumn(9, "Band", "text", parse('IF(Load > 150, "high", "low")')),
    ]


@dataclass(frozen=True, slots=True)
class Panel:
    tenant_id: str
    panel_id: int
    source_ids: tuple[int, int]
    columns: list[Column]


@contextlib.contextmanager
def database(workdir: Path, url: str | None) -> Iterator[str]:
    """`url`, or an embedded PostgreSQL under `workdir`; migrated to head."""
    embedded: Any = None
    if url is None:
        from panels.platform.embedded import EmbeddedServices, start_postgres

        services = EmbeddedServices(postgres=start_postgres(workdir))
        embedded = services.postgres
        url = services.database_url()
    try:
        from advanced_alchemy.alembic.commands import AlembicCommands

        from panels.platform.db import migration_config

        AlembicCommands(sqlalchemy_config=migration_config(url)).upgrade("head")
        yield url
    finally:
        if embedded is not None:
            embedded.cleanup()


async def make_panel(owner: Any, records: int) -> Panel:
    """A panel of `records` keys (the owner connection has `app.maintenance` on)."""
    for name in ("panel_row", "source_record", "panel"):
        await owner.execute(f"DELETE FROM {name} WHERE tenant_id = $1", TENANT)
    panel_id = await owner.fetchval(
        "INSERT INTO panel (tenant_id, user_id, name) VALUES ($1, 'bench', 'Rows') RETURNING id",
        TENANT,
    )
    source_ids = []
    for _ in range(2):
        source_ids.append(
            await owner.fetchval(
                "INSERT INTO datasource (tenant_id, panel_id, type) VALUES ($1, $2, 'custom')"
                " RETURNING id",
                TENANT,
                panel_id,
            )
        )
    patients, vitals = source_ids
    key = "'MRN' || lpad(n::text, 8, '0')"
    await owner.execute(
        f"""
        INSERT INTO source_record (tenant_id, panel_id, source_id, key, record, content_hash)
        SELECT $1, $2, $3, {key},
          jsonb_build_object(
            'id', {key},
            'name', (ARRAY['Ada','Bo','Cy','Di','Eli','Fay'])[1 + n % 6] || ' '
              || (ARRAY['Gus','Hana','Ivo','Jun','Kai','Lia'])[1 + n / 6 % 6] || 'son',
            'born', to_char(DATE '1930-01-01' + (n::bigint * 7919 % 32000)::int, 'YYYY-MM-DD'),
            'ward', 'W' || (1 + n::bigint * 48271 % 12),
            'riskScore', round((n::bigint * 2654435761 % 10000) / 100.0, 2),
            'admitted', n::bigint * 69621 % 10 < 3),
          decode(md5(n::text), 'hex')
        FROM generate_series(0, $4::int - 1) AS n
        """,
        TENANT,
        panel_id,
        patients,
        records,
    )
    await owner.execute(
        f"""
        INSERT INTO source_record (tenant_id, panel_id, source_id, key, record, content_hash)
        SELECT $1, $2, $3, {key},
          jsonb_build_object('id', {key}, 'vitals', jsonb_build_object(
            'hr', 50 + n::bigint * 7919 % 81, 'spo2', 85 + n % 16)),
          decode(md5(n::text), 'hex')
        FROM generate_series(0, $4::int - 1, 2) AS n
        """,
        TENANT,
        panel_id,
        vitals,
        records,
    )
    # What the records writer keeps at ingest: the panel's records merged by key.
    await owner.execute(
        """
        INSERT INTO panel_row (tenant_id, panel_id, key, sources)
        SELECT tenant_id, panel_id, key, jsonb_object_agg(source_id::text, record)
        FROM source_record WHERE tenant_id = $1 AND panel_id = $2
        GROUP BY tenant_id, panel_id, key
        """,
        TENANT,
        panel_id,
    )
    # The records writer raises the rows version in the same transaction (`rows.totals`).
    await owner.execute(
        "INSERT INTO panel_row_version (tenant_id, panel_id, version) VALUES ($1, $2, 1)",
        TENANT,
        panel_id,
    )
    await owner.execute("ANALYZE source_record")
    await owner.execute("ANALYZE panel_row")
    return Panel(TENANT, panel_id, (patients, vitals), panel_columns(patients, vitals))


def merged_at_read(panel: Panel) -> RowSource:
    """The rows merged at read time, as `panel_rows` did before `panel_row` existed: a
    `GROUP BY key` over the panel's records (kept here to measure what it costs)."""
    records = table(
        "source_record",
        column("tenant_id", Text()),
        column("panel_id", BigInteger()),
        column("source_id", BigInteger()),
        column("key", Text()),
        column("record", JSONB()),
    )
    sources = tuple(sorted(panel.source_ids))
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
            records.c.tenant_id == panel.tenant_id,
            records.c.panel_id == panel.panel_id,
            records.c.source_id.in_(sources),
        )
        .group_by(records.c.key)
        .subquery("merged_at_read")
    )
    return RowSource(rows, sources)
