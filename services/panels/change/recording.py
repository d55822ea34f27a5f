"""`record`: the one call every mutating service makes to log a change.

It writes `panel_change` in the caller's transaction, so a change and its record commit or
roll back together, and keeps only the fields that differ in `oldValues`/`newValues`. It also
queues what follows from the change once it commits: the realtime announcement and the cache
invalidation that `panels.change.invalidation` assigns to its type, and, for the types that
alter counts of rows, the recount of the panel's stored totals (in the same transaction).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import Insert, bindparam, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from panels.change.entities import PanelChange
from panels.change.invalidation import RECOUNTS, scopes_to_bump
from panels.change.realtime import queue_change
from panels.change.schemas import ChangeType, EntityType
from panels.platform.cache import bump_after_commit
from panels.platform.tenancy import RequestContext
from panels.rows.totals import queue_recount


def field_diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields whose values differ, as (old values, new values)."""
    keys = [k for k in {**old, **new} if k not in old or k not in new or old[k] != new[k]]
    return {k: old[k] for k in keys if k in old}, {k: new[k] for k in keys if k in new}


class ChangeFields(TypedDict):
    """What a change record says, besides who made it, when, and in which request."""

    panel_id: int
    change_type: ChangeType
    entity_type: EntityType
    entity_id: int | None
    description: str
    old: NotRequired[dict[str, Any] | None]
    new: NotRequired[dict[str, Any] | None]
    affected_column: NotRequired[str | None]
    view_id: NotRequired[int | None]


async def record(
    session: AsyncSession, ctx: RequestContext, **fields: Unpack[ChangeFields]
) -> PanelChange:
    """`view_id` names the view a change is about (the view itself or its grants): such
    records are shown only to callers who may read that view."""
    change = new_record(ctx, **fields)
    if change.change_type in RECOUNTS:
        await queue_recount(session, change.tenant_id, change.panel_id)
    session.add(change)
    recorded(session, change)
    return change


def new_record(ctx: RequestContext, **fields: Unpack[ChangeFields]) -> PanelChange:
    """The change record `record` writes, not yet written (see `insert_for_panel`)."""
    old_values, new_values = field_diff(fields.get("old") or {}, fields.get("new") or {})
    return PanelChange(
        tenant_id=ctx.tenant_id,
        panel_id=fields["panel_id"],
        change_type=fields["change_type"],
        entity_type=fields["entity_type"],
        entity_id=fields["entity_id"],
        description=fields["description"],
        changed_by=ctx.user_id,
        changed_at=datetime.now(UTC),
        affected_column=fields.get("affected_column"),
        old_values=old_values,
        new_values=new_values,
        request_id=ctx.request_id,
        view_id=fields.get("view_id"),
    )


_PANEL_ID_COLUMNS = ("panel_id", "entity_id")
_RECORD_ATTRIBUTES = [a for a in inspect(PanelChange).column_attrs if a.key != "id"]
_RECORD_PARAMETER = "record_{}"


def insert_for_panel(written: CTE) -> Insert:
    """The INSERT of a change record about a panel that the same statement creates or changes:
    its panel and entity ids are `written.c.id` (a data-modifying CTE), so the panel, its record
    and whatever else belongs with it are written in one round trip. The statement holds bind
    parameters only, so it can be built once; execute it with `record_parameters(change)`,
    then set the change's ids and pass it to `recorded`."""
    values = [
        written.c.id
        if a.key in _PANEL_ID_COLUMNS
        else bindparam(_RECORD_PARAMETER.format(a.key), type_=a.columns[0].type)
        for a in _RECORD_ATTRIBUTES
    ]
    names = [a.columns[0].name for a in _RECORD_ATTRIBUTES]
    statement = insert(PanelChange).from_select(names, select(*values), include_defaults=False)
    return statement.returning(PanelChange.id)


def record_parameters(change: PanelChange) -> dict[str, Any]:
    """The values of `insert_for_panel`'s parameters for this change."""
    return {
        _RECORD_PARAMETER.format(a.key): getattr(change, a.key)
        for a in _RECORD_ATTRIBUTES
        if a.key not in _PANEL_ID_COLUMNS
    }


def recorded(session: AsyncSession, change: PanelChange) -> None:
    """Queue what follows a written change once the transaction commits: its realtime
    announcement and the cache invalidation `invalidation` assigns to its type."""
    queue_change(session, change)
    change_type: ChangeType = change.change_type  # type: ignore[assignment]
    bump_after_commit(session, change.tenant_id, scopes_to_bump(change_type, change.panel_id))


__all__ = [
    "ChangeType",
    "EntityType",
    "field_diff",
    "insert_for_panel",
    "new_record",
    "record",
    "record_parameters",
    "recorded",
]
