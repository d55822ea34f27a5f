"""`record`: the one call every mutating service makes to log a change.

It writes `panel_change` in the caller's transaction, so a change and its record commit or
roll back together, and keeps only the fields that differ in `oldValues`/`newValues`. It also
queues what follows from the change once it commits: the realtime announcement and the cache
invalidation that `panels.change.invalidation` assigns to its type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from panels.change.entities import PanelChange
from panels.change.invalidation import scopes_to_bump
from panels.change.realtime import queue_change
from panels.change.schemas import ChangeType, EntityType
from panels.platform.cache import bump_after_commit
from panels.platform.tenancy import RequestContext


def field_diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields whose values differ, as (old values, new values)."""
    keys = [k for k in {**old, **new} if k not in old or k not in new or old[k] != new[k]]
    return {k: old[k] for k in keys if k in old}, {k: new[k] for k in keys if k in new}


async def record(
    session: AsyncSession,
    ctx: RequestContext,
    *,
    panel_id: int,
    change_type: ChangeType,
    entity_type: EntityType,
    entity_id: int | None,
    description: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    affected_column: str | None = None,
    view_id: int | None = None,
) -> PanelChange:
    """`view_id` names the view a change is about (the view itself or its grants): such
    records are shown only to callers who may read that view."""
    old_values, new_values = field_diff(old or {}, new or {})
    change = PanelChange(
        tenant_id=ctx.tenant_id,
        panel_id=panel_id,
        change_type=change_type,
        entity_type=entity_type,
        entity_id=entity_id,
        description=description,
        changed_by=ctx.user_id,
        changed_at=datetime.now(UTC),
        affected_column=affected_column,
        old_values=old_values,
        new_values=new_values,
        request_id=ctx.request_id,
        view_id=view_id,
    )
    session.add(change)
    queue_change(session, change)
    bump_after_commit(session, ctx.tenant_id, scopes_to_bump(change_type, panel_id))
    return change


__all__ = ["ChangeType", "EntityType", "field_diff", "record"]
