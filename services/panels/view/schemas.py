from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType, field

from panels.platform.conditions import Operator, check_operator_value
from panels.platform.schemas import CamelStruct, Id, Timestamp, check_json_value
from panels.platform.tenancy import RequestBody

ViewName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
        examples=["My open cases"],
    ),
]
ColumnRef = Annotated[
    str,
    Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$", description="A column's name or id."),
]
VisibleColumns = Annotated[
    list[Annotated[int, Meta(ge=1)] | Annotated[str, Meta(max_length=20)]],
    Meta(max_length=500, description="Column ids of the view's panel (strings; numbers accepted)."),
]
MAX_SORTS = 50
MAX_FILTERS = 100


class ViewCreate(RequestBody):
    panel_id: Id
    name: ViewName
    visible_columns: VisibleColumns = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_json_value(self.metadata, "metadata")


class ViewUpdate(RequestBody):
    """`metadata` is merged; a key sent as null is removed."""

    name: ViewName | UnsetType = UNSET
    visible_columns: VisibleColumns | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, UnsetType):
            check_json_value(self.metadata, "metadata")


class SortWrite(CamelStruct):
    column_name: ColumnRef
    direction: Literal["asc", "desc"] = "asc"
    order: Annotated[int, Meta(ge=0, le=10_000)] | None = None


class SortsWrite(RequestBody):
    sorts: Annotated[list[SortWrite], Meta(max_length=MAX_SORTS)]


class FilterWrite(CamelStruct):
    column_name: ColumnRef
    operator: Operator
    value: Any = None
    logical_operator: Literal["and", "or"] = "and"

    def __post_init__(self) -> None:
        check_operator_value(self.operator, self.value, "value")


class FiltersWrite(RequestBody):
    filters: Annotated[list[FilterWrite], Meta(max_length=MAX_FILTERS)]


class SortRead(CamelStruct):
    id: int
    column_name: str
    direction: Literal["asc", "desc"]
    order: int


class FilterRead(CamelStruct):
    id: int
    column_name: str
    operator: Operator
    value: Any
    logical_operator: Literal["and", "or"]


class SortsRead(CamelStruct):
    sorts: list[SortRead]


class FiltersRead(CamelStruct):
    filters: list[FilterRead]


class ViewRead(CamelStruct):
    id: int
    panel_id: int
    name: str
    owner_user_id: str
    tenant_id: str
    is_published: bool
    published_at: Timestamp | None
    published_by: str | None
    visible_columns: list[str]
    metadata: dict[str, Any]
    sort: list[SortRead]
    filters: list[FilterRead]
    created_at: Timestamp
    updated_at: Timestamp


class ViewPage(CamelStruct):
    views: list[ViewRead]
    total: int
