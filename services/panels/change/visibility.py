"""Which change records a principal may see beyond the panel rule, and which may change access.

A record about a view (`entityType` "view", or a grant on a view) shows the view's values, so it
is visible only to those who may read that view now (`acl.permissions.readable_views`; admins
see all). A record about a view that no longer exists is therefore for admins only, as is a
grant record that does not name its view (a changed grant keeps only the changed permission).

The view a record is about is said twice, once for decoded records (live events) and once as
SQL (lists and replays); both are here, side by side, so they stay one rule.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, and_, case, exists, func, literal, or_

from panels.acl.permissions import readable_views
from panels.change.entities import PanelChange
from panels.change.schemas import ChangeRead
from panels.platform.auth import Principal
from panels.view.entities import PanelView

# Changes after which a principal may read fewer (or more) panels or views than before.
ACCESS_CHANGE_TYPES = frozenset(
    {"view_published", "view_unpublished", "view_deleted", "panel_deleted"}
)
# Stands for a view the record does not name: no view has this id, so only admins see it.
UNNAMED_VIEW = 0


def may_change_access(change: ChangeRead) -> bool:
    return change.entity_type == "grant" or change.change_type in ACCESS_CHANGE_TYPES


def view_of(change: ChangeRead) -> int | None:
    """The view this record is about, or None when it is about no view."""
    if change.entity_type == "view":
        return change.entity_id
    if change.entity_type == "grant" and change.change_type == "view_updated":
        named = change.new_values.get("resourceId", change.old_values.get("resourceId"))
        return named if isinstance(named, int) else UNNAMED_VIEW
    return None


def view_of_record() -> ColumnElement[int | None]:
    """`view_of` as SQL over `panel_change`."""
    named = func.coalesce(
        PanelChange.new_values["resourceId"].astext.cast(BigInteger),
        PanelChange.old_values["resourceId"].astext.cast(BigInteger),
        literal(UNNAMED_VIEW, BigInteger),
    )
    return case(
        (PanelChange.entity_type == "view", PanelChange.entity_id),
        (
            and_(PanelChange.entity_type == "grant", PanelChange.change_type == "view_updated"),
            named,
        ),
        else_=None,
    )


def visible_records(principal: Principal) -> tuple[ColumnElement[bool], ...]:
    """Conditions keeping the change records whose view, if any, the principal may read."""
    if principal.is_admin:
        return ()
    view = view_of_record()
    return (
        or_(
            view.is_(None),
            exists().where(
                PanelView.tenant_id == principal.tenant_id,
                PanelView.id == view,
                *readable_views(principal),
            ),
        ),
    )


def visible_event(change: ChangeRead, principal: Principal, views: set[int]) -> bool:
    """`visible_records` for a live event, given the views of its panel the principal may read."""
    view = view_of(change)
    return principal.is_admin or view is None or view in views
