from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from panels.platform.http import IfMatch, encoded, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.ratelimit import COUNTED_BY_CACHE
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import MAX_ID, Offset, PathId
from panels.platform.tenancy import RequestContext
from panels.view.reads import ViewReads
from panels.view.schemas import (
    FiltersRead,
    FiltersWrite,
    SortsRead,
    SortsWrite,
    ViewCreate,
    ViewPage,
    ViewRead,
    ViewUpdate,
)
from panels.view.services import ViewService

Views = NamedDependency[ViewService]
Reads = NamedDependency[ViewReads]
_WRITE_ERRORS = error_responses(400, 403, 404, 412, 413, 415)
_ETAG = documented_headers("ETag")


def provide_view_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> ViewService:
    return ViewService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


def provide_view_reads(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> ViewReads:
    return ViewReads(ctx, request.app.state.runtime, lambda: provide_view_service(request, ctx))


class ViewController(Controller):
    path = "/api/views"
    tags = ["Views"]
    dependencies = {
        "views": Provide(provide_view_service, sync_to_thread=False),
        "reads": Provide(provide_view_reads, sync_to_thread=False),
    }

    @get(
        "/",
        summary="List views",
        responses=error_responses(400, 403),
        response_headers=documented_headers("ETag", "x-cache"),
        opt={COUNTED_BY_CACHE: True},
    )
    async def list_views(
        self,
        request: Request[Any, Any, Any],
        reads: Reads,
        panel_id: Annotated[int | None, QueryParameter(name="panelId", ge=1, le=MAX_ID)] = None,
        published: Annotated[bool | None, QueryParameter(description="true/false/1/0")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Offset = 0,
    ) -> Response[ViewPage]:
        """Published views of the tenant and the caller's own, newest `updatedAt` first;
        `total` counts before paging."""
        page = await reads.list_views(
            panel_id=panel_id, published=published, limit=limit, offset=offset
        )
        return json_response(request, page)

    @post(
        "/",
        summary="Create a personal view",
        responses=error_responses(*POST_CODES),
        response_headers=documented_headers("Location", "ETag"),
    )
    async def create_view(
        self, request: Request[Any, Any, Any], views: Views, data: JSONBody[ViewCreate]
    ) -> Response[ViewRead]:
        """Anyone who can read the panel may create one (else 404); it starts unpublished."""
        view = await views.create_view(data)
        return json_response(
            request, encoded(view), status_code=201, headers={"location": f"/api/views/{view.id}"}
        )

    @get(
        "/{view_id:int}",
        summary="Get a view",
        responses=error_responses(400, 404),
        response_headers=documented_headers("ETag", "x-cache"),
        opt={COUNTED_BY_CACHE: True},
    )
    async def get_view(
        self, request: Request[Any, Any, Any], reads: Reads, view_id: PathId
    ) -> Response[ViewRead]:
        return json_response(request, await reads.read_view(view_id))

    @put("/{view_id:int}", summary="Change a view", responses=_WRITE_ERRORS, response_headers=_ETAG)
    async def update_view(
        self,
        request: Request[Any, Any, Any],
        views: Views,
        view_id: PathId,
        data: JSONBody[ViewUpdate],
        if_match: IfMatch = None,
    ) -> Response[ViewRead]:
        """`metadata` is merged (null removes a key)."""
        return json_response(request, encoded(await views.update_view(view_id, data, if_match)))

    @delete(
        "/{view_id:int}", summary="Delete a view", responses=error_responses(400, 403, 404, 412)
    )
    async def delete_view(self, views: Views, view_id: PathId, if_match: IfMatch = None) -> None:
        """Its sorts and filters go with it."""
        await views.delete_view(view_id, if_match)

    @post(
        "/{view_id:int}/publish",
        summary="Publish a view to the tenant",
        status_code=200,
        responses=error_responses(*POST_CODES),
        response_headers=_ETAG,
    )
    async def publish_view(
        self, request: Request[Any, Any, Any], views: Views, view_id: PathId
    ) -> Response[ViewRead]:
        return json_response(request, encoded(await views.set_published(view_id, True)))

    @post(
        "/{view_id:int}/unpublish",
        summary="Make a view personal again",
        status_code=200,
        responses=error_responses(*POST_CODES),
        response_headers=_ETAG,
    )
    async def unpublish_view(
        self, request: Request[Any, Any, Any], views: Views, view_id: PathId
    ) -> Response[ViewRead]:
        return json_response(request, encoded(await views.set_published(view_id, False)))

    @get(
        "/{view_id:int}/sorts",
        summary="A view's sorts",
        responses=error_responses(400, 404),
        response_headers=_ETAG,
    )
    async def get_sorts(
        self, request: Request[Any, Any, Any], views: Views, view_id: PathId
    ) -> Response[SortsRead]:
        return json_response(request, encoded(await views.sorts(view_id)))

    @put(
        "/{view_id:int}/sorts",
        summary="Replace a view's sorts",
        responses=_WRITE_ERRORS,
        response_headers=_ETAG,
    )
    async def replace_sorts(
        self,
        request: Request[Any, Any, Any],
        views: Views,
        view_id: PathId,
        data: JSONBody[SortsWrite],
        if_match: IfMatch = None,
    ) -> Response[SortsRead]:
        """`columnName` is a column's name or id; `order` defaults to the position in the list.
        `If-Match` compares the ETag of `GET …/sorts`."""
        sorts = await views.replace_sorts(view_id, data, if_match)
        return json_response(request, encoded(sorts))

    @get(
        "/{view_id:int}/filters",
        summary="A view's filters",
        responses=error_responses(400, 404),
        response_headers=_ETAG,
    )
    async def get_filters(
        self, request: Request[Any, Any, Any], views: Views, view_id: PathId
    ) -> Response[FiltersRead]:
        return json_response(request, encoded(await views.filters(view_id)))

    @put(
        "/{view_id:int}/filters",
        summary="Replace a view's filters",
        responses=_WRITE_ERRORS,
        response_headers=_ETAG,
    )
    async def replace_filters(
        self,
        request: Request[Any, Any, Any],
        views: Views,
        view_id: PathId,
        data: JSONBody[FiltersWrite],
        if_match: IfMatch = None,
    ) -> Response[FiltersRead]:
        """Values must suit the operator (`in`/`notIn` an array, `between` two items, none for
        the null checks) and the column's type. `If-Match` compares the ETag of
        `GET …/filters`."""
        filters = await views.replace_filters(view_id, data, if_match)
        return json_response(request, encoded(filters))
