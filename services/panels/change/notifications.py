"""Notifications derived from a change, inside the change's transaction.

A change that touches what a view uses notifies the view's owner, unless the owner made it:
`breaking` when a column or source the view uses is removed, `warning` when one changes type,
formula or source, `info` for a rename. A new cohort rule warns the owners of every view of
the panel.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.change.entities import PanelChange, ViewNotification
from panels.change.realtime import queue_notification
from panels.column.entities import PanelColumn
from panels.platform.tenancy import RequestContext
from panels.view.entities import PanelView, ViewFilter, ViewSort

Impact = Literal["breaking", "warning", "info"]


def _uses_any(column_ids: list[int]) -> ColumnElement[bool]:
    return or_(
        PanelView.visible_columns.overlap(column_ids),
        exists().where(ViewSort.view_id == PanelView.id, ViewSort.column_id.in_(column_ids)),
        exists().where(ViewFilter.view_id == PanelView.id, ViewFilter.column_id.in_(column_ids)),
    )


async def views_using_columns(
    session: AsyncSession, ctx: RequestContext, panel_id: int, column_ids: list[int]
) -> list[PanelView]:
    """Every view of the panel (whoever owns it) that shows, sorts or filters by a column."""
    if not column_ids:
        return []
    return await _views(session, ctx, panel_id, _uses_any(column_ids))


async def views_using_source(
    session: AsyncSession, ctx: RequestContext, panel_id: int, source_id: int
) -> list[PanelView]:
    bound = select(PanelColumn.id).where(
        PanelColumn.tenant_id == ctx.tenant_id,
        PanelColumn.panel_id == panel_id,
        PanelColumn.data_source_id == source_id,
    )
    column_ids = list((await session.scalars(bound)).all())
    return await views_using_columns(session, ctx, panel_id, column_ids)


async def views_of_panel(
    session: AsyncSession, ctx: RequestContext, panel_id: int
) -> list[PanelView]:
    return await _views(session, ctx, panel_id)


async def _views(
    session: AsyncSession, ctx: RequestContext, panel_id: int, *conditions: ColumnElement[bool]
) -> list[PanelView]:
    statement = select(PanelView).where(
        PanelView.tenant_id == ctx.tenant_id, PanelView.panel_id == panel_id, *conditions
    )
    return list((await session.scalars(statement)).all())


async def notify_owners(
    session: AsyncSession,
    ctx: RequestContext,
    change: PanelChange,
    views: Iterable[PanelView],
    impact: Impact,
    message: str,
) -> list[ViewNotification]:
    """One notification per affected view, to its owner; never to the one who made the change."""
    targets = [v for v in views if v.owner_user_id != ctx.user_id]
    if not targets:
        return []
    await session.flush()  # the change record's id
    now = datetime.now(UTC)
    notifications = [
        ViewNotification(
            tenant_id=ctx.tenant_id,
            panel_id=view.panel_id,
            view_id=view.id,
            user_id=view.owner_user_id,
            panel_change_id=change.id,
            impact=impact,
            message=f'View "{view.name}": {message}',
            is_read=False,
            created_at=now,
        )
        for view in targets
    ]
    session.add_all(notifications)
    await session.flush()
    for notification, view in zip(notifications, targets, strict=True):
        queue_notification(session, notification, view)
    return notifications
