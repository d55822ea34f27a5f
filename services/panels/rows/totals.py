"""Stored totals: each saved view's `total` (and the panel's unfiltered one), counted by a job
when the rows or their shape change, and read by a page miss instead of counting.

Why: a total counts every matching row. At 1,000,000 rows a view's took 168 ms with its
index (a bitmap heap scan: the view's rows lie on every heap page of the panel), against 3 ms
for its page (benchmarks/README.md). Every change of a panel's rows or shape empties its
cache scope, so without stored totals the first page of every view after each push or sync
paid that count, and under load those misses made the 50-user p99.

How a stored total stays right (migration 20261201_0013):

- The records writer raises the panel's `panel_row_version` in the transaction that changes
  its rows (`raise_rows_version`) and queues a recount (`queue_recount`), as does every
  change that alters what a count is made of (`change.invalidation.RECOUNTS`).
- A total is stored with the count key that names what decided it (`RowsShape.count_key`)
  and the version it was counted at; a page reads it only while that version is the panel's
  (`stored_total`), else counts, in the same statement (`COALESCE` runs the count only when
  no total is stored). So a stored total is never older than the rows it reports on.
- The job (`rows.recount`) reads the version, counts, and stores only if the version has not
  moved meanwhile (a writer that committed in between raised it: the job counts again).
- A count whose cohort or filters read `TODAY()` or `NOW()` is never stored: it changes with
  the clock, not with the rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Text, and_, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.jobs import BACKGROUND_PRIORITY, enqueue

RECOUNT_ENTRYPOINT = "panels.rows-recount"
# One recount per panel queued at a time (a dedupe key), run this long after the change that
# queued it: a burst of pushes (one per second, say) is counted once per round rather than
# once per push, so the counts' cost stays bounded by time, not by the rate of changes.
RECOUNT_DELAY = timedelta(seconds=2)

PANEL_ROW_VERSION = table(
    "panel_row_version",
    column("tenant_id", Text()),
    column("panel_id", BigInteger()),
    column("version", BigInteger()),
)
PANEL_ROW_TOTAL = table(
    "panel_row_total",
    column("tenant_id", Text()),
    column("panel_id", BigInteger()),
    column("count_key", Text()),
    column("version", BigInteger()),
    column("total", BigInteger()),
)
_RAISE_VERSION = text(
    "INSERT INTO panel_row_version AS v (tenant_id, panel_id, version) VALUES (:tenant, :panel, 1)"
    " ON CONFLICT (tenant_id, panel_id) DO UPDATE SET version = v.version + 1"
)


class RecountJob(msgspec.Struct, rename="camel"):
    tenant_id: str
    panel_id: int


async def raise_rows_version(session: AsyncSession, tenant_id: str, panel_id: int) -> None:
    """Mark the panel's rows as changed, in the transaction that changes them: every total
    stored before stops being read once it commits."""
    await session.execute(_RAISE_VERSION, {"tenant": tenant_id, "panel": panel_id})


async def queue_recount(session: AsyncSession, tenant_id: str, panel_id: int) -> None:
    """Queue the recount of the panel's stored totals in the session's (flushed) transaction,
    unless one is queued or running already: a running one counts again what changed while it
    counted (`rows.recount.recount_totals`)."""
    payload = msgspec.json.encode(RecountJob(tenant_id, panel_id))
    await enqueue(
        session,
        RECOUNT_ENTRYPOINT,
        payload,
        dedupe_key=f"{RECOUNT_ENTRYPOINT}:{tenant_id}:{panel_id}",
        priority=BACKGROUND_PRIORITY,
        delay=RECOUNT_DELAY,
    )


def stored_total(tenant_id: str, panel_id: int, count_key: str) -> Any:
    """The total stored for `count_key` at the panel's current rows version, else NULL (a
    scalar subquery)."""
    total, version = PANEL_ROW_TOTAL, PANEL_ROW_VERSION
    current = and_(
        version.c.tenant_id == total.c.tenant_id,
        version.c.panel_id == total.c.panel_id,
        version.c.version == total.c.version,
    )
    return (
        select(total.c.total)
        .select_from(total.join(version, current))
        .where(
            total.c.tenant_id == tenant_id,
            total.c.panel_id == panel_id,
            total.c.count_key == count_key,
        )
        .scalar_subquery()
    )
