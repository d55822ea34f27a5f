from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from panels.column.schemas import (
    BaseColumnCreate,
    CalculatedColumnCreate,
    ColumnList,
    ColumnRead,
    ColumnUpdate,
)
from panels.column.services import ColumnService
from panels.platform.http import IfMatch, encoded, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.params import parse_ids, split_values
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import PathId
from panels.platform.tenancy import RequestContext

Columns = NamedDependency[ColumnService]
RepeatedQuery = Annotated[
    list[str] | None,
    QueryParameter(description="Repeat the parameter or separate values with commas."),
]
_WRITE_ERRORS = error_responses(400, 403, 404, 409, 412, 413, 415)
_CREATED_HEADERS = documented_headers("Location", "ETag")


async def provide_column_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> ColumnService:
    return ColumnService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


class ColumnController(Controller):
    path = "/api/panels/{panel_id:int}/columns"
    tags = ["Columns"]
    dependencies = {"columns": Provide(provide_column_service)}

    @get(
        "/",
        summary="List a panel's columns",
        responses=error_responses(400, 404),
        response_headers=documented_headers("ETag", "x-cache"),
    )
    async def list_columns(
        self,
        request: Request[Any, Any, Any],
        columns: Columns,
        panel_id: PathId,
        ids: RepeatedQuery = None,
        tags: RepeatedQuery = None,
    ) -> Response[ColumnList]:
        """Each kind ordered by `properties.display.order` (missing last), then id. `tags`
        keeps columns with any of the tags."""
        body = await columns.list_columns(panel_id, parse_ids(ids), split_values(tags))
        return json_response(request, body)

    @post(
        "/base",
        summary="Add a base column",
        responses=error_responses(*POST_CODES),
        response_headers=_CREATED_HEADERS,
    )
    async def create_base_column(
        self,
        request: Request[Any, Any, Any],
        columns: Columns,
        panel_id: PathId,
        data: JSONBody[BaseColumnCreate],
    ) -> Response[ColumnRead]:
        """`sourceField` (a dotted path into the source's records) defaults to the name."""
        return _created(request, panel_id, await columns.create_base(panel_id, data))

    @post(
        "/calculated",
        summary="Add a calculated column",
        responses=error_responses(*POST_CODES),
        response_headers=_CREATED_HEADERS,
    )
    async def create_calculated_column(
        self,
        request: Request[Any, Any, Any],
        columns: Columns,
        panel_id: PathId,
        data: JSONBody[CalculatedColumnCreate],
    ) -> Response[ColumnRead]:
        """The formula is checked against the panel's columns; a 400 gives the position of any
        error. `dependencies` is computed, never taken from the client."""
        return _created(request, panel_id, await columns.create_calculated(panel_id, data))

    @put(
        "/{column_id:int}",
        summary="Change a column",
        responses=_WRITE_ERRORS,
        response_headers=documented_headers("ETag"),
    )
    async def update_column(
        self,
        request: Request[Any, Any, Any],
        columns: Columns,
        panel_id: PathId,
        column_id: PathId,
        data: JSONBody[ColumnUpdate],
        if_match: IfMatch = None,
    ) -> Response[ColumnRead]:
        """`properties` is merged (`display` one level deeper; null removes a key); `metadata`
        and `tags` are replaced. A rename rewrites the formulas that read the column.
        `If-Match` compares the ETag the column's last `POST` or `PUT` returned."""
        column = await columns.update_column(panel_id, column_id, data, if_match)
        return json_response(request, encoded(column))

    @delete(
        "/{column_id:int}",
        summary="Remove a column",
        responses=error_responses(400, 403, 404, 409, 412),
    )
    async def delete_column(
        self, columns: Columns, panel_id: PathId, column_id: PathId, if_match: IfMatch = None
    ) -> None:
        """409 while a calculated column reads it."""
        await columns.delete_column(panel_id, column_id, if_match)


def _created(request: Request[Any, Any, Any], panel_id: int, column: ColumnRead) -> Response[Any]:
    location = {"location": f"/api/panels/{panel_id}/columns/{column.id}"}
    return json_response(request, encoded(column), status_code=201, headers=location)
