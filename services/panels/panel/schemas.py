from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from panels.panel.entities import Panel
from panels.platform.conditions import Operator, check_operator_value
from panels.platform.schemas import CamelStruct, Timestamp, check_json_value, iso_timestamp
from panels.platform.tenancy import RequestBody

PanelName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
        description="Not blank; 1 to 255 characters.",
        examples=["Discharge planning"],
    ),
]
Description = Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00]*$")]
FieldName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
Metadata = Annotated[
    dict[str, Any],
    Meta(
        description="Free-form JSON object (at most 16 levels deep).", examples=[{"team": "ward-7"}]
    ),
]
SortField = Literal["name", "createdAt", "updatedAt"]
SortDirection = Literal["asc", "desc"]
MAX_CONDITIONS = 200


class CohortCondition(CamelStruct):
    field: FieldName
    operator: Operator
    value: Any = None

    def __post_init__(self) -> None:
        check_operator_value(self.operator, self.value, "value")


class CohortRule(CamelStruct):
    """Which rows belong to the panel: conditions joined by one logic."""

    logic: Literal["AND", "OR"] = "AND"
    conditions: Annotated[list[CohortCondition], Meta(max_length=MAX_CONDITIONS)] = field(
        default_factory=list
    )


class PanelCreate(RequestBody):
    name: PanelName = "New Panel"
    description: Description | None = None
    metadata: Metadata = field(default_factory=dict)
    cohort_rule: CohortRule = field(default_factory=CohortRule)

    def __post_init__(self) -> None:
        check_json_value(self.metadata, "metadata")


class PanelUpdate(RequestBody):
    """Only the keys sent change. `metadata` is merged; a key sent as null is removed."""

    name: PanelName | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET
    cohort_rule: CohortRule | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, UnsetType):
            check_json_value(self.metadata, "metadata")


class PanelRead(CamelStruct):
    id: int
    name: str
    description: str | None
    tenant_id: str
    user_id: str
    cohort_rule: CohortRule
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_entity(cls, panel: Panel) -> PanelRead:
        return cls(
            id=panel.id,
            name=panel.name,
            description=panel.description,
            tenant_id=panel.tenant_id,
            user_id=panel.user_id,
            cohort_rule=msgspec.convert(panel.cohort_rule, CohortRule),
            metadata=panel.meta,
            created_at=iso_timestamp(panel.created_at),
            updated_at=iso_timestamp(panel.updated_at),
        )


def panel_snapshot(panel: Panel) -> dict[str, Any]:
    """The tracked fields of a panel, in wire names, for change records."""
    return {
        "name": panel.name,
        "description": panel.description,
        "metadata": panel.meta,
        "cohortRule": panel.cohort_rule,
    }
