"""Running a sync: the job the sync routes queue (see `platform.jobs` for the plumbing).

One attempt: mark the run `running` (committed, so readers see it), then fetch the source and
write its records in one transaction with the run's outcome: a failed attempt rolls back and
leaves the records of the last successful sync. A full sync replaces the source's records.
A failed attempt is retried (3 attempts, with backoff); the last one marks the run `error`.
Each finished run updates the source's `lastSync`/`syncStatus`, bumps the panel's cache scope
and is announced to the panel's realtime subscribers. Logs carry the job and source ids, never
the source's config.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from prometheus_client import Counter
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from panels.change.realtime import RowsEvent, queue_rows
from panels.datasource.entities import DataSource
from panels.platform.db import run_after_commit
from panels.platform.errors import BadRequest
from panels.platform.jobs import JobKind, Periodic, Worker
from panels.platform.runtime import Runtime, background_session
from panels.records.writer import PositionLabel, key_field_of, write_records
from panels.rows.indexes import index_kind
from panels.rows.recount import recount_kind
from panels.sync.entities import SyncRun
from panels.sync.fetch.common import Batches, FetchError, unsealed
from panels.sync.fetch.database import fetch_database
from panels.sync.fetch.file import expected_records, fetch_file
from panels.sync.purge import purge_kind
from panels.sync.schedule import SCHEDULE_SECONDS, queue_due_syncs
from panels.sync.schemas import FINISHED, SYNC_ENTRYPOINT, SyncJob
from panels.sync.services import set_source_sync

MAX_ATTEMPTS = 3
PROGRESS_SECONDS = 1.0
log = structlog.get_logger("panels.sync")
SYNCS = Counter("panels_syncs_total", "Finished syncs by outcome", ["status"])
SYNC_ATTEMPT_FAILURES = Counter("panels_sync_attempt_failures_total", "Failed sync attempts")
SYNCED_RECORDS = Counter("panels_synced_records_total", "Records processed by syncs")


def sync_worker(runtime: Runtime) -> Worker:
    """A worker that runs syncs (in a server process, or alone: `panels worker`)."""
    settings = runtime.settings
    assert settings.database_url is not None
    scheduled = Periodic("scheduled syncs", SCHEDULE_SECONDS, lambda: queue_due_syncs(runtime))
    return Worker(
        settings.database_url,
        [
            SyncRunner(runtime).kind(),
            purge_kind(runtime),
            index_kind(runtime),
            recount_kind(runtime.db.get_engine()),
        ],
        periodic=[scheduled],
        heartbeat_seconds=settings.job_heartbeat_seconds,
    )


class SyncRunner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def kind(self) -> JobKind:
        settings = self.runtime.settings
        return JobKind(
            entrypoint=SYNC_ENTRYPOINT,
            run=self.attempt,
            on_failure=self.failed,
            timeout_seconds=settings.sync_timeout_seconds,
            max_attempts=MAX_ATTEMPTS,
            retry_seconds=settings.sync_retry_ms / 1000,
        )

    async def attempt(self, payload: bytes, attempt: int) -> None:
        job = msgspec.json.decode(payload, type=SyncJob)
        async with background_session(self.runtime, job.tenant_id) as session:
            run = await session.get(SyncRun, job.run_id, with_for_update=True)
            if run is None or run.status in FINISHED:
                return  # its source was deleted, or a worker killed after finishing it
            source = await session.get(DataSource, run.datasource_id)
            if source is None:
                return
            run.status = "running"
            run.attempts += 1
            run.started_at = run.started_at or datetime.now(UTC)
            await set_source_sync(session, run, sync_status="running")
            await session.commit()
            await run_after_commit(session)
            log.info("sync started", job_id=str(run.id), datasource_id=run.datasource_id)
            config = unsealed(source.config, self.runtime.secrets)
            batches, position = self._fetch(source.type, config)
            expected = expected_records(config) if source.type == "file" else None
            counts = await write_records(
                session,
                tenant_id=run.tenant_id,
                panel_id=run.panel_id,
                source_id=run.datasource_id,
                key_field=key_field_of(config),
                batches=self._reporting(run, batches, expected),
                mode="replace",
                position=position,
            )
            run.records_processed = counts.records_processed
            run.records_inserted = counts.records_inserted
            run.records_updated = counts.records_updated
            run.records_deleted = counts.records_deleted
            run.error = None
            await self._finish(session, run, "success")
            await session.commit()
            await run_after_commit(session)
        SYNCED_RECORDS.inc(counts.records_processed)
        log.info(
            "sync finished",
            job_id=str(run.id),
            datasource_id=run.datasource_id,
            records=counts.records_processed,
        )

    async def _reporting(self, run: SyncRun, batches: Batches, expected: int | None) -> Batches:
        """The batches, passed on as they are; every PROGRESS_SECONDS at most, the records
        written so far are shown on the run (and a fraction when the total is known)."""
        seen = 0
        reported = -PROGRESS_SECONDS
        async with aclosing(batches):  # a writer that stops early closes the fetcher too
            async for batch in batches:
                yield batch
                seen += len(batch)  # the writer asks for the next batch once this one is in
                if time.monotonic() - reported >= PROGRESS_SECONDS:
                    await self._report(run, seen, expected)
                    reported = time.monotonic()

    async def _report(self, run: SyncRun, seen: int, expected: int | None) -> None:
        progress = min(seen / expected, 0.99) if expected else 0.0
        async with background_session(self.runtime, run.tenant_id) as session:
            # Only while running: a late report must not undo the finished run.
            await session.execute(
                update(SyncRun)
                .where(SyncRun.tenant_id == run.tenant_id, SyncRun.id == run.id)
                .where(SyncRun.status == "running")
                .values(records_processed=seen, progress=progress)
            )
            await session.commit()

    async def failed(self, payload: bytes, attempt: int, exc: BaseException, last: bool) -> None:
        job = msgspec.json.decode(payload, type=SyncJob)
        message = _describe(exc, self.runtime.settings.sync_timeout_seconds)
        SYNC_ATTEMPT_FAILURES.inc()
        log.warning("sync attempt failed", job_id=str(job.run_id), attempt=attempt, error=message)
        async with background_session(self.runtime, job.tenant_id) as session:
            run = await session.get(SyncRun, job.run_id, with_for_update=True)
            if run is None or run.status in FINISHED:
                return
            run.error = message
            if last:
                await self._finish(session, run, "error")
            else:
                run.status = "queued"  # until its retry starts
            await session.commit()
            await run_after_commit(session)

    async def _finish(self, session: AsyncSession, run: SyncRun, status: str) -> None:
        """Queues the run's outcome on the session: the source, the cache, the announcement."""
        now = datetime.now(UTC)
        run.status = status
        run.progress = 1.0
        run.finished_at = now
        await set_source_sync(session, run, sync_status=status, last_sync=now)
        event = RowsEvent(
            panel_id=run.panel_id,
            datasource_id=run.datasource_id,
            job_id=str(run.id),
            status=status,
        )
        queue_rows(session, run.tenant_id, event)
        SYNCS.labels(status).inc()

    def _fetch(self, source_type: str, config: dict[str, Any]) -> tuple[Batches, PositionLabel]:
        """The source's records, and how an error names a record's position."""
        settings = self.runtime.settings
        if source_type == "api":
            # Imported here: httpx (~2 MB per worker) only for `api` sources' syncs.
            from panels.sync.fetch.api import fetch_api

            return fetch_api(config, allow_private=settings.allow_private_sources), _record
        if source_type == "database":
            batches = fetch_database(
                config,
                allow_private=settings.allow_private_sources,
                statement_timeout_seconds=settings.sync_timeout_seconds,
            )
            return batches, _row
        if config.get("format") == "json":
            return fetch_file(config), _content_index
        return fetch_file(config), _content_line


def _record(position: int) -> str:
    return f"record {position}"


def _row(position: int) -> str:
    return f"row {position + 1}"


def _content_index(position: int) -> str:
    return f"config.content[{position}]"


def _content_line(position: int) -> str:
    return f"config.content line {position}"


def _describe(exc: BaseException, timeout_seconds: int) -> str:
    """What went wrong, in words for the source's editors: no secrets, no internals."""
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, BadRequest):
        return str(exc.detail)  # "<field>: <message>", e.g. a record without its key
    if isinstance(exc, TimeoutError):
        return f"the sync took longer than {timeout_seconds} s"
    log.error("sync failed unexpectedly", exc_info=exc)
    return f"internal error ({type(exc).__name__})"
