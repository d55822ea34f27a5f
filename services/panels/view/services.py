from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from advanced_alchemy.filters import OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from msgspec import UnsetType
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from panels.acl.grants import grant_owner, revoke_all
from panels.acl.permissions import (
    Access,
    access,
    readable_views,
    require,
    require_publish_right,
)
from panels.change import recording as changes
from panels.column.entities import PanelColumn
from panels.panel.services import PanelService
from panels.platform.errors import BadRequest, NotFound
from panels.platform.http import JsonBody, check_if_match, encode_json, encoded
from panels.platform.metadata import merge_metadata
from panels.platform.paging import get_page
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.rows.indexes import queue_index_update
from panels.view.entities import PanelView, ViewFilter, ViewSort
from panels.view.representation import view_read, view_snapshot
from panels.view.rules import check_filter_value, resolve_column, resolve_visible_columns
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

_CHILDREN = (selectinload(PanelView.sorts), selectinload(PanelView.filters))


class ViewRepository(SQLAlchemyAsyncRepository[PanelView]):
    model_type = PanelView


class ViewService(SQLAlchemyAsyncRepositoryService[PanelView, ViewRepository]):
    """Saved views the caller may read (see acl.permissions); changes need an editor."""

    repository_type = ViewRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        statement = tenant_statement(PanelView, ctx).where(*readable_views(ctx.principal))
        super().__init__(
            session=session, statement=statement, auto_refresh=False, load=list(_CHILDREN)
        )
        self.session = session
        self.ctx = ctx
        self.runtime = runtime

    async def page(
        self, *, panel_id: int | None, published: bool | None, limit: int, offset: int
    ) -> JsonBody:
        conditions: list[StatementFilter | ColumnElement[bool]] = []
        if panel_id is not None:
            conditions.append(PanelView.panel_id == panel_id)
        if published is not None:
            conditions.append(PanelView.is_published.is_(published))
        order = [
            OrderBy(field_name="updated_at", sort_order="desc"),
            OrderBy(field_name="id", sort_order="desc"),
        ]
        views, total = await get_page(
            self, order=order, limit=limit, offset=offset, conditions=conditions
        )
        names = await self._column_names({v.panel_id for v in views})
        return JsonBody(
            encode_json(ViewPage(views=[view_read(v, names) for v in views], total=total))
        )

    async def sorts(self, view_id: int) -> SortsRead:
        view = await self.get_readable(view_id)
        return SortsRead(sorts=view_read(view, await self._column_names({view.panel_id})).sort)

    async def filters(self, view_id: int) -> FiltersRead:
        view = await self.get_readable(view_id)
        return FiltersRead(
            filters=view_read(view, await self._column_names({view.panel_id})).filters
        )

    async def create_view(self, data: ViewCreate) -> ViewRead:
        await PanelService(self.session, self.ctx, self.runtime.cache).get_readable(data.panel_id)
        columns = await self._panel_columns(data.panel_id)
        view = PanelView(
            tenant_id=self.ctx.tenant_id,
            panel_id=data.panel_id,
            name=data.name,
            owner_user_id=self.ctx.user_id,
            is_published=False,
            visible_columns=resolve_visible_columns(
                columns, data.visible_columns, "body.visibleColumns"
            ),
            meta=data.metadata,
            sorts=[],
            filters=[],
        )
        view = await self.create(view)
        grant_owner(self.session, self.ctx, "view", view.id)
        await self._record(
            view, "view_created", f'View "{view.name}" created', new=view_snapshot(view, columns)
        )
        return view_read(view, {c.id: c.name for c in columns})

    async def update_view(self, view_id: int, data: ViewUpdate, if_match: str | None) -> ViewRead:
        view = await self._get_for_change(view_id)
        columns = await self._panel_columns(view.panel_id)
        check_if_match(if_match, self._etag(view, columns))
        before = view_snapshot(view, columns)
        if not isinstance(data.name, UnsetType):
            view.name = data.name
        if not isinstance(data.visible_columns, UnsetType):
            view.visible_columns = resolve_visible_columns(
                columns, data.visible_columns, "body.visibleColumns"
            )
        if not isinstance(data.metadata, UnsetType):
            view.meta = merge_metadata(view.meta, data.metadata)
        return await self._save_if_changed(
            view, columns, before, "view_updated", f'View "{view.name}" updated'
        )

    async def set_published(self, view_id: int, published: bool) -> ViewRead:
        view = await self.get_readable(view_id, for_update=True)
        await require_publish_right(self.session, self.ctx.principal, view)
        columns = await self._panel_columns(view.panel_id)
        before = view_snapshot(view, columns)
        view.is_published = published
        view.published_at = datetime.now(UTC) if published else None
        view.published_by = self.ctx.user_id if published else None
        if published:
            return await self._save_if_changed(
                view, columns, before, "view_published", f'View "{view.name}" published'
            )
        return await self._save_if_changed(
            view, columns, before, "view_unpublished", f'View "{view.name}" unpublished'
        )

    async def replace_sorts(
        self, view_id: int, data: SortsWrite, if_match: str | None
    ) -> SortsRead:
        view = await self._get_for_change(view_id)
        columns = await self._panel_columns(view.panel_id)
        check_if_match(if_match, self._etag(view, columns, "sorts"))
        before = view_snapshot(view, columns)
        sorts, seen = [], set()
        for index, item in enumerate(data.sorts):
            column = resolve_column(columns, item.column_name, f"body.sorts[{index}].columnName")
            if column.id in seen:
                raise BadRequest(
                    f"body.sorts[{index}].columnName", f'sorts on "{column.name}" twice'
                )
            seen.add(column.id)
            order = item.order if item.order is not None else index
            sorts.append(
                self._child(ViewSort, view, column, direction=item.direction, sort_order=order)
            )
        # The same sorts again keep their rows (and ids): the PUT changes nothing.
        if _sort_keys(sorts) != _sort_keys(view.sorts):
            view.sorts = sorts
        read = await self._save_if_changed(
            view, columns, before, "view_updated", f'Sorts of view "{view.name}" replaced'
        )
        return SortsRead(sorts=read.sort)

    async def replace_filters(
        self, view_id: int, data: FiltersWrite, if_match: str | None
    ) -> FiltersRead:
        view = await self._get_for_change(view_id)
        columns = await self._panel_columns(view.panel_id)
        check_if_match(if_match, self._etag(view, columns, "filters"))
        before = view_snapshot(view, columns)
        filters = []
        for index, item in enumerate(data.filters):
            where = f"body.filters[{index}]"
            column = resolve_column(columns, item.column_name, f"{where}.columnName")
            check_filter_value(column, item.operator, item.value, f"{where}.value")
            filters.append(
                self._child(
                    ViewFilter,
                    view,
                    column,
                    operator=item.operator,
                    value=item.value,
                    logical_operator=item.logical_operator,
                    position=index,
                )
            )
        if _filter_keys(filters) != _filter_keys(view.filters):
            view.filters = filters
        read = await self._save_if_changed(
            view, columns, before, "view_updated", f'Filters of view "{view.name}" replaced'
        )
        return FiltersRead(filters=read.filters)

    async def delete_view(self, view_id: int, if_match: str | None) -> None:
        view = await self._get_for_change(view_id, Access.OWNER)
        columns = await self._panel_columns(view.panel_id)
        check_if_match(if_match, self._etag(view, columns))
        snapshot = view_snapshot(view, columns)
        await revoke_all(self.session, self.ctx, "view", [view.id])
        await self.session.delete(view)
        await self.session.flush()
        await self._record(view, "view_deleted", f'View "{view.name}" deleted', old=snapshot)

    async def detach_column(self, panel_id: int, column_id: int) -> list[PanelView]:
        """Take a column out of every view of the panel (all owners'), in the caller's
        transaction; the views changed are returned so their owners can be told."""
        uses_column = or_(
            PanelView.visible_columns.contains([column_id]),
            exists().where(ViewSort.view_id == PanelView.id, ViewSort.column_id == column_id),
            exists().where(ViewFilter.view_id == PanelView.id, ViewFilter.column_id == column_id),
        )
        statement = (
            tenant_statement(PanelView, self.ctx)
            .where(PanelView.panel_id == panel_id, uses_column)
            .options(*_CHILDREN)
            .with_for_update(of=PanelView)
        )
        views = list((await self.session.scalars(statement)).all())
        if any(
            item.column_id == column_id for view in views for item in (*view.sorts, *view.filters)
        ):
            await queue_index_update(self.session, self.ctx.tenant_id, panel_id)
        for view in views:
            view.visible_columns = [c for c in view.visible_columns if c != column_id]
            view.sorts = [s for s in view.sorts if s.column_id != column_id]
            view.filters = [f for f in view.filters if f.column_id != column_id]
        await self.session.flush()
        return views

    async def get_readable(self, view_id: int, *, for_update: bool = False) -> PanelView:
        """The view if the caller may read it; 404 alike when it is missing or hidden."""
        view = await self.get_one_or_none(PanelView.id == view_id, with_for_update=for_update)
        if view is None:
            raise NotFound("View not found")
        return view

    async def _get_for_change(self, view_id: int, needed: Access = Access.EDITOR) -> PanelView:
        view = await self.get_readable(view_id, for_update=True)
        action = "change this view" if needed < Access.OWNER else "delete this view"
        require(await access(self.session, self.ctx.principal, view), needed, action)
        return view

    def _etag(
        self,
        view: PanelView,
        columns: list[PanelColumn],
        part: Literal["sorts", "filters"] | None = None,
    ) -> str:
        """What `If-Match` is compared with: the ETag of `GET /api/views/{id}`, or with `part`
        of `GET /api/views/{id}/sorts` or `…/filters`."""
        read = view_read(view, {c.id: c.name for c in columns})
        if part == "sorts":
            return encoded(SortsRead(sorts=read.sort)).etag
        if part == "filters":
            return encoded(FiltersRead(filters=read.filters)).etag
        return encoded(read).etag

    async def _panel_columns(self, panel_id: int) -> list[PanelColumn]:
        statement = tenant_statement(PanelColumn, self.ctx).where(PanelColumn.panel_id == panel_id)
        return list((await self.session.scalars(statement)).all())

    async def _column_names(self, panel_ids: set[int]) -> dict[int, str]:
        if not panel_ids:
            return {}
        statement = select(PanelColumn.id, PanelColumn.name).where(
            PanelColumn.tenant_id == self.ctx.tenant_id, PanelColumn.panel_id.in_(panel_ids)
        )
        return {row.id: row.name for row in await self.session.execute(statement)}

    def _child(self, model: type[Any], view: PanelView, column: PanelColumn, **values: Any) -> Any:
        return model(
            tenant_id=self.ctx.tenant_id,
            panel_id=view.panel_id,
            view_id=view.id,
            column_id=column.id,
            **values,
        )

    async def _save_if_changed(
        self,
        view: PanelView,
        columns: list[PanelColumn],
        before: dict[str, Any],
        change_type: changes.ChangeType,
        description: str,
    ) -> ViewRead:
        after = view_snapshot(view, columns)
        if after != before:
            view.updated_at = datetime.now(UTC)
            await self.session.flush()
            await self._record(view, change_type, description, old=before, new=after)
        return view_read(view, {c.id: c.name for c in columns})

    async def _record(
        self, view: PanelView, change_type: changes.ChangeType, description: str, **values: Any
    ) -> None:
        old, new = values.get("old") or {}, values.get("new") or {}
        if any((old.get(shape) or []) != (new.get(shape) or []) for shape in ("sort", "filters")):
            # The panel's indexes follow its views' sorts and filters (built in the background).
            await queue_index_update(self.session, self.ctx.tenant_id, view.panel_id)
        await changes.record(
            self.session,
            self.ctx,
            panel_id=view.panel_id,
            change_type=change_type,
            entity_type="view",
            entity_id=view.id,
            description=description,
            view_id=view.id,
            **values,
        )


def _sort_keys(sorts: list[ViewSort]) -> list[tuple[int, int, str]]:
    return sorted((s.sort_order, s.column_id, s.direction) for s in sorts)


def _filter_keys(filters: list[ViewFilter]) -> list[tuple[int, str, Any, str]]:
    ordered = sorted(filters, key=lambda f: f.position)
    return [(f.column_id, f.operator, f.value, f.logical_operator) for f in ordered]
