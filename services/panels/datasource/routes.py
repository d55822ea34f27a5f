from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from panels.datasource.schemas import DataSourceCreate, DataSourceRead, DataSourceUpdate
from panels.datasource.services import DataSourceService
from panels.platform.http import IfMatch, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import PathId
from panels.platform.tenancy import RequestContext

Sources = NamedDependency[DataSourceService]
_WRITE_ERRORS = error_responses(400, 403, 404, 412, 413, 415)
_DELETE_ERRORS = error_responses(400, 403, 404, 412)
_ETAG = documented_headers("ETag")


async def provide_datasource_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> DataSourceService:
    return DataSourceService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


class PanelDataSourceController(Controller):
    path = "/api/panels/{panel_id:int}/datasources"
    tags = ["Data sources"]
    dependencies = {"sources": Provide(provide_datasource_service)}

    @get(
        "/",
        summary="List a panel's data sources",
        responses=error_responses(400, 404),
        response_headers=documented_headers("X-Total-Count", "x-cache", "ETag"),
    )
    async def list_sources(
        self, request: Request[Any, Any, Any], sources: Sources, panel_id: PathId
    ) -> Response[list[DataSourceRead]]:
        """Secrets in `config` are shown as `"***"`."""
        return json_response(request, await sources.list_sources(panel_id))

    @post(
        "/",
        summary="Add a data source",
        responses=error_responses(*POST_CODES),
        response_headers=documented_headers("Location", "ETag"),
    )
    async def create_source(
        self,
        request: Request[Any, Any, Any],
        sources: Sources,
        panel_id: PathId,
        data: JSONBody[DataSourceCreate],
    ) -> Response[DataSourceRead]:
        """`config` is checked for the `type`; secrets are encrypted at rest.

        A config may be incomplete (an `api` source without its `url` yet): what is sent is
        checked, what is missing stays absent; `keyField` defaults to `id`.
        """
        source = await sources.create_source(panel_id, data)
        location = {"location": f"/api/panels/{panel_id}/datasources/{source.id}"}
        return json_response(request, sources.encode(source), status_code=201, headers=location)

    @put(
        "/{source_id:int}",
        summary="Change a data source",
        responses=_WRITE_ERRORS,
        response_headers=_ETAG,
    )
    async def update_source(
        self,
        request: Request[Any, Any, Any],
        sources: Sources,
        panel_id: PathId,
        source_id: PathId,
        data: JSONBody[DataSourceUpdate],
        if_match: IfMatch = None,
    ) -> Response[DataSourceRead]:
        """`config`, when sent, replaces the stored one: keys not sent are gone, not filled
        with defaults (`keyField` excepted); a secret sent as `"***"` is kept. `If-Match`
        compares the ETag of the source as its last `POST` or `PUT` returned it."""
        source = await sources.update_source(source_id, data, panel_id, if_match)
        return json_response(request, sources.encode(source))

    @delete("/{source_id:int}", summary="Remove a data source", responses=_DELETE_ERRORS)
    async def delete_source(
        self, sources: Sources, panel_id: PathId, source_id: PathId, if_match: IfMatch = None
    ) -> None:
        """Base columns bound to it stay, with `dataSourceId: null`."""
        await sources.delete_source(source_id, panel_id, if_match)


class DataSourceController(Controller):
    path = "/api/datasources"
    tags = ["Data sources"]
    dependencies = {"sources": Provide(provide_datasource_service)}

    @put(
        "/{source_id:int}",
        summary="Change a data source (by its id alone)",
        responses=_WRITE_ERRORS,
        response_headers=_ETAG,
    )
    async def update_source(
        self,
        request: Request[Any, Any, Any],
        sources: Sources,
        source_id: PathId,
        data: JSONBody[DataSourceUpdate],
        if_match: IfMatch = None,
    ) -> Response[DataSourceRead]:
        source = await sources.update_source(source_id, data, None, if_match)
        return json_response(request, sources.encode(source))

    @delete(
        "/{source_id:int}",
        summary="Remove a data source (by its id alone)",
        responses=_DELETE_ERRORS,
    )
    async def delete_source(
        self, sources: Sources, source_id: PathId, if_match: IfMatch = None
    ) -> None:
        await sources.delete_source(source_id, None, if_match)
