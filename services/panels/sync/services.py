"""Starting syncs and reading their runs, for API callers.

A sync is a `sync_run` row and a queued job, written in the request's transaction: both
commit or neither does. The source's row is locked first, so two requests for the same source
serialize and the second finds the first's run (and returns it) instead of starting another;
the partial unique index of migration 0009 holds the same rule in the database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from advanced_alchemy.filters import OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import Access
from panels.datasource.entities import DataSource
from panels.datasource.schemas import DataSourceRead
from panels.datasource.services import DataSourceService
from panels.panel.services import PanelService
from panels.platform.cache import bump_after_commit
from panels.platform.db import bind_tenant, run_after_commit
from panels.platform.errors import BadRequest, NotFound
from panels.platform.http import JsonBody, encode_json, encoded
from panels.platform.jobs import enqueue
from panels.platform.paging import get_page
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.sync.entities import SyncRun
from panels.sync.fetch.common import missing_field
from panels.sync.schemas import FINISHED, SYNC_ENTRYPOINT, SyncFinished, SyncJob, SyncJobRead

WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.2


class SyncRunRepository(SQLAlchemyAsyncRepository[SyncRun]):
    model_type = SyncRun


class SyncRunService(SQLAlchemyAsyncRepositoryService[SyncRun, SyncRunRepository]):
    repository_type = SyncRunRepository


class SyncService:
    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        self.session = session
        self.ctx = ctx
        self.runtime = runtime
        self.panels = PanelService(session, ctx, runtime.cache)
        self.sources = DataSourceService(session, ctx, runtime)
        self.runs = SyncRunService(
            session=session, statement=tenant_statement(SyncRun, ctx), auto_refresh=False
        )

    async def start(self, source_id: int, panel_id: int | None) -> SyncRun:
        """The source's queued or running run, else a new one with its job."""
        source = await self.sources.get_source(source_id, panel_id)
        await self.panels.require_access(
            source.panel_id, Access.EDITOR, "sync this panel's data sources"
        )
        if source.type == "custom":
            raise BadRequest("type", "custom sources receive records only through …/records")
        missing = missing_field(source.type, source.config)
        if missing is not None:
            raise BadRequest(missing, "is required to sync this source")
        return await queue_sync(self.session, source, requested_by=self.ctx.user_id)

    async def wait_for(self, run: SyncRun) -> SyncFinished | None:
        """Commit the request's work, then wait (at most WAIT_SECONDS) for the run to finish:
        the run as finished with its source, or None when it has not finished in time."""
        await self.session.commit()
        await run_after_commit(self.session)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            async with self.runtime.db.get_session() as poll:
                bind_tenant(poll, self.ctx.tenant_id)
                current = await poll.get(SyncRun, run.id)
                if current is not None and current.status in FINISHED:
                    source = await poll.get(DataSource, current.datasource_id)
                    if source is not None:
                        return _finished(self.sources.to_read(source), current)
                if current is None:
                    raise NotFound("Sync job not found")
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_POLL_SECONDS)

    async def read_run(self, job_id: uuid.UUID) -> JsonBody:
        run = await self.session.scalar(
            tenant_statement(SyncRun, self.ctx).where(SyncRun.id == job_id)
        )
        if run is None:
            raise NotFound("Sync job not found")
        try:
            await self.panels.get_readable(run.panel_id)
        except NotFound:
            raise NotFound("Sync job not found") from None
        return encoded(SyncJobRead.from_entity(run))

    async def list_runs(
        self, source_id: int, panel_id: int | None, *, limit: int, offset: int
    ) -> JsonBody:
        source = await self.sources.get_source(source_id, panel_id, lock=False)
        await self.panels.get_readable(source.panel_id)
        order = [
            OrderBy(field_name="created_at", sort_order="desc"),
            OrderBy(field_name="id", sort_order="asc"),
        ]
        runs, total = await get_page(
            self.runs,
            order=order,
            limit=limit,
            offset=offset,
            conditions=[SyncRun.datasource_id == source.id],
        )
        return JsonBody(encode_json([SyncJobRead.from_entity(r) for r in runs]), total=total)


async def queue_sync(
    session: AsyncSession, source: DataSource, *, requested_by: str | None
) -> SyncRun:
    """The source's queued or running run, else a new run with its job, in the session's
    transaction. The caller has locked the source's row (so two callers serialize) and checked
    that it may sync."""
    active = await session.scalar(
        select(SyncRun).where(
            SyncRun.tenant_id == source.tenant_id,
            SyncRun.datasource_id == source.id,
            SyncRun.status.in_(("queued", "running")),
        )
    )
    if active is not None:
        return active
    run = SyncRun(
        id=uuid.uuid4(),
        tenant_id=source.tenant_id,
        panel_id=source.panel_id,
        datasource_id=source.id,
        status="queued",
        progress=0.0,
        records_processed=0,
        records_inserted=0,
        records_updated=0,
        records_deleted=0,
        attempts=0,
        requested_by=requested_by,
        created_at=datetime.now(UTC),
    )
    session.add(run)
    await session.flush()  # the transaction is open before the job joins it
    payload = msgspec.json.encode(SyncJob(tenant_id=source.tenant_id, run_id=run.id))
    dedupe_key = f"sync:{source.tenant_id}:{source.id}"
    if await enqueue(session, SYNC_ENTRYPOINT, payload, dedupe_key=dedupe_key) is None:
        # The source's previous job has finished its run but is not yet marked done in the
        # queue (its worker records that in batches): the run above is the only active one,
        # so it gets a job of its own.
        await enqueue(session, SYNC_ENTRYPOINT, payload)
    await set_source_sync(session, run, sync_status="queued")
    return run


async def set_source_sync(session: AsyncSession, run: SyncRun, **values: Any) -> None:
    """Change the run's source's sync fields; its panel's cached reads show them after commit."""
    await session.execute(
        update(DataSource)
        .where(DataSource.tenant_id == run.tenant_id, DataSource.id == run.datasource_id)
        .values(**values)
    )
    bump_after_commit(session, run.tenant_id, [str(run.panel_id)])


def _finished(source: DataSourceRead, run: SyncRun) -> SyncFinished:
    fields = msgspec.structs.asdict(source)
    duration = (run.finished_at or run.created_at) - (run.started_at or run.created_at)
    return SyncFinished(
        **fields,
        status=run.status,  # type: ignore[arg-type]
        records_processed=run.records_processed,
        records_inserted=run.records_inserted,
        records_updated=run.records_updated,
        records_deleted=run.records_deleted,
        message=run.error,
        duration_ms=int(duration.total_seconds() * 1000),
    )
