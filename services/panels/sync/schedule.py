"""Scheduled syncs: sources whose `config.syncIntervalMinutes` has passed since their last run.

Every worker looks once a minute. The sources are found across tenants by the database
function `due_scheduled_syncs` (migration 0009: ids only); each is then queued in its tenant's
own transaction, with its row locked and the question asked again, so two workers looking at
once queue it once.
"""

from __future__ import annotations

from sqlalchemy import select, text

from panels.datasource.entities import DataSource
from panels.platform.db import run_after_commit
from panels.platform.runtime import Runtime, background_session
from panels.sync.fetch.common import missing_field
from panels.sync.services import queue_sync

SCHEDULE_SECONDS = 60.0
BATCH = 100
_DUE = text("SELECT tenant_id, datasource_id FROM due_scheduled_syncs(:limit, :only)")


async def queue_due_syncs(runtime: Runtime) -> int:
    """Queue a sync of every source due for one; how many were queued."""
    async with runtime.db.get_session() as session:
        due = (await session.execute(_DUE, {"limit": BATCH, "only": None})).all()
    queued = 0
    for tenant_id, source_id in due:
        async with background_session(runtime, tenant_id) as session:
            source = await session.scalar(
                select(DataSource)
                .where(DataSource.tenant_id == tenant_id, DataSource.id == source_id)
                .with_for_update()
            )
            still_due = await session.scalar(_DUE, {"limit": 1, "only": source_id})
            if source is None or still_due is None:
                continue
            if missing_field(source.type, source.config) is not None:
                continue
            await queue_sync(session, source, requested_by=None)
            await session.commit()
            await run_after_commit(session)
            queued += 1
    return queued
