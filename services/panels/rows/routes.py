from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import QueryParameter
from litestar.response import Stream

from panels.platform.http import json_response
from panels.platform.openapi import documented_headers, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import Offset, PathId
from panels.platform.tenancy import RequestContext
from panels.rows.query import MAX_FILTER_TEXT, MAX_SORT_TEXT
from panels.rows.schemas import RowsPage
from panels.rows.services import PageRequest, RowService

Rows = NamedDependency[RowService]
MAX_CURSOR = 8192
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Rows per page (1 to 1000).")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_CURSOR,
        description=(
            "The `nextCursor` of the previous page: the rows after it, in the same order "
            "(`offset` then skips rows after it). A cursor that is malformed or was made for "
            "other sorts is a 400 naming `query.cursor`."
        ),
    ),
]
SortParameter = Annotated[
    list[str] | None,
    QueryParameter(
        description=(
            "`<column name or id>:asc|desc` (ascending without a direction), repeatable or "
            "comma-separated, the first the most significant; nulls last both ways, ties by "
            f"row id. At most 50 sorts and {MAX_SORT_TEXT} characters; a name that holds a "
            "comma is given by id."
        ),
        examples=[Example(summary="Oldest first, then by name", value=["Age:desc", "Name:asc"])],
    ),
]
FilterParameter = Annotated[
    str | None,
    QueryParameter(
        name="filter",
        max_length=MAX_FILTER_TEXT,
        description=(
            "A URL-encoded JSON array of view filters, combined left to right by each "
            '`logicalOperator`: `[{"columnName":"Age","operator":"gt","value":20}]`. '
            "An unknown column or operator, or a value that does not suit them, is a 400 "
            "naming `query.filter[i]…`."
        ),
        examples=[
            Example(
                summary="Over 20, or on ward A",
                value='[{"columnName":"Age","operator":"gt","value":20},'
                '{"columnName":"Ward","operator":"eq","value":"A","logicalOperator":"or"}]',
            )
        ],
    ),
]
_PAGE_HEADERS = documented_headers("ETag", "x-cache")
_PAGE_DOC = """

Rows merge the records of the panel's sources by key; values follow each column's type
(a value that does not convert is null, never an error). Cached under the panel's version:
pushes, syncs, and column, cohort and view changes make the next read a MISS. A formula
operand of magnitude 1e65000 or more counts as null."""


async def provide_row_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> RowService:
    return RowService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


class RowController(Controller):
    path = "/api"
    tags = ["Rows"]
    dependencies = {"rows": Provide(provide_row_service)}

    @get(
        "/panels/{panel_id:int}/rows",
        summary="A page of a panel's rows",
        description=(
            "Every column of the panel (in the columns listing's order), for whoever may read "
            "the panel; ad-hoc `sort` and `filter`." + _PAGE_DOC
        ),
        responses=error_responses(400, 404),
        response_headers=_PAGE_HEADERS,
    )
    async def panel_rows(
        self,
        request: Request[Any, Any, Any],
        rows: Rows,
        panel_id: PathId,
        limit: Limit = 50,
        offset: Offset = 0,
        sort: SortParameter = None,
        filter_text: FilterParameter = None,
        cursor: Cursor = None,
    ) -> Response[RowsPage]:
        page = PageRequest(limit, offset, cursor)
        return json_response(
            request, await rows.panel_page(panel_id, page, sort or [], filter_text)
        )

    @get(
        "/views/{view_id:int}/rows",
        summary="A page of a view's rows",
        description=(
            "Shaped by the view: its visible columns in their order, its filters and sorts, "
            "over its panel's cohort; for whoever may read the view." + _PAGE_DOC
        ),
        responses=error_responses(400, 404),
        response_headers=_PAGE_HEADERS,
    )
    async def view_rows(
        self,
        request: Request[Any, Any, Any],
        rows: Rows,
        view_id: PathId,
        limit: Limit = 50,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> Response[RowsPage]:
        page = PageRequest(limit, offset, cursor)
        return json_response(request, await rows.view_page(view_id, page))

    @get(
        "/views/{view_id:int}/rows.csv",
        summary="Export a view's rows as CSV",
        description=(
            "Every row of the view (no paging), streamed: RFC 4180, CRLF line ends, UTF-8. "
            "The header holds the visible columns' names. Text cells are always quoted, and "
            "one starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading "
            "`'` (so spreadsheets do not run it); numbers, booleans (`true`/`false`), dates "
            "and datetimes are written as in JSON pages; null is an empty cell. Not cached, "
            "and without an ETag: the file is written as it streams."
        ),
        responses=error_responses(400, 404),
        media_type="text/csv",
    )
    async def view_csv(self, rows: Rows, view_id: PathId) -> Stream:
        view, content = await rows.view_csv(view_id)
        return Stream(
            content,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": content_disposition(view.name, view.id)},
        )


def content_disposition(name: str, view_id: int) -> str:
    """`attachment` with an ASCII `filename` any client takes and the exact name in
    `filename*` (RFC 6266)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" ._-")[:100] or f"view-{view_id}"
    exact = quote(f"{name[:100]}.csv", safe="")
    return f"attachment; filename=\"{ascii_name}.csv\"; filename*=UTF-8''{exact}"
