"""The recount job: stores a panel's totals at its current rows version (`rows.totals`).

What it counts: the rows of each saved view of the panel (its filters over the cohort) and
the panel's rows without filters (its rows page without `filter`), each once per count key.
Ad-hoc filters are counted by the page that asks, and cached as before.
"""

from __future__ import annotations

import msgspec
import structlog
from sqlalchemy import ARRAY, BigInteger, Text, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload

from panels.panel.entities import Panel
from panels.platform.db import bind_tenant
from panels.platform.jobs import JobKind
from panels.platform.tenancy import statement_in_tenant
from panels.rows.compiler import CLOCK_PARAMETERS, Condition
from panels.rows.planning import CUSTOM_PLANS
from panels.rows.query import view_shape
from panels.rows.shape import RowsShape, load_shape, run_parameters
from panels.rows.totals import RECOUNT_ENTRYPOINT, RecountJob
from panels.view.entities import PanelView

RECOUNT_TIMEOUT_SECONDS = 900
# Rounds of counting while writers keep changing the rows; the next write queues another job.
MAX_ROUNDS = 3
log = structlog.get_logger("panels.rows")

_VERSION = text(
    "SELECT version FROM panel_row_version WHERE tenant_id = :tenant AND panel_id = :panel"
)
_STORED = text(
    "SELECT count_key, version FROM panel_row_total WHERE tenant_id = :tenant AND panel_id = :panel"
)
_STORE = text(
    """
    INSERT INTO panel_row_total AS t (tenant_id, panel_id, count_key, version, total)
    SELECT :tenant, :panel, counted.key, :version, counted.total
    FROM unnest(:keys, :totals) AS counted(key, total)
    ON CONFLICT (tenant_id, panel_id, count_key) DO UPDATE
      SET version = excluded.version, total = excluded.total, counted_at = now()
      WHERE t.version < excluded.version
    """
).bindparams(bindparam("keys", type_=ARRAY(Text())), bindparam("totals", type_=ARRAY(BigInteger())))
# Totals of an older version are never read again (`totals.stored_total`).
_FORGET = text(
    "DELETE FROM panel_row_total"
    " WHERE tenant_id = :tenant AND panel_id = :panel AND version < :version"
)


async def recount_totals(engine: AsyncEngine, tenant_id: str, panel_id: int) -> int:
    """Count and store the panel's totals that are not current, on `engine` (the request
    engine: as the request role, in the tenant); how many were stored.

    Rounds go on until every total is current (at most MAX_ROUNDS): a change committed while
    a round counted (whose own recount was not queued, this one running) is counted by the
    next. A change that commits after the last look leaves its totals to the pages (they
    count, as without stored totals) until the next change queues a recount."""
    where = {"tenant": tenant_id, "panel": panel_id}
    stored_in_all = 0
    failed: set[str] = set()  # counts that raised: not tried again by this job
    for _round in range(MAX_ROUNDS):
        async with AsyncSession(engine) as session:
            bind_tenant(session, tenant_id)
            version = await session.scalar(_VERSION, where)
            panel = await session.scalar(
                statement_in_tenant(Panel, tenant_id).where(Panel.id == panel_id)
            )
            if version is None or panel is None:  # no rows written yet, or no panel
                return stored_in_all
            shape = await load_shape(session, panel)
            stored: dict[str, int] = dict((await session.execute(_STORED, where)).all())
            wanted = {
                key: filters
                for key, filters in (await _counts_of(session, shape)).items()
                if stored.get(key) != version and key not in failed
            }
            if not wanted:
                return stored_in_all
            totals = {}
            for key, filters in wanted.items():
                total = await _count(session, shape, filters)
                if total is None:
                    failed.add(key)
                else:
                    totals[key] = total
            if await session.scalar(_VERSION, where) != version:
                continue  # a writer changed the rows meanwhile: these counts are of before
            await session.execute(
                _STORE,
                {**where, "version": version, "keys": [*totals], "totals": [*totals.values()]},
            )
            await session.execute(_FORGET, {**where, "version": version})
            await session.commit()
            log.info("panel totals counted", panel_id=panel_id, version=version, stored=len(totals))
            stored_in_all += len(totals)
    log.info("panel totals left to the pages: the panel kept changing", panel_id=panel_id)
    return stored_in_all


async def _counts_of(session: AsyncSession, shape: RowsShape) -> dict[str, list[Condition]]:
    """Count key to filters, for the panel's unfiltered rows and each of its views, but for
    counts that read the clock (never stored: they change with it, not with the rows)."""
    views = await session.scalars(
        statement_in_tenant(PanelView, shape.panel.tenant_id)
        .where(PanelView.panel_id == shape.panel.id)
        .options(selectinload(PanelView.sorts), selectinload(PanelView.filters))
    )
    counts: dict[str, list[Condition]] = {shape.count_key([]): []}
    for view in views:
        _shown, _sorts, filters = view_shape(view, shape.columns)
        counts[shape.count_key(filters)] = filters
    return {key: filters for key, filters in counts.items() if not _reads_clock(shape, filters)}


def _reads_clock(shape: RowsShape, filters: list[Condition]) -> bool:
    parameters = shape.compile([], [], filters, limit=None).count.compile().params
    return any(name in parameters for name in CLOCK_PARAMETERS)


async def _count(session: AsyncSession, shape: RowsShape, filters: list[Condition]) -> int | None:
    """The number of rows passing the cohort and `filters`, or None when it cannot be
    computed (a data error, as a page would report, or the statement timeout)."""
    try:
        async with session.begin_nested():
            await session.execute(CUSTOM_PLANS)
            count = shape.compile([], [], filters, limit=None).count
            return int(await session.scalar(count, run_parameters()) or 0)
    except DBAPIError as error:
        log.info("panel total not counted", panel_id=shape.panel.id, error=type(error).__name__)
        return None


def recount_kind(engine: AsyncEngine) -> JobKind:
    async def run(payload: bytes, _attempt: int) -> None:
        job = msgspec.json.decode(payload, type=RecountJob)
        await recount_totals(engine, job.tenant_id, job.panel_id)

    async def failed(payload: bytes, attempt: int, exc: BaseException, last: bool) -> None:
        log.warning("panel recount failed", attempt=attempt, error=type(exc).__name__, last=last)

    return JobKind(RECOUNT_ENTRYPOINT, run, failed, timeout_seconds=RECOUNT_TIMEOUT_SECONDS)
