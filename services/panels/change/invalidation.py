"""Which change invalidates which cached reads: the one table every write goes through.

`recording.record` looks the change type up here and bumps the scopes after commit, so no
service decides on its own what to invalidate. Scopes:

- `PANEL`: everything cached about one panel (the panel, its columns and data sources, its
  rows pages and its views' rows pages, and the per-caller "may read this panel/view" markers).
- `PANEL_LISTS`: the tenant's panel lists (per caller, filtered by what each may read).
- `VIEWS`: every cached view and view list of the tenant (views show their panel's column names,
  and who may read a view depends on its grants and publication).

A change that may alter who can read a panel (its grants, a view published, unpublished or
deleted, the panel deleted) bumps `PANEL` and `PANEL_LISTS`: a published view makes its panel
readable by the whole tenant.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from panels.change.schemas import ChangeType

Scope = Literal["panel", "panel_lists", "views"]
PANEL_LISTS_SCOPE = "all"
VIEWS_SCOPE = "views"

INVALIDATES: dict[ChangeType, tuple[Scope, ...]] = {
    "panel_created": ("panel_lists",),
    # Also recorded for the panel's grants, which decide who may read it and its views' panel.
    "panel_updated": ("panel", "panel_lists", "views"),
    "panel_deleted": ("panel", "panel_lists", "views"),
    "cohort_changed": ("panel", "panel_lists"),
    "source_added": ("panel",),
    "source_changed": ("panel",),
    # Base columns bound to the source are unbound.
    "source_removed": ("panel",),
    # Views show column names; a removed column leaves the views that used it.
    "column_added": ("panel", "views"),
    "column_modified": ("panel", "views"),
    "column_removed": ("panel", "views"),
    "view_created": ("views",),
    # Also recorded for a view's grants. Its rows pages live under the panel's scope (with
    # the markers of who may read the view), and its sorts and filters shape them.
    "view_updated": ("views", "panel"),
    "view_published": ("views", "panel", "panel_lists"),
    "view_unpublished": ("views", "panel", "panel_lists"),
    "view_deleted": ("views", "panel", "panel_lists"),
}


# Changes that alter what a count of the panel's rows is made of (its sources, cohort,
# columns, or its views' filters), or add a view to count: each queues the recount of the
# panel's stored totals (`rows.totals`). The other changes leave every count as it was.
RECOUNTS: frozenset[ChangeType] = frozenset(
    {
        "cohort_changed",
        "source_added",
        "source_removed",
        "column_added",
        "column_modified",
        "column_removed",
        "view_created",
        "view_updated",
    }
)


def scopes_to_bump(change_type: ChangeType, panel_id: int) -> Iterator[str]:
    """The cache scopes a change of this type to this panel makes stale."""
    for scope in INVALIDATES[change_type]:
        if scope == "panel":
            yield str(panel_id)
        elif scope == "panel_lists":
            yield PANEL_LISTS_SCOPE
        else:
            yield VIEWS_SCOPE
