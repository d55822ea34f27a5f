from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from panels.change.recording import ChangeType
from panels.change.schemas import ChangePage, Impact, MarkedRead, MarkRead, NotificationPage
from panels.change.services import ChangeService, NotificationService
from panels.platform.http import encoded, json_response
from panels.platform.openapi import documented_headers, error_responses
from panels.platform.params import Since, parse_since
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import MAX_ID, Offset, PathId
from panels.platform.tenancy import RequestContext

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="1 to 100.")]
Kind = Annotated[ChangeType | None, QueryParameter(name="changeType")]
Changes = NamedDependency[ChangeService]
_ETAG = documented_headers("ETag")


async def provide_change_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> ChangeService:
    return ChangeService(provide_tenant_session(request, ctx), ctx)


class ChangeController(Controller):
    tags = ["Changes"]
    dependencies = {"changes": Provide(provide_change_service)}

    @get(
        "/api/changes/panels",
        summary="Change history across panels",
        responses=error_responses(400, 403),
        response_headers=_ETAG,
        opt={"replica": True},
    )
    async def list_changes(
        self,
        request: Request[Any, Any, Any],
        changes: Changes,
        panel_id: Annotated[int | None, QueryParameter(name="panelId", ge=1, le=MAX_ID)] = None,
        change_type: Kind = None,
        since: Since = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response[ChangePage]:
        """Newest first; only panels the caller may read (admins also see deleted panels)."""
        page = await changes.list_changes(
            panel_id=panel_id,
            change_type=change_type,
            since=parse_since(since),
            limit=limit,
            offset=offset,
        )
        return json_response(request, encoded(page))

    @get(
        "/api/panels/{panel_id:int}/changes",
        summary="Change history of one panel",
        responses=error_responses(400, 403, 404),
        response_headers=_ETAG,
        opt={"replica": True},
    )
    async def list_panel_changes(
        self,
        request: Request[Any, Any, Any],
        changes: Changes,
        panel_id: PathId,
        change_type: Kind = None,
        since: Since = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response[ChangePage]:
        await changes.ensure_panel_history_visible(panel_id)
        page = await changes.list_changes(
            panel_id=panel_id,
            change_type=change_type,
            since=parse_since(since),
            limit=limit,
            offset=offset,
        )
        return json_response(request, encoded(page))


Notifications = NamedDependency[NotificationService]


async def provide_notification_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> NotificationService:
    return NotificationService(provide_tenant_session(request, ctx), ctx)


class NotificationController(Controller):
    path = "/api/notifications/views"
    tags = ["Notifications"]
    dependencies = {"notifications": Provide(provide_notification_service)}

    @get(
        "/",
        summary="The caller's view notifications",
        responses=error_responses(400, 403),
        response_headers=_ETAG,
        opt={"replica": True},
    )
    async def list_notifications(
        self,
        request: Request[Any, Any, Any],
        notifications: Notifications,
        is_read: Annotated[bool | None, QueryParameter(name="isRead")] = None,
        notification_type: Annotated[Impact | None, QueryParameter(name="notificationType")] = None,
        since: Since = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response[NotificationPage]:
        """Newest first; `unreadCount` counts all the caller's unread ones, whatever the filters."""
        page = await notifications.list_notifications(
            is_read=is_read,
            impact=notification_type,
            since=parse_since(since),
            limit=limit,
            offset=offset,
        )
        return json_response(request, encoded(page))

    @put(
        "/mark-read",
        summary="Mark notifications read",
        responses=error_responses(400, 403, 413, 415),
    )
    async def mark_read(self, notifications: Notifications, data: JSONBody[MarkRead]) -> MarkedRead:
        """`updated` counts only the caller's own notifications that were unread."""
        return MarkedRead(updated=await notifications.mark_read(data.notification_ids))
