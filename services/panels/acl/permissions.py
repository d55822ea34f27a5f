"""What a principal may do to a panel or a view, answered in one place.

- Admins may do anything within their tenant.
- A grant gives `viewer < editor < owner` on one panel or view, to a user (matched by email or
  user id) or to `_all` (everyone in the tenant); the strongest matching grant counts.
- Anyone in the tenant may read a panel that has a published view, and a published view.
- A view's creator is its owner (also when their grant is gone), so a personal view never
  becomes unreachable for the one who made it.
- Publishing or unpublishing a view needs the view's write right and its panel's: publishing
  makes the panel readable by the whole tenant.
- Grants are managed by owners (any grant) and editors (viewer and editor grants only).
- Change records about a view are visible to those who may read the view (and to the one who
  made the change: a deleted view can no longer be read by anyone but admins).

`access` answers for one resource; `readable_panels` / `readable_views` are the same rules as
SQL conditions, so that lists filter in the database and never load what they would hide.
SQL expressions are immutable, so the conditions are built once per principal and shared:
building them costs more than a cached read. `readable_panels_bound` is the same condition with
the caller as bound parameters (`caller_parameters`), for statements compiled once for everyone.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from panels.acl.entities import EVERYONE, Grant
from panels.change.entities import PanelChange
from panels.panel.entities import Panel
from panels.platform.auth import Principal
from panels.platform.errors import Forbidden
from panels.view.entities import PanelView


class Access(IntEnum):
    NONE = 0
    VIEWER = 1
    EDITOR = 2
    OWNER = 3


IdColumn = ColumnElement[int] | InstrumentedAttribute[int]
TENANT_PARAMETER = bindparam("tenant_id", type_=String)
_USER_PARAMETER = bindparam("user_id", type_=String)
_IDENTITIES_PARAMETER = bindparam("identities", type_=ARRAY(Text))


def identities(principal: Principal) -> list[str]:
    """The grant names that stand for this principal."""
    names = [principal.user_id, EVERYONE]
    if principal.email:
        names.append(principal.email)
    return names


def caller_parameters(principal: Principal) -> dict[str, Any]:
    """The values of the bound parameters `readable_panels_bound` (and the others) stand on."""
    return {
        "tenant_id": principal.tenant_id,
        "user_id": principal.user_id,
        "identities": identities(principal),
    }


def _grants_of(
    principal: Principal, resource_type: str, resource_id: IdColumn
) -> ColumnElement[bool]:
    return _grants_named(
        principal.tenant_id,
        Grant.user_email.in_(identities(principal)),
        resource_type,
        resource_id,
    )


def _grants_named(
    tenant: str | ColumnElement[str],
    named: ColumnElement[bool],
    resource_type: str,
    resource_id: IdColumn,
) -> ColumnElement[bool]:
    return and_(
        Grant.tenant_id == tenant,
        Grant.resource_type == resource_type,
        Grant.resource_id == resource_id,
        named,
    )


def _published_view_of(tenant: str | ColumnElement[str], panel_id: IdColumn) -> ColumnElement[bool]:
    return exists().where(
        PanelView.tenant_id == tenant,
        PanelView.panel_id == panel_id,
        PanelView.is_published.is_(True),
    )


def _readable_panel(
    tenant: str | ColumnElement[str], named: ColumnElement[bool], panel_id: IdColumn
) -> ColumnElement[bool]:
    return or_(
        exists().where(_grants_named(tenant, named, "panel", panel_id)),
        _published_view_of(tenant, panel_id),
    )


@lru_cache(maxsize=4096)
def readable_panels(
    principal: Principal, panel_id: IdColumn | None = None
) -> tuple[ColumnElement[bool], ...]:
    """Conditions keeping the panels (or rows about panels, by `panel_id`) the caller may read."""
    if principal.is_admin:
        return ()
    column = Panel.id if panel_id is None else panel_id
    named = Grant.user_email.in_(identities(principal))
    return (_readable_panel(principal.tenant_id, named, column),)


@cache
def readable_panels_bound(admin: bool) -> tuple[ColumnElement[bool], ...]:
    """`readable_panels` with the caller as the bound parameters `tenant_id` and `identities`
    (`caller_parameters`): one statement for every caller who is (or is not) an admin."""
    if admin:
        return ()
    named = Grant.user_email == any_(_IDENTITIES_PARAMETER)
    return (_readable_panel(TENANT_PARAMETER, named, Panel.id),)


def _readable_view(
    tenant: str | ColumnElement[str], user: str | ColumnElement[str], named: ColumnElement[bool]
) -> ColumnElement[bool]:
    return or_(
        PanelView.is_published.is_(True),
        PanelView.owner_user_id == user,
        exists().where(_grants_named(tenant, named, "view", PanelView.id)),
    )


@lru_cache(maxsize=4096)
def readable_views(principal: Principal) -> tuple[ColumnElement[bool], ...]:
    if principal.is_admin:
        return ()
    named = Grant.user_email.in_(identities(principal))
    return (_readable_view(principal.tenant_id, principal.user_id, named),)


@cache
def readable_views_bound(admin: bool) -> tuple[ColumnElement[bool], ...]:
    """`readable_views` with the caller as bound parameters, as `readable_panels_bound`."""
    if admin:
        return ()
    named = Grant.user_email == any_(_IDENTITIES_PARAMETER)
    return (_readable_view(TENANT_PARAMETER, _USER_PARAMETER, named),)


@lru_cache(maxsize=4096)
def readable_changes(principal: Principal) -> tuple[ColumnElement[bool], ...]:
    """Change records of panels the caller may read, without those about views they may not."""
    if principal.is_admin:
        return ()
    view_readable = exists().where(
        PanelView.tenant_id == principal.tenant_id,
        PanelView.id == PanelChange.view_id,
        *readable_views(principal),
    )
    return (
        *readable_panels(principal, PanelChange.panel_id),
        or_(
            PanelChange.view_id.is_(None),
            PanelChange.changed_by == principal.user_id,
            view_readable,
        ),
    )


def may_read_change(
    principal: Principal, *, view_id: int | None, changed_by: str, readable_view_ids: set[int]
) -> bool:
    """`readable_changes` for one record of a panel the principal may read, given which views
    of that panel it may read (the realtime stream judges live events with it)."""
    return (
        principal.is_admin
        or view_id is None
        or changed_by == principal.user_id
        or view_id in readable_view_ids
    )


_LEVEL = case(
    (Grant.permission == "owner", int(Access.OWNER)),
    (Grant.permission == "editor", int(Access.EDITOR)),
    else_=int(Access.VIEWER),
)


async def access(
    session: AsyncSession, principal: Principal, resource: Panel | PanelView
) -> Access:
    """What this principal may do to this panel or view (one query at most)."""
    if isinstance(resource, PanelView):
        return await _view_access(session, principal, resource)
    return await panel_access(session, principal, resource.id)


async def _view_access(session: AsyncSession, principal: Principal, resource: PanelView) -> Access:
    if principal.is_admin:
        return Access.OWNER
    if resource.owner_user_id == principal.user_id:
        return Access.OWNER
    granted = select(func.max(_LEVEL)).where(_grants_of(principal, "view", literal(resource.id)))
    level = await session.scalar(granted)
    if level:
        return Access(level)
    return Access.VIEWER if resource.is_published else Access.NONE


async def panel_access(session: AsyncSession, principal: Principal, panel_id: int) -> Access:
    """What this principal may do to the panel with this id (one query at most)."""
    if principal.is_admin:
        return Access.OWNER
    statement = select(
        select(func.max(_LEVEL))
        .where(_grants_of(principal, "panel", literal(panel_id)))
        .scalar_subquery(),
        select(_published_view_of(principal.tenant_id, literal(panel_id))).scalar_subquery(),
    )
    level, published = (await session.execute(statement)).one()
    return access_of(level, published)


@cache
def panel_access_bound() -> tuple[ColumnElement[int | None], ColumnElement[bool]]:
    """What `panel_access` reads, as columns of a statement about `Panel` rows, with the caller
    as the bound parameters of `caller_parameters`; `access_of` answers from their values."""
    named = Grant.user_email == any_(_IDENTITIES_PARAMETER)
    level = (
        select(func.max(_LEVEL))
        .where(_grants_named(TENANT_PARAMETER, named, "panel", Panel.id))
        .scalar_subquery()
    )
    return level, _published_view_of(TENANT_PARAMETER, Panel.id)


def access_of(level: int | None, published: bool) -> Access:
    """A non-admin's access to a panel from its strongest grant and whether it is published."""
    if level:
        return Access(level)
    return Access.VIEWER if published else Access.NONE


def require(granted: Access, needed: Access, action: str) -> None:
    """403 for a caller who can see the resource but may not do `action` to it."""
    if granted < needed:
        raise Forbidden(f"You may not {action}")


async def require_publish_right(
    session: AsyncSession, principal: Principal, view: PanelView
) -> None:
    """403 unless the caller may change this view and its panel (see the module docstring)."""
    require(await access(session, principal, view), Access.EDITOR, "publish or unpublish this view")
    require(
        await panel_access(session, principal, view.panel_id),
        Access.EDITOR,
        "publish or unpublish views of this panel: that needs the panel's editor or owner right",
    )


def require_grant_right(granted: Access, *permissions: str | None) -> None:
    """403 unless the caller may manage grants carrying these permissions (the grant's current
    and new ones): owners manage any grant, editors only viewer and editor grants."""
    require(granted, Access.EDITOR, "manage its grants")
    if "owner" in permissions:
        require(granted, Access.OWNER, "manage owner grants (editors share as viewer or editor)")


def require_panel_creator(principal: Principal) -> None:
    if principal.role not in ("admin", "builder"):
        raise Forbidden("Only admins and builders may create panels")
