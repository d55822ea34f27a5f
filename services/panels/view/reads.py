"""The view reads served through the cache, and how a missed view is read: in one statement,
with its sorts, filters and their column names (`read_rows`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from hashlib import blake2b
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Text, and_, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from panels.acl.permissions import TENANT_PARAMETER, caller_parameters, readable_views_bound
from panels.change.invalidation import VIEWS_SCOPE
from panels.column.entities import PanelColumn
from panels.platform.db import decode_jsonb
from panels.platform.errors import NotFound
from panels.platform.http import JsonBody, encoded
from panels.platform.reads import RawQuery, read_rows
from panels.platform.runtime import Runtime
from panels.platform.schemas import iso_timestamp
from panels.platform.tenancy import RequestContext
from panels.view.entities import PanelView, ViewFilter, ViewSort
from panels.view.schemas import FilterRead, SortRead, ViewRead
from panels.view.services import ViewService


class ViewReads:
    """The view reads served through the cache. The service (a session, a repository) is
    built only when a list misses: a hit needs neither, and a missed view reads without."""

    def __init__(
        self, ctx: RequestContext, runtime: Runtime, service: Callable[[], ViewService]
    ) -> None:
        self.ctx = ctx
        self.cache = runtime.cache
        self.engine = runtime.db.get_engine()
        self._service = service

    async def list_views(
        self, *, panel_id: int | None, published: bool | None, limit: int, offset: int
    ) -> JsonBody:
        query = f"{panel_id}|{published}|{limit}|{offset}"
        name = f"list:{blake2b(query.encode(), digest_size=12).hexdigest()}"

        async def load() -> JsonBody:
            return await self._service().page(
                panel_id=panel_id, published=published, limit=limit, offset=offset
            )

        return await self.cache.read_through(self.ctx, VIEWS_SCOPE, name, load)

    async def read_view(self, view_id: int) -> JsonBody:
        name = f"view:{view_id}"
        load = lambda: self._load_view(view_id)  # noqa: E731
        return await self.cache.read_through(self.ctx, VIEWS_SCOPE, name, load)

    async def _load_view(self, view_id: int) -> JsonBody:
        """The view's representation, if the caller may read it (else 404): as `view_read`
        makes it from the entity and its panel's column names."""
        principal = self.ctx.principal
        query = _one_view(principal.is_admin)
        values = {**caller_parameters(principal), "view_id": view_id}
        rows = await read_rows(self.engine, self.ctx.tenant_id, query, values)
        if not rows:
            raise NotFound("View not found")
        try:
            row = _VIEW_ROW.decode(rows[0])
        except msgspec.DecodeError:  # a number beyond a float's range: as `decode_jsonb` reads it
            row = msgspec.convert(decode_jsonb(rows[0]), _ViewRow)
        return encoded(_view_read(row))


class _ViewRow(msgspec.Struct, array_like=True):
    id: int
    panel_id: int
    name: str
    owner_user_id: str
    tenant_id: str
    is_published: bool
    published_at: datetime | None
    published_by: str | None
    visible_columns: list[int]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    sorts: list[tuple[int, str, str, int]]  # id, column name, direction, order
    filters: list[tuple[int, str, str, Any, str]]  # id, column name, operator, value, logic


_VIEW_ROW = msgspec.json.Decoder(_ViewRow)


def _children(
    columns: tuple[Any, ...], child: type[ViewSort | ViewFilter], *order: Any
) -> ColumnElement[Any]:
    """A JSON array of the view's sorts or filters, each with its column's name ('' for a
    column that is gone), in the order given."""
    named = func.json_build_array(child.id, func.coalesce(PanelColumn.name, ""), *columns)
    on_column = and_(
        PanelColumn.tenant_id == child.tenant_id,
        PanelColumn.panel_id == PanelView.panel_id,
        PanelColumn.id == child.column_id,
    )
    return (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(named, *order)),
                literal_column("'[]'::json"),
            )
        )
        .select_from(child.__table__.outerjoin(PanelColumn, on_column))
        .where(child.tenant_id == PanelView.tenant_id, child.view_id == PanelView.id)
        .scalar_subquery()
    )


@cache
def _one_view(admin: bool) -> RawQuery:
    sorts = _children(
        (ViewSort.direction, ViewSort.sort_order), ViewSort, ViewSort.sort_order, ViewSort.id
    )
    filters = _children(
        (ViewFilter.operator, ViewFilter.value, ViewFilter.logical_operator),
        ViewFilter,
        ViewFilter.position,
        ViewFilter.id,
    )
    view = func.json_build_array(
        PanelView.id,
        PanelView.panel_id,
        PanelView.name,
        PanelView.owner_user_id,
        PanelView.tenant_id,
        PanelView.is_published,
        PanelView.published_at,
        PanelView.published_by,
        PanelView.visible_columns,
        PanelView.meta,
        PanelView.created_at,
        PanelView.updated_at,
        sorts,
        filters,
    )
    return RawQuery(
        select(cast(view, Text)).where(
            PanelView.tenant_id == TENANT_PARAMETER,
            PanelView.id == bindparam("view_id"),
            *readable_views_bound(admin),
        )
    )


def _view_read(row: _ViewRow) -> ViewRead:
    """`view_read` for a row of `_one_view`."""
    return ViewRead(
        id=row.id,
        panel_id=row.panel_id,
        name=row.name,
        owner_user_id=row.owner_user_id,
        tenant_id=row.tenant_id,
        is_published=row.is_published,
        published_at=iso_timestamp(row.published_at) if row.published_at else None,
        published_by=row.published_by,
        visible_columns=[str(c) for c in row.visible_columns],
        metadata=row.metadata,
        sort=[
            SortRead(id=id_, column_name=name, direction=direction, order=order)  # type: ignore[arg-type]
            for id_, name, direction, order in row.sorts
        ],
        filters=[
            FilterRead(
                id=id_,
                column_name=name,
                operator=operator,  # type: ignore[arg-type]
                value=value,
                logical_operator=logic,  # type: ignore[arg-type]
            )
            for id_, name, operator, value, logic in row.filters
        ],
        created_at=iso_timestamp(row.created_at),
        updated_at=iso_timestamp(row.updated_at),
    )
