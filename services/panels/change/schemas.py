from __future__ import annotations

from typing import Any

from panels.change.entities import PanelChange
from panels.platform.changes import ChangeType, EntityType
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp


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
