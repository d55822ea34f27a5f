from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from panels.platform.http import encoded, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import Offset, PathId
from panels.platform.tenancy import RequestContext
from panels.sync.entities import SyncRun
from panels.sync.schemas import SyncFinished, SyncJobRead, SyncQueued
from panels.sync.services import SyncService

Syncs = NamedDependency[SyncService]
Wait = Annotated[
    bool,
    QueryParameter(
        description="true/false/1/0: wait (at most 60 s) for the job to finish; if it has not, "
        "the answer is the 202 it would have been without."
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="1 to 100.")]
_START_RESPONSES = {
    **error_responses(*POST_CODES),
    200: ResponseSpec(
        data_container=SyncFinished,
        description="With `wait`, once the job has finished: the data source and the outcome.",
        generate_examples=False,
    ),
}
_LIST_HEADERS = documented_headers("X-Total-Count", "ETag")


async def provide_sync_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> SyncService:
    return SyncService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


async def _start(
    request: Request[Any, Any, Any],
    syncs: SyncService,
    source_id: int,
    panel_id: int | None,
    wait: bool,
) -> Response[Any]:
    run = await syncs.start(source_id, panel_id)
    if wait:
        finished = await syncs.wait_for(run)
        if finished is not None:
            return json_response(request, encoded(finished))
    return _queued(request, run)


def _queued(request: Request[Any, Any, Any], run: SyncRun) -> Response[Any]:
    status: Literal["queued", "running"] = "running" if run.status == "running" else "queued"
    body = SyncQueued(
        job_id=run.id, datasource_id=run.datasource_id, status=status, sync_status=status
    )
    location = {"location": f"/api/sync-jobs/{run.id}"}
    return json_response(request, encoded(body), status_code=202, headers=location)


_START_DOC = (
    "202 with the job to follow at `Location`; a source already queued or running returns "
    "its job (with its current `status`, `queued` or `running`) instead of starting a second "
    "one. `?wait=true` answers 200 with the data source and the sync's outcome once it ends. "
    "`custom` sources, and sources saved without what a sync needs (`config.url`, "
    "`config.query`, `config.content`), are a 400 naming it."
)


class PanelSyncController(Controller):
    path = "/api/panels/{panel_id:int}/datasources/{source_id:int}"
    tags = ["Syncs"]
    dependencies = {"syncs": Provide(provide_sync_service)}

    @post(
        "/sync",
        summary="Sync a data source",
        description=_START_DOC,
        status_code=202,
        responses=_START_RESPONSES,
        response_headers=documented_headers("Location", "ETag"),
    )
    async def start_sync(
        self,
        request: Request[Any, Any, Any],
        syncs: Syncs,
        panel_id: PathId,
        source_id: PathId,
        wait: Wait = False,
    ) -> Response[SyncQueued]:
        return await _start(request, syncs, source_id, panel_id, wait)

    @get(
        "/sync-jobs",
        summary="List a data source's sync jobs",
        responses=error_responses(400, 404),
        response_headers=_LIST_HEADERS,
    )
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        syncs: Syncs,
        panel_id: PathId,
        source_id: PathId,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Response[list[SyncJobRead]]:
        """Newest first."""
        body = await syncs.list_runs(source_id, panel_id, limit=limit, offset=offset)
        return json_response(request, body)


class DataSourceSyncController(Controller):
    path = "/api/datasources/{source_id:int}"
    tags = ["Syncs"]
    dependencies = {"syncs": Provide(provide_sync_service)}

    @post(
        "/sync",
        summary="Sync a data source (by its id alone)",
        description=_START_DOC,
        status_code=202,
        responses=_START_RESPONSES,
        response_headers=documented_headers("Location", "ETag"),
    )
    async def start_sync(
        self, request: Request[Any, Any, Any], syncs: Syncs, source_id: PathId, wait: Wait = False
    ) -> Response[SyncQueued]:
        return await _start(request, syncs, source_id, None, wait)

    @get(
        "/sync-jobs",
        summary="List a data source's sync jobs (by its id alone)",
        responses=error_responses(400, 404),
        response_headers=_LIST_HEADERS,
    )
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        syncs: Syncs,
        source_id: PathId,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Response[list[SyncJobRead]]:
        body = await syncs.list_runs(source_id, None, limit=limit, offset=offset)
        return json_response(request, body)


class SyncJobController(Controller):
    path = "/api/sync-jobs"
    tags = ["Syncs"]
    dependencies = {"syncs": Provide(provide_sync_service)}

    @get(
        "/{job_id:uuid}",
        summary="Read a sync job",
        responses=error_responses(400, 404),
        response_headers=documented_headers("ETag"),
    )
    async def read_job(
        self, request: Request[Any, Any, Any], syncs: Syncs, job_id: uuid.UUID
    ) -> Response[SyncJobRead]:
        """404 for a job of a panel the caller cannot read."""
        return json_response(request, await syncs.read_run(job_id))
