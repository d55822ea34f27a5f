"""How a view is shown: on the wire, and as the tracked fields of its change records."""

from __future__ import annotations

from typing import Any

from panels.column.entities import PanelColumn
from panels.platform.schemas import iso_timestamp
from panels.view.entities import PanelView
from panels.view.schemas import FilterRead, SortRead, ViewRead


def view_read(view: PanelView, names: dict[int, str]) -> ViewRead:
    """A view on the wire; `names` gives its panel's column names by id."""
    return ViewRead(
        id=view.id,
        panel_id=view.panel_id,
        name=view.name,
        owner_user_id=view.owner_user_id,
        tenant_id=view.tenant_id,
        is_published=view.is_published,
        published_at=iso_timestamp(view.published_at) if view.published_at else None,
        published_by=view.published_by,
        visible_columns=[str(c) for c in view.visible_columns],
        metadata=view.meta,
        sort=[
            SortRead(
                id=s.id,
                column_name=names.get(s.column_id, ""),
                direction=s.direction,  # type: ignore[arg-type]
                order=s.sort_order,
            )
            for s in sorted(view.sorts, key=lambda s: (s.sort_order, s.id))
        ],
        filters=[
            FilterRead(
                id=f.id,
                column_name=names.get(f.column_id, ""),
                operator=f.operator,  # type: ignore[arg-type]
                value=f.value,
                logical_operator=f.logical_operator,  # type: ignore[arg-type]
            )
            for f in sorted(view.filters, key=lambda f: f.position)
        ],
        created_at=iso_timestamp(view.created_at),
        updated_at=iso_timestamp(view.updated_at),
    )


def view_snapshot(view: PanelView, columns: list[PanelColumn]) -> dict[str, Any]:
    """Tracked fields of a view, in wire names and with column names, for change records."""
    names = {c.id: c.name for c in columns}
    return {
        "name": view.name,
        "visibleColumns": [str(c) for c in view.visible_columns],
        "metadata": view.meta,
        "isPublished": view.is_published,
        "sort": [
            {"columnName": names.get(s.column_id), "direction": s.direction, "order": s.sort_order}
            for s in sorted(view.sorts, key=lambda s: (s.sort_order, s.column_id))
        ],
        "filters": [
            {
                "columnName": names.get(f.column_id),
                "operator": f.operator,
                "value": f.value,
                "logicalOperator": f.logical_operator,
            }
            for f in sorted(view.filters, key=lambda f: f.position)
        ],
    }
