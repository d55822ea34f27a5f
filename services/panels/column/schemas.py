from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType, field

from panels.column.entities import PanelColumn
from panels.platform.schemas import (
    CamelStruct,
    Id,
    Text,
    Timestamp,
    check_json_value,
    iso_timestamp,
)
from panels.platform.tenancy import RequestBody

ColumnType = Literal[
    "text", "number", "date", "datetime", "boolean",
    "select", "multi_select", "user", "file", "custom",
]  # fmt: skip
ColumnName = Annotated[
    str,
    Meta(
        min_length=1, max_length=255, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$", examples=["Last name"]
    ),
]
Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\x00,]*$")]
Tags = Annotated[list[Tag], Meta(max_length=50)]
Formula = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=10_000,
        pattern=r"^[^\x00]*$",
        examples=['CONCAT(firstName, " ", {Last name})'],
    ),
]
SourceField = Annotated[
    str, Meta(min_length=1, max_length=1024, pattern=r"^[^\x00]*$", examples=["name.given.0"])
]


class Validation(CamelStruct):
    min: float | UnsetType | None = UNSET
    max: float | UnsetType | None = UNSET
    pattern: Annotated[Text, Meta(max_length=500)] | UnsetType | None = UNSET
    options: (
        Annotated[list[Annotated[Text, Meta(max_length=255)]], Meta(max_length=500)]
        | UnsetType
        | None
    ) = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.min, float) and isinstance(self.max, float) and self.min > self.max:
            raise ValueError("min: must not be greater than max")
        if isinstance(self.pattern, str):
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a valid regular expression ({exc.msg})") from None
        if isinstance(self.options, list) and len(set(self.options)) != len(self.options):
            raise ValueError("options: must not repeat a value")


class Display(CamelStruct):
    width: Annotated[int, Meta(ge=1, le=10000)] | UnsetType | None = UNSET
    format: Annotated[Text, Meta(max_length=100)] | UnsetType | None = UNSET
    visible: bool | UnsetType | None = UNSET
    order: Annotated[int, Meta(ge=0, le=2**31 - 1)] | UnsetType | None = UNSET
    locked: bool | UnsetType | None = UNSET


class Properties(CamelStruct):
    """Unset keys are left out; on update, a key sent as null is removed."""

    required: bool | UnsetType | None = UNSET
    unique: bool | UnsetType | None = UNSET
    default_value: Any | UnsetType = UNSET
    validation: Validation | UnsetType | None = UNSET
    display: Display | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.default_value, UnsetType):
            check_json_value(self.default_value, "defaultValue")


class _ColumnCreate(RequestBody):
    name: ColumnName
    type: ColumnType
    properties: Properties = field(default_factory=Properties)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: Tags = field(default_factory=list)

    def __post_init__(self) -> None:
        check_json_value(self.metadata, "metadata")


class BaseColumnCreate(_ColumnCreate, kw_only=True):
    source_field: SourceField | None = None
    data_source_id: Id | None = None


class CalculatedColumnCreate(_ColumnCreate, kw_only=True):
    formula: Formula


class ColumnUpdate(RequestBody):
    name: ColumnName | UnsetType = UNSET
    type: ColumnType | UnsetType = UNSET
    properties: Properties | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    source_field: SourceField | UnsetType | None = UNSET
    data_source_id: Id | UnsetType | None = UNSET
    formula: Formula | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, UnsetType):
            check_json_value(self.metadata, "metadata")


class _ColumnRead(CamelStruct):
    id: int
    panel_id: int
    name: str
    type: ColumnType
    properties: dict[str, Any]
    metadata: dict[str, Any]
    tags: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class BaseColumnRead(_ColumnRead, kw_only=True):
    column_type: Literal["base"] = "base"
    source_field: str | None
    data_source_id: int | None


class CalculatedColumnRead(_ColumnRead, kw_only=True):
    column_type: Literal["calculated"] = "calculated"
    formula: str
    dependencies: list[str]


ColumnRead = BaseColumnRead | CalculatedColumnRead


class ColumnList(CamelStruct):
    base_columns: list[BaseColumnRead]
    calculated_columns: list[CalculatedColumnRead]


def column_read(column: PanelColumn, names: dict[int, str]) -> ColumnRead:
    """`names` maps column ids of the panel to their names, for `dependencies`."""
    common: dict[str, Any] = {
        "id": column.id,
        "panel_id": column.panel_id,
        "name": column.name,
        "type": column.type,
        "properties": column.properties,
        "metadata": column.meta,
        "tags": column.tags,
        "created_at": iso_timestamp(column.created_at),
        "updated_at": iso_timestamp(column.updated_at),
    }
    if column.is_calculated:
        dependencies = [names[i] for i in column.dependency_ids if i in names]
        return CalculatedColumnRead(
            **common, formula=column.formula or "", dependencies=dependencies
        )
    return BaseColumnRead(
        **common, source_field=column.source_field, data_source_id=column.data_source_id
    )


def column_snapshot(column: PanelColumn) -> dict[str, Any]:
    """Tracked fields of a column, in wire names, for change records."""
    snapshot: dict[str, Any] = {
        "name": column.name,
        "type": column.type,
        "properties": column.properties,
        "metadata": column.meta,
        "tags": column.tags,
    }
    if column.is_calculated:
        snapshot["formula"] = column.formula
    else:
        snapshot["sourceField"] = column.source_field
        snapshot["dataSourceId"] = column.data_source_id
    return snapshot
