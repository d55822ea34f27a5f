"""Data source bodies. `config` is checked per `type` with a msgspec tagged union."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from panels.datasource.entities import DataSource
from panels.platform.schemas import CamelStruct, Text, Timestamp, iso_timestamp
from panels.platform.tenancy import RequestBody

SourceType = Literal["database", "api", "file", "custom"]
SyncStatus = Literal["never", "queued", "running", "success", "error"]
MAX_INLINE_CONTENT = 1024 * 1024
MAX_QUERY_LENGTH = 64 * 1024

KeyField = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^[^\x00\s]*$")]
HeaderName = Annotated[
    str, Meta(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
]
HeaderValue = Annotated[str, Meta(max_length=8192, pattern=r"^[^\x00\r\n]*$")]
SyncInterval = Annotated[
    int,
    Meta(
        ge=5,
        le=7 * 24 * 60,
        description="Sync on a schedule, every this many minutes (5 at least).",
    ),
]


# A config may be saved incomplete (the web client adds an `api` source before its URL): a
# field not sent stays UNSET and is absent from the stored config; only `keyField` defaults.


class ApiConfig(Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    url: (
        Annotated[
            Url, Meta(description="http(s); private, loopback and link-local hosts are refused.")
        ]
        | UnsetType
    ) = UNSET
    method: Literal["GET", "POST"] | UnsetType = UNSET
    headers: Annotated[dict[HeaderName, HeaderValue], Meta(max_length=50)] | UnsetType = UNSET
    items_path: Annotated[Text, Meta(max_length=1024)] | UnsetType | None = UNSET
    next_cursor_path: (
        Annotated[
            Text,
            Meta(
                max_length=1024,
                description="Dotted path to the next page's cursor in a response; paging by "
                "`Link: rel=next` when absent.",
            ),
        ]
        | UnsetType
    ) = UNSET
    cursor_param: (
        Annotated[
            Text,
            Meta(
                min_length=1,
                max_length=256,
                description="Query parameter the cursor is sent back as (default `cursor`).",
            ),
        ]
        | UnsetType
    ) = UNSET
    sync_interval_minutes: SyncInterval | UnsetType = UNSET
    key_field: KeyField = "id"


class DatabaseConfig(Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    url: (
        Annotated[
            Url,
            Meta(
                description="postgresql://user:password@host:port/database; private, loopback "
                "and link-local hosts are refused."
            ),
        ]
        | UnsetType
    ) = UNSET
    query: (
        Annotated[
            Text,
            Meta(
                min_length=1,
                max_length=MAX_QUERY_LENGTH,
                description="One statement that only reads: SELECT, VALUES, TABLE, WITH … "
                "SELECT, and UNION/INTERSECT/EXCEPT of them; no INTO, no FOR UPDATE/SHARE, "
                "no INSERT/UPDATE/DELETE/MERGE inside WITH.",
            ),
        ]
        | UnsetType
    ) = UNSET
    sync_interval_minutes: SyncInterval | UnsetType = UNSET
    key_field: KeyField = "id"


class FileConfig(Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    format: Literal["csv", "json", "ndjson"]
    key_field: KeyField = "id"
    content: Annotated[Text, Meta(max_length=MAX_INLINE_CONTENT)] | UnsetType | None = UNSET


class CustomConfig(Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    key_field: KeyField = "id"


CONFIG_TYPES: dict[str, type[Struct]] = {
    "api": ApiConfig,
    "database": DatabaseConfig,
    "file": FileConfig,
    "custom": CustomConfig,
}


class _SourceCreate(RequestBody, tag_field="type"):
    """A data source to add; `type` selects the config schema."""


class ApiSourceCreate(_SourceCreate, tag="api", kw_only=True):
    config: ApiConfig


class DatabaseSourceCreate(_SourceCreate, tag="database", kw_only=True):
    config: DatabaseConfig


class FileSourceCreate(_SourceCreate, tag="file", kw_only=True):
    config: FileConfig


class CustomSourceCreate(_SourceCreate, tag="custom", kw_only=True):
    config: CustomConfig = field(default_factory=CustomConfig)


DataSourceCreate = ApiSourceCreate | DatabaseSourceCreate | FileSourceCreate | CustomSourceCreate


class DataSourceUpdate(RequestBody):
    """`config`, when sent, replaces the stored one (keys not sent are gone); `"***"` keeps a
    stored secret."""

    type: SourceType | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET


class DataSourceRead(CamelStruct):
    id: int
    panel_id: int
    type: SourceType
    config: dict[str, Any]
    last_sync: Timestamp | None
    sync_status: SyncStatus
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_entity(cls, source: DataSource, masked_config: dict[str, Any]) -> DataSourceRead:
        return cls(
            id=source.id,
            panel_id=source.panel_id,
            type=source.type,  # type: ignore[arg-type]
            config=masked_config,
            last_sync=iso_timestamp(source.last_sync) if source.last_sync else None,
            sync_status=source.sync_status,  # type: ignore[arg-type]
            created_at=iso_timestamp(source.created_at),
            updated_at=iso_timestamp(source.updated_at),
        )
