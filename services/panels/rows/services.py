"""Rows pages of a panel or a view, and a view's CSV export.

Who may read what is decided by the panel and view services (`acl.permissions`): rows of a
panel for whoever may read the panel, rows and CSV of a view for whoever may read the view.
Pages are cached under the panel's scope, shared by every reader allowed at that moment (the
check runs before any cached byte is served), and bumped by what changes rows: pushes and
syncs, columns, the cohort rule, the view's shape (`change.invalidation`). A page's `total`
is cached apart, under the same scope and behind the same check, keyed by what decides it
(`RowsShape.count_key`): it reads every matching row (all the panel's, unless an index serves
the filters), so it is counted once per version and filters rather than again for every page
and sort, and the totals of saved views are counted ahead by a job and stored in the
database (`rows.totals`), so that a page miss after a push or a sync reads its total rather
than counting. (Like the pages, a cached count whose filters read `TODAY()` or `NOW()` holds
until the next bump or the cache TTL; such a count is never stored.) The CSV is never cached:
it streams from PostgreSQL.

Only live sources are read: `panel_rows` is given the ids of the panel's data sources as they
are now, so records of a deleted source never appear, even before they are purged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from hashlib import blake2b
from typing import Any, TypeVar

from litestar.exceptions import ClientException
from sqlalchemy import Row, Select, func, select, true
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from panels.column.formula import value_type_of
from panels.column.services import display_order
from panels.panel.entities import Panel
from panels.panel.services import PanelService
from panels.platform.cache import Authorization
from panels.platform.errors import BadRequest, NotFound
from panels.platform.http import JsonBody
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.rows.compiler import (
    CompiledRows,
    Condition,
    Sort,
    encode_cursor,
    sort_label,
)
from panels.rows.compiler.ordering import SortKey, order_by
from panels.rows.export import csv_header, csv_lines, stream_csv
from panels.rows.planning import CUSTOM_PLANS
from panels.rows.query import parse_filters, parse_sorts, view_shape
from panels.rows.schemas import RowColumn, RowRead, RowsPage, encode_page, wire_datetime
from panels.rows.shape import RowsShape, built, load_shape, run_parameters
from panels.rows.totals import stored_total
from panels.view.entities import PanelView
from panels.view.services import ViewService

# SQLSTATE classes a statement over client data may still raise (22: data exception, such
# as a numeric overflow; 54: a program limit, such as a value too large to build): a 400
# about the data, never a 500.
_DATA_ERRORS = ("22", "54")
_SORTS_END = "\x1e"  # in a page's cache key, between the sorts and the filter


class RowsNotComputable(ClientException):
    """The rows could not be computed from this panel's data (see `_DATA_ERRORS`)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int
    cursor: str | None

    def key(self, *parts: object) -> str:
        text = "\x1f".join(str(part) for part in (self.limit, self.offset, self.cursor, *parts))
        return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


T = TypeVar("T")


def _once(read: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """`read`, run at most once per request. A page miss needs the readable panel or view
    three times: the cache's permission check, the loader, and the check of the count's own
    entry (whose marker is stored only after the page's load); one query serves them all."""
    found: list[T] = []

    async def once() -> T:
        if not found:
            found.append(await read())
        return found[0]

    return once


class RowService:
    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        self.session = session
        self.ctx = ctx
        self.runtime = runtime
        self.panels = PanelService(session, ctx, runtime.cache)
        self.views = ViewService(session, ctx, runtime)

    async def panel_page(
        self, panel_id: int, page: PageRequest, sort: Sequence[str], filter_text: str | None
    ) -> JsonBody:
        """A page of the panel's rows, every column shown (in the columns listing's order),
        shaped by the ad-hoc `sort` and `filter`."""

        readable = _once(lambda: self.panels.get_readable(panel_id))

        async def load() -> JsonBody:
            shape = await load_shape(self.session, await readable())
            sorts = parse_sorts(sort, shape.columns)
            filters = parse_filters(filter_text, shape.columns)
            shown = [column.id for column in sorted(shape.columns, key=display_order)]
            return await self._page(shape, shown, sorts, filters, page, authorization)

        authorization = replace(self.panels.read_authorization(panel_id), check=readable)
        name = f"rows:{page.key(*sort, _SORTS_END, filter_text)}"
        return await self.runtime.cache.read_through(
            self.ctx, str(panel_id), name, load, authorization=authorization
        )

    async def view_page(self, view_id: int, page: PageRequest) -> JsonBody:
        """A page of the view's rows: its visible columns, filters and sorts, over its panel's
        cohort."""
        panel_id = await self._panel_of_view(view_id)

        readable = _once(lambda: self.views.get_readable(view_id))

        async def load() -> JsonBody:
            view = await readable()
            shape = await load_shape(self.session, await self._panel(view.panel_id))
            shown, sorts, filters = view_shape(view, shape.columns)
            return await self._page(shape, shown, sorts, filters, page, authorization)

        authorization = Authorization(f"read-view-{view_id}", readable)
        return await self.runtime.cache.read_through(
            self.ctx,
            str(panel_id),
            f"view-rows:{view_id}:{page.key()}",
            load,
            authorization=authorization,
        )

    async def view_csv(self, view_id: int) -> tuple[PanelView, AsyncIterator[bytes]]:
        """The view and its rows as CSV (RFC 4180), streamed from a server-side cursor on a
        connection of its own (the request's transaction ends when the response starts).
        The first batch is read here, so that a failing statement is an error response
        rather than a cut-off file."""
        view = await self.views.get_readable(view_id)
        shape = await load_shape(self.session, await self._panel(view.panel_id))
        shown, sorts, filters = view_shape(view, shape.columns)
        shown_columns = shape.shown(shown)
        exported = shape.export(shown, sorts, filters)
        statement = csv_lines(exported, [(c.id, c.type) for c in shown_columns])
        header = csv_header([column.name for column in shown_columns])
        try:
            stream = await stream_csv(self.runtime, self.ctx.tenant_id, header, statement)
        except DBAPIError as error:
            raise _as_client_error(error) from None
        return view, stream

    async def _page(
        self,
        shape: RowsShape,
        shown: list[int],
        sorts: list[Sort],
        filters: list[Condition],
        page: PageRequest,
        authorization: Authorization,
    ) -> JsonBody:
        # One row more than asked says whether there is a next page.
        compiled = self._compile(shape, shown, sorts, filters, page, page.limit + 1)
        statement_key = shape.statement_key(filters, shown, sorts, page.cursor)
        # The count does not depend on the paging or the sorts: cached apart, it is computed
        # once per panel version and filters (it reads every matching row, see
        # benchmarks/README.md), not again for each page. On its miss the page comes in the
        # same round trip, with the total the recount job stored (`rows.totals`) when it is
        # current, else counted.
        count_key = shape.count_key(filters)
        with_total: list[Any] = []

        async def count() -> JsonBody:
            statement = built(
                (*statement_key, "with total"),
                lambda: _page_with_total(
                    compiled, stored_total(self.ctx.tenant_id, shape.panel.id, count_key)
                ),
            )
            with_total.extend(await self._execute(statement, page))
            return JsonBody(b"%d" % with_total[0][0])

        counted = await self.runtime.cache.read_through(
            self.ctx,
            str(shape.panel.id),
            f"rows-count:{count_key}",
            count,
            authorization=authorization,
        )
        total = int(counted.content)
        if with_total:
            found: list[Any] = [row[1:] for row in with_total if row[1] is not None]
        else:
            found = list(await self._execute(compiled.page, page))
        rows = found[: page.limit]
        shown_columns = shape.shown(shown)
        keys = [str(column_id) for column_id in shown]
        datetimes = [
            index
            for index, column in enumerate(shown_columns)
            if value_type_of(column.type) == "datetime"
        ]
        values_end = 1 + len(shown)
        reads = []
        for row in rows:
            values = list(row[1:values_end])
            for index in datetimes:
                if values[index] is not None:
                    values[index] = wire_datetime(values[index])
            reads.append(RowRead(id=row[0], values=dict(zip(keys, values, strict=True))))
        next_cursor = None
        if len(found) > page.limit:
            last = rows[-1]
            next_cursor = encode_cursor(compiled.sort_keys, list(last[values_end:]), last[0])
        body = RowsPage(
            rows=reads,
            total=total,
            columns=[RowColumn(id=c.id, name=c.name, type=c.type) for c in shown_columns],
            next_cursor=next_cursor,
        )
        return JsonBody(encode_page(body))

    async def _execute(self, statement: Select[Any], page: PageRequest) -> Sequence[Row[Any]]:
        try:
            await self.session.execute(CUSTOM_PLANS)
            parameters = run_parameters(page.limit + 1, page.offset)
            rows: Sequence[Row[Any]] = (await self.session.execute(statement, parameters)).all()
            return rows
        except DBAPIError as error:
            raise _as_client_error(error, cursor=page.cursor) from None

    def _compile(
        self,
        shape: RowsShape,
        shown: list[int],
        sorts: list[Sort],
        filters: list[Condition],
        page: PageRequest,
        limit: int | None,
    ) -> CompiledRows:
        try:
            return shape.compile(
                shown, sorts, filters, limit=limit, offset=page.offset, cursor=page.cursor
            )
        except ValueError:
            if page.cursor is None:
                raise
            raise BadRequest(
                "query.cursor", "is not a cursor of these rows (malformed, or made for other sorts)"
            ) from None

    async def _panel(self, panel_id: int) -> Panel:
        """The panel of a view the caller may read (reading the view is the right needed)."""
        panel: Panel | None = await self.session.scalar(
            tenant_statement(Panel, self.ctx).where(Panel.id == panel_id)
        )
        if panel is None:
            raise NotFound("View not found")
        return panel

    async def _panel_of_view(self, view_id: int) -> int:
        """Which panel's cache scope holds the view's pages; whether the caller may read the
        view is checked before any of them is served."""
        statement = select(PanelView.panel_id).where(
            PanelView.tenant_id == self.ctx.tenant_id, PanelView.id == view_id
        )
        panel_id = await self.session.scalar(statement)
        if panel_id is None:
            raise NotFound("View not found")
        return panel_id


def _page_with_total(compiled: CompiledRows, stored: Any) -> Select[Any]:
    """The page and its total in one round trip: the total's one row, joined to the page's
    rows (or to none: a page past the end still carries the total). The total is `stored`
    (a scalar subquery) unless it is NULL; only then does PostgreSQL run the count (an
    uncorrelated subquery is evaluated when first read, and `coalesce` reads no further than
    its first non-null argument)."""
    page = compiled.page.subquery("page")
    counted = select(func.coalesce(stored, compiled.count.scalar_subquery())).subquery("counted")
    keys = [
        SortKey(key.sort, page.c[sort_label(index)], key.value_type)
        for index, key in enumerate(compiled.sort_keys)
    ]
    return (
        select(next(iter(counted.c)).label("total"), *page.c)
        .select_from(counted.outerjoin(page, true()))
        .order_by(*order_by(keys, page.c.key))
    )


def _as_client_error(error: DBAPIError, cursor: str | None = None) -> Exception:
    state = str(getattr(error.orig, "sqlstate", "") or "")
    # The driver refuses a parameter it cannot encode before sending it, without a SQLSTATE.
    is_data_error = isinstance(error, DataError) or state.startswith("22")
    if cursor is not None and is_data_error:
        return BadRequest("query.cursor", "is not a cursor of these rows")
    if not (is_data_error or state.startswith(_DATA_ERRORS)):
        return error
    return RowsNotComputable(
        detail="The rows cannot be computed: a value of this panel is out of range"
    )
