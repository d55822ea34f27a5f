"""Sync job bodies (API.md, "Panel data (rows)")."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from panels.datasource.schemas import DataSourceRead, SyncStatus
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp
from panels.sync.entities import SyncRun

SYNC_ENTRYPOINT = "panels.sync"
RunStatus = Literal["queued", "running", "success", "error"]
FINISHED: frozenset[str] = frozenset({"success", "error"})


class SyncJobRead(CamelStruct):
    job_id: uuid.UUID
    datasource_id: int
    panel_id: int
    status: RunStatus
    progress: Annotated[float, Meta(ge=0, le=1, description="1 once finished")]
    records_processed: int
    records_inserted: int
    records_updated: int
    records_deleted: int
    attempts: int
    error: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None

    @classmethod
    def from_entity(cls, run: SyncRun) -> SyncJobRead:
        return cls(
            job_id=run.id,
            datasource_id=run.datasource_id,
            panel_id=run.panel_id,
            status=run.status,  # type: ignore[arg-type]
            progress=run.progress,
            records_processed=run.records_processed,
            records_inserted=run.records_inserted,
            records_updated=run.records_updated,
            records_deleted=run.records_deleted,
            attempts=run.attempts,
            error=run.error,
            created_at=iso_timestamp(run.created_at),
            started_at=iso_timestamp(run.started_at) if run.started_at else None,
            finished_at=iso_timestamp(run.finished_at) if run.finished_at else None,
        )


class SyncQueued(CamelStruct):
    """The 202 answer: the job to follow at `Location`."""

    job_id: uuid.UUID
    datasource_id: int
    status: Literal["queued", "running"]
    sync_status: SyncStatus


class SyncFinished(DataSourceRead):
    """The 200 answer of `?wait=true` once the job has finished: the data source as it now is,
    and the outcome of the sync."""

    status: Literal["success", "error"]
    records_processed: int
    records_inserted: int
    records_updated: int
    records_deleted: int
    message: str | None
    duration_ms: int


class SyncJob(msgspec.Struct, rename="camel"):
    """A sync job's payload: which run, of which tenant (the run is read under its policy)."""

    tenant_id: str
    run_id: uuid.UUID
