from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.filters import OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import readable_changes
from panels.change.entities import PanelChange, ViewNotification
from panels.change.recording import ChangeType
from panels.change.schemas import (
    ChangePage,
    ChangeRead,
    Impact,
    NotificationPage,
    NotificationRead,
    NotificationView,
)
from panels.platform.errors import NotFound
from panels.platform.paging import get_page
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.view.entities import PanelView


class ChangeRepository(SQLAlchemyAsyncRepository[PanelChange]):
    model_type = PanelChange


class ChangeService(SQLAlchemyAsyncRepositoryService[PanelChange, ChangeRepository]):
    """The change history of the caller's tenant, limited to what they may read
    (`acl.permissions.readable_changes`). A deleted panel's history stays, readable by admins only.
    """

    repository_type = ChangeRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext) -> None:
        statement = tenant_statement(PanelChange, ctx).where(*readable_changes(ctx.principal))
        super().__init__(session=session, statement=statement)
        self.ctx = ctx

    async def list_changes(
        self,
        *,
        panel_id: int | None,
        change_type: ChangeType | None,
        since: datetime | None,
        limit: int,
        offset: int,
    ) -> ChangePage:
        conditions: list[StatementFilter | ColumnElement[bool]] = []
        if panel_id is not None:
            conditions.append(PanelChange.panel_id == panel_id)
        if change_type is not None:
            conditions.append(PanelChange.change_type == change_type)
        if since is not None:
            aware = since if since.tzinfo else since.replace(tzinfo=UTC)
            conditions.append(PanelChange.changed_at >= aware)
        order = [
            OrderBy(field_name="changed_at", sort_order="desc"),
            OrderBy(field_name="id", sort_order="desc"),
        ]
        rows, total = await get_page(
            self, order=order, limit=limit, offset=offset, conditions=conditions
        )
        return ChangePage(
            changes=[ChangeRead.from_entity(c) for c in rows],
            total=total,
            has_more=offset + len(rows) < total,
        )

    async def ensure_panel_history_visible(self, panel_id: int) -> None:
        """404 unless the caller may read this panel's history (see the class docstring)."""
        # Every panel has its `panel_created` record, so this finds every live panel too.
        if not await self.exists(PanelChange.panel_id == panel_id):
            raise NotFound("Panel not found")


class NotificationRepository(SQLAlchemyAsyncRepository[ViewNotification]):
    model_type = ViewNotification


class NotificationService(
    SQLAlchemyAsyncRepositoryService[ViewNotification, NotificationRepository]
):
    """The caller's own notifications; nobody reads or marks another user's."""

    repository_type = NotificationRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext) -> None:
        statement = tenant_statement(ViewNotification, ctx).where(
            ViewNotification.user_id == ctx.user_id
        )
        super().__init__(session=session, statement=statement)
        self.session = session
        self.ctx = ctx

    async def list_notifications(
        self,
        *,
        is_read: bool | None,
        impact: Impact | None,
        since: datetime | None,
        limit: int,
        offset: int,
    ) -> NotificationPage:
        conditions: list[StatementFilter | ColumnElement[bool]] = []
        if is_read is not None:
            conditions.append(ViewNotification.is_read.is_(is_read))
        if impact is not None:
            conditions.append(ViewNotification.impact == impact)
        if since is not None:
            conditions.append(ViewNotification.created_at >= since)
        order = [
            OrderBy(field_name="created_at", sort_order="desc"),
            OrderBy(field_name="id", sort_order="desc"),
        ]
        rows, total = await get_page(
            self, order=order, limit=limit, offset=offset, conditions=conditions
        )
        unread = await self.count(ViewNotification.is_read.is_(False))
        views = await self._views({n.view_id for n in rows})
        return NotificationPage(
            notifications=[NotificationRead.from_entity(n, views[n.view_id]) for n in rows],
            total=total,
            unread_count=unread,
            has_more=offset + len(rows) < total,
        )

    async def mark_read(self, ids: list[int]) -> int:
        if not ids:
            return 0
        statement = (
            update(ViewNotification)
            .where(
                ViewNotification.tenant_id == self.ctx.tenant_id,
                ViewNotification.user_id == self.ctx.user_id,
                ViewNotification.id.in_(ids),
                ViewNotification.is_read.is_(False),
            )
            .values(is_read=True, read_at=datetime.now(UTC))
            .returning(ViewNotification.id)
        )
        return len((await self.session.execute(statement)).all())

    async def _views(self, view_ids: set[int]) -> dict[int, NotificationView]:
        if not view_ids:
            return {}
        statement = select(
            PanelView.id, PanelView.name, PanelView.panel_id, PanelView.published_by
        ).where(PanelView.tenant_id == self.ctx.tenant_id, PanelView.id.in_(view_ids))
        return {
            row.id: NotificationView(
                id=row.id, name=row.name, panel_id=row.panel_id, published_by=row.published_by
            )
            for row in await self.session.execute(statement)
        }
