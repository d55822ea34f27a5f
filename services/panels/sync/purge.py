"""The job that frees the space of a tenant's records whose data source is gone.

Queued by the database itself (a trigger on `datasource`, migration 20261130_0009) in the
transaction that deletes a source or its panel; runs `purge_orphaned_records` in short
transactions of PURGE_BATCH records until none is left.
"""

from __future__ import annotations

import msgspec
import structlog

from panels.platform.jobs import JobKind
from panels.platform.runtime import Runtime, background_session
from panels.records.purge import purge_orphaned_records

PURGE_ENTRYPOINT = "panels.purge-records"
PURGE_BATCH = 10_000
PURGE_TIMEOUT_SECONDS = 3600
log = structlog.get_logger("panels.sync")


class PurgeJob(msgspec.Struct, rename="camel"):
    tenant_id: str


def purge_kind(runtime: Runtime) -> JobKind:
    async def run(payload: bytes, _attempt: int) -> None:
        tenant_id = msgspec.json.decode(payload, type=PurgeJob).tenant_id
        total = 0
        while True:
            async with background_session(runtime, tenant_id) as session:
                deleted = await purge_orphaned_records(session, tenant_id, PURGE_BATCH)
                await session.commit()
            total += deleted
            if deleted < PURGE_BATCH:
                break
        log.info("orphaned records purged", tenant_id=tenant_id, records=total)

    async def failed(payload: bytes, attempt: int, exc: BaseException, last: bool) -> None:
        # What was purged stays purged; a retry (or the next deletion) does the rest.
        log.warning("record purge failed", attempt=attempt, error=type(exc).__name__, last=last)

    return JobKind(PURGE_ENTRYPOINT, run, failed, timeout_seconds=PURGE_TIMEOUT_SECONDS)
