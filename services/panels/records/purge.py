"""Freeing the space of records whose data source (or panel) is gone.

Deleting a source or a panel deletes no records: they become unreachable at once, because
every read joins the live `datasource` row, and this purge deletes them later in bounded
batches, so removing a million-record source never holds a request. Ids are never reused, so a
record whose source id has no `datasource` row is garbage for good. Each batch also removes the
deleted records' entries from the panel's merged rows (`panel_row`), and the rows left empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# The distinct source ids of the tenant's records, one index probe each (a loose index scan
# over the primary key), then those without a live source row.
_PURGE = text(
    """
    WITH RECURSIVE present(source_id) AS (
      (SELECT source_id FROM source_record WHERE tenant_id = :tenant
       ORDER BY source_id LIMIT 1)
      UNION ALL
      SELECT (SELECT r.source_id FROM source_record r
              WHERE r.tenant_id = :tenant AND r.source_id > p.source_id
              ORDER BY r.source_id LIMIT 1)
      FROM present p WHERE p.source_id IS NOT NULL
    ),
    orphaned AS (
      SELECT p.source_id FROM present p
      WHERE p.source_id IS NOT NULL AND NOT EXISTS (
        SELECT FROM datasource d WHERE d.tenant_id = :tenant AND d.id = p.source_id)
    ),
    doomed AS (
      SELECT r.source_id, r.key FROM source_record r
      WHERE r.tenant_id = :tenant AND r.source_id IN (SELECT source_id FROM orphaned)
      LIMIT :limit
    ),
    gone AS (
      DELETE FROM source_record r USING doomed d
      WHERE r.tenant_id = :tenant AND r.source_id = d.source_id AND r.key = d.key
      RETURNING r.panel_id, r.source_id, r.key
    ),
    per_row AS (
      SELECT panel_id, key, array_agg(source_id::text) AS source_ids FROM gone
      GROUP BY panel_id, key
    ),
    emptied AS (
      DELETE FROM panel_row p USING per_row g
      WHERE p.tenant_id = :tenant AND p.panel_id = g.panel_id AND p.key = g.key
        AND p.sources - g.source_ids = '{}'::jsonb
    ),
    trimmed AS (
      UPDATE panel_row p SET sources = p.sources - g.source_ids FROM per_row g
      WHERE p.tenant_id = :tenant AND p.panel_id = g.panel_id AND p.key = g.key
        AND p.sources - g.source_ids <> '{}'::jsonb
    )
    SELECT count(*) FROM gone
    """
)


async def purge_orphaned_records(session: AsyncSession, tenant_id: str, limit: int) -> int:
    """Delete at most `limit` records of deleted sources of the tenant; the number deleted.

    Runs in the caller's transaction: commit after each call, and call again while it returns
    `limit`, so each transaction stays short.
    """
    result = await session.execute(_PURGE, {"tenant": tenant_id, "limit": limit})
    return int(result.scalar_one())
