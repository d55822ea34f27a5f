from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from panels.change.entities import PanelChange, ViewNotification
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp
from panels.platform.tenancy import RequestBody

ChangeType = Literal[
    "panel_created",
    "panel_updated",
    "panel_deleted",
    "cohort_changed",
    "source_added",
    "source_changed",
    "source_removed",
    "column_added",
    "column_modified",
    "column_removed",
    "view_created",
    "view_updated",
    "view_published",
    "view_unpublished",
    "view_deleted",
]
EntityType = Literal["panel", "datasource", "column", "view", "grant"]
Impact = Literal["breaking", "warning", "info"]


class ChangeRead(CamelStruct):
    id: int
    panel_id: int
    change_type: ChangeType
    entity_type: EntityType
    entity_id: int | None
    description: str
    changed_by: str
    changed_at: Timestamp
    affected_column: str | None
    old_values: dict[str, Any]
    new_values: dict[str, Any]
    request_id: str | None

    @classmethod
    def from_entity(cls, change: PanelChange) -> ChangeRead:
        return cls(
            id=change.id,
            panel_id=change.panel_id,
            change_type=change.change_type,  # type: ignore[arg-type]
            entity_type=change.entity_type,  # type: ignore[arg-type]
            entity_id=change.entity_id,
            description=change.description,
            changed_by=change.changed_by,
            changed_at=iso_timestamp(change.changed_at),
            affected_column=change.affected_column,
            old_values=change.old_values,
            new_values=change.new_values,
            request_id=change.request_id,
        )


class ChangePage(CamelStruct):
    changes: list[ChangeRead]
    total: int
    has_more: bool


class NotificationView(CamelStruct):
    id: int
    name: str
    panel_id: int
    published_by: str | None


class NotificationRead(CamelStruct):
    id: int
    view_id: int
    user_id: str
    tenant_id: str
    panel_change_id: int
    impact: Impact
    message: str
    is_read: bool
    read_at: Timestamp | None
    created_at: Timestamp
    view: NotificationView

    @classmethod
    def from_entity(
        cls, notification: ViewNotification, view: NotificationView
    ) -> NotificationRead:
        return cls(
            id=notification.id,
            view_id=notification.view_id,
            user_id=notification.user_id,
            tenant_id=notification.tenant_id,
            panel_change_id=notification.panel_change_id,
            impact=notification.impact,  # type: ignore[arg-type]
            message=notification.message,
            is_read=notification.is_read,
            read_at=iso_timestamp(notification.read_at) if notification.read_at else None,
            created_at=iso_timestamp(notification.created_at),
            view=view,
        )


class NotificationPage(CamelStruct):
    notifications: list[NotificationRead]
    total: int
    unread_count: int
    has_more: bool


class MarkRead(RequestBody):
    notification_ids: Annotated[
        list[Annotated[int, Meta(ge=1, le=2**63 - 1)]], Meta(max_length=1000)
    ]


class MarkedRead(CamelStruct):
    updated: int
