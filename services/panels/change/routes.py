from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from panels.change.schemas import ChangePage
from panels.change.services import ChangeService
from panels.platform.changes import ChangeType
from panels.platform.openapi import error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import MAX_ID, Offset, PathId
from panels.platform.tenancy import RequestContext

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="1 to 100.")]
Since = Annotated[
    datetime | None, QueryParameter(description="ISO-8601; only changes at or after it.")
]
Kind = Annotated[ChangeType | None, QueryParameter(name="changeType")]
Changes = NamedDependency[ChangeService]


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
    )
    async def list_changes(
        self,
        changes: Changes,
        panel_id: Annotated[int | None, QueryParameter(name="panelId", ge=1, le=MAX_ID)] = None,
        change_type: Kind = None,
        since: Since = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ChangePage:
        """Newest first; only panels the caller may read (admins also see deleted panels)."""
        return await changes.list_changes(
            panel_id=panel_id, change_type=change_type, since=since, limit=limit, offset=offset
        )

    @get(
        "/api/panels/{panel_id:int}/changes",
        summary="Change history of one panel",
        responses=error_responses(400, 403, 404),
    )
    async def list_panel_changes(
        self,
        changes: Changes,
        panel_id: PathId,
        change_type: Kind = None,
        since: Since = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ChangePage:
        await changes.ensure_panel_history_visible(panel_id)
        return await changes.list_changes(
            panel_id=panel_id, change_type=change_type, since=since, limit=limit, offset=offset
        )
