"""Announcing committed changes and notifications to connected clients.

Services never publish: `record` (and the notification derivation) queue what they wrote on
the session, and the queue is published only once the transaction has committed, so a rolled
back change is never announced. Events go to one channel per tenant, backed by Redis pub/sub
(`panels.platform.realtime`), so every worker of every replica receives them and delivers to
its own sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from panels.change.schemas import ChangeRead, NotificationRead, NotificationView
from panels.platform.cache import AfterCommitBatch, after_commit_batch
from panels.platform.db import after_commit, transaction_state
from panels.platform.realtime import ANNOUNCER, Announcer
from panels.platform.schemas import CamelStruct

if TYPE_CHECKING:
    from panels.change.entities import PanelChange, ViewNotification
    from panels.view.entities import PanelView

_PENDING = "realtime_pending"


class ChangeEvent(CamelStruct, tag="change", tag_field="type"):
    panel_id: int
    change: ChangeRead
    # The view the change is about, if any: the stream shows it only to those who may read it.
    view_id: int | None = None

    @classmethod
    def from_entity(cls, change: PanelChange) -> ChangeEvent:
        return cls(
            panel_id=change.panel_id, change=ChangeRead.from_entity(change), view_id=change.view_id
        )


class NotificationEvent(CamelStruct, tag="notification", tag_field="type"):
    user_id: str
    notification: NotificationRead


class RowsEvent(CamelStruct, tag="rows", tag_field="type"):
    """A sync finished: the panel's rows may have changed (sent to the panel's subscribers)."""

    panel_id: int
    datasource_id: int
    job_id: str
    status: str


Event = ChangeEvent | NotificationEvent | RowsEvent
EventKind = Literal["change", "notification", "rows"]


def queue_change(session: AsyncSession, change: PanelChange) -> None:
    _pending(session).append(("change", change))


def queue_notification(
    session: AsyncSession, notification: ViewNotification, view: PanelView
) -> None:
    summary = NotificationView(
        id=view.id, name=view.name, panel_id=view.panel_id, published_by=view.published_by
    )
    _pending(session).append(("notification", (notification, summary)))


def queue_rows(session: AsyncSession, tenant_id: str, event: RowsEvent) -> None:
    _pending(session).append(("rows", (tenant_id, event)))


def _pending(session: AsyncSession) -> list[tuple[EventKind, Any]]:
    state = transaction_state(session)
    pending: list[tuple[EventKind, Any]] | None = state.get(_PENDING)
    if pending is None:
        pending = state[_PENDING] = []
        announcer: Announcer | None = session.info.get(ANNOUNCER)
        batch = after_commit_batch(session) if announcer is not None else None
        after_commit(session, lambda: _announce(announcer, batch, pending))
    return pending


async def _announce(
    announcer: Announcer | None,
    batch: AfterCommitBatch | None,
    pending: list[tuple[EventKind, Any]],
) -> None:
    """Queue the committed events in the batch that is sent after this (see `Announcer`)."""
    if announcer is None or batch is None or not pending:
        return
    events: list[Event] = []
    tenant_id = ""
    for kind, item in pending:
        if kind == "change":
            tenant_id = item.tenant_id
            events.append(ChangeEvent.from_entity(item))
        elif kind == "rows":
            tenant_id, event = item
            events.append(event)
        else:
            notification, summary = item
            tenant_id = notification.tenant_id
            read = NotificationRead.from_entity(notification, summary)
            events.append(NotificationEvent(user_id=notification.user_id, notification=read))
    announcer.queue(batch, tenant_id, events)
