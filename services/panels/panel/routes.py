from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from panels.panel.reads import PanelReads
from panels.panel.schemas import PanelCreate, PanelRead, PanelUpdate, SortDirection, SortField
from panels.panel.services import PanelService
from panels.platform.http import IfMatch, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.ratelimit import COUNTED_BY_CACHE
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import Offset, PathId
from panels.platform.tenancy import RequestContext

Panels = NamedDependency[PanelService]
Reads = NamedDependency[PanelReads]


def provide_panel_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> PanelService:
    return PanelService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime.cache)


def provide_panel_reads(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> PanelReads:
    runtime = request.app.state.runtime
    return PanelReads(ctx, runtime.cache, runtime.db.get_engine())


class PanelController(Controller):
    path = "/api/panels"
    tags = ["Panels"]
    dependencies = {
        "panels": Provide(provide_panel_service, sync_to_thread=False),
        "reads": Provide(provide_panel_reads, sync_to_thread=False),
    }

    @get(
        "/",
        summary="List panels",
        description="The panels the caller may read; `X-Total-Count` is the count before paging.",
        responses=error_responses(400, 403),
        response_headers=documented_headers("X-Total-Count", "x-cache", "ETag"),
        opt={COUNTED_BY_CACHE: True},
    )
    async def list_panels(
        self,
        request: Request[Any, Any, Any],
        reads: Reads,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Offset = 0,
        sort: FromQuery[SortField] = "createdAt",
        direction: FromQuery[SortDirection | None] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=255, description="Name contains.")
        ] = None,
    ) -> Response[list[PanelRead]]:
        body = await reads.list_panels(
            limit=limit, offset=offset, sort=sort, direction=direction, q=q
        )
        return json_response(request, body)

    @post(
        "/",
        summary="Create a panel",
        responses=error_responses(*POST_CODES),
        response_headers=documented_headers("Location", "ETag"),
    )
    async def create_panel(
        self, request: Request[Any, Any, Any], panels: Panels, data: JSONBody[PanelCreate]
    ) -> Response[PanelRead]:
        panel = await panels.create_panel(data)
        location = {"location": f"/api/panels/{panel.id}"}
        return json_response(request, panels.encode(panel), status_code=201, headers=location)

    @get(
        "/{panel_id:int}",
        summary="Get a panel",
        responses=error_responses(400, 404),
        response_headers=documented_headers("ETag", "x-cache"),
        opt={COUNTED_BY_CACHE: True},
    )
    async def get_panel(
        self, request: Request[Any, Any, Any], reads: Reads, panel_id: PathId
    ) -> Response[PanelRead]:
        return json_response(request, await reads.read_panel(panel_id))

    @put(
        "/{panel_id:int}",
        summary="Update a panel",
        responses=error_responses(400, 403, 404, 412, 413, 415),
        response_headers=documented_headers("ETag"),
    )
    async def update_panel(
        self,
        request: Request[Any, Any, Any],
        panels: Panels,
        panel_id: PathId,
        data: JSONBody[PanelUpdate],
        if_match: IfMatch = None,
    ) -> Response[PanelRead]:
        panel = await panels.update_panel(panel_id, data, if_match)
        return json_response(request, panels.encode(panel))

    @delete(
        "/{panel_id:int}", summary="Delete a panel", responses=error_responses(400, 403, 404, 412)
    )
    async def delete_panel(
        self, panels: Panels, panel_id: PathId, if_match: IfMatch = None
    ) -> None:
        await panels.delete_panel(panel_id, if_match)
