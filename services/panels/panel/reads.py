"""The panel reads served through the cache, and how a miss reads the database."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from hashlib import blake2b
from typing import Any, TypeVar

import msgspec
from asyncpg import Connection
from sqlalchemy import ColumnElement, Text, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from panels.acl.permissions import TENANT_PARAMETER, caller_parameters, readable_panels_bound
from panels.change.invalidation import PANEL_LISTS_SCOPE
from panels.panel.entities import Panel
from panels.panel.schemas import CohortRule, PanelRead, SortDirection, SortField
from panels.platform.cache import VersionedCache
from panels.platform.conditions import escape_like
from panels.platform.db import decode_jsonb
from panels.platform.errors import NotFound
from panels.platform.http import JsonBody, encode_json, encoded
from panels.platform.reads import RawQuery, read_in_tenant, read_rows
from panels.platform.schemas import iso_timestamp
from panels.platform.tenancy import RequestContext


class PanelReads:
    """The panel reads served through the cache. A miss reads on a pooled connection without
    a session (`read_in_tenant`): one statement each, compiled once for every caller and
    prepared once per connection."""

    def __init__(self, ctx: RequestContext, cache: VersionedCache, engine: AsyncEngine) -> None:
        self.ctx = ctx
        self.cache = cache
        self.engine = engine

    async def read_panel(self, panel_id: int) -> JsonBody:
        return await self.cache.read_through(
            self.ctx, str(panel_id), "panel", lambda: self._load_panel(panel_id)
        )

    async def list_panels(
        self,
        *,
        limit: int,
        offset: int,
        sort: SortField,
        direction: SortDirection | None,
        q: str | None,
    ) -> JsonBody:
        order: SortDirection = direction or ("asc" if sort == "name" else "desc")
        query_key = blake2b(f"{limit}|{offset}|{sort}|{order}|{q}".encode(), digest_size=12)

        async def load() -> JsonBody:
            return await self._load_page(limit=limit, offset=offset, sort=sort, order=order, q=q)

        name = f"list:{query_key.hexdigest()}"
        return await self.cache.read_through(self.ctx, PANEL_LISTS_SCOPE, name, load)

    async def _load_panel(self, panel_id: int) -> JsonBody:
        """The panel's representation, if the caller may read it (else 404)."""
        principal = self.ctx.principal
        query = _one_panel(principal.is_admin)
        values = {**caller_parameters(principal), "panel_id": panel_id}
        rows = await read_rows(self.engine, self.ctx.tenant_id, query, values)
        if not rows:
            raise NotFound("Panel not found")
        return encoded(_panel_read(_decoded(rows[0], _PANEL_ROW)))

    async def _load_page(
        self, *, limit: int, offset: int, sort: SortField, order: SortDirection, q: str | None
    ) -> JsonBody:
        """One page of the panels the caller may read, with the count before paging riding on
        its rows (a window count); only a page past the end counts apart."""
        principal = self.ctx.principal
        page, count = _panel_page(principal.is_admin, sort, order, q is not None)
        values = {**caller_parameters(principal), "limit": limit, "offset": offset}
        if q is not None:
            values["name_pattern"] = f"%{escape_like(q)}%"

        async def read(connection: Connection) -> tuple[list[str], str | None]:
            found = await connection.fetch(page.sql, *page.args(values))
            if not found and offset:
                return [], await connection.fetchval(count.sql, *count.args(values))
            return [row[0] for row in found], None

        rows, total_past_the_end = await read_in_tenant(self.engine, self.ctx.tenant_id, read)
        if total_past_the_end is not None:
            return JsonBody(b"[]", total=int(total_past_the_end))
        panels = [_decoded(row, _PAGE_ROW) for row in rows]
        total = panels[0].total if panels else 0
        return JsonBody(encode_json([_panel_read(p) for p in panels]), total=total)


class _PanelRow(msgspec.Struct, array_like=True):
    """A panel as `_READ_COLUMNS` makes it: a JSON array, decoded by type."""

    id: int
    name: str
    description: str | None
    tenant_id: str
    user_id: str
    cohort_rule: CohortRule
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class _PageRow(_PanelRow, array_like=True):
    total: int


_R = TypeVar("_R", bound=_PanelRow)
_PANEL_ROW = msgspec.json.Decoder(_PanelRow)
_PAGE_ROW = msgspec.json.Decoder(_PageRow)
_READ_COLUMNS = (
    Panel.id,
    Panel.name,
    Panel.description,
    Panel.tenant_id,
    Panel.user_id,
    Panel.cohort_rule,
    Panel.meta,
    Panel.created_at,
    Panel.updated_at,
)
_SORT_COLUMNS = {"name": Panel.name, "createdAt": Panel.created_at, "updatedAt": Panel.updated_at}


def _decoded(row: str, decoder: msgspec.json.Decoder[_R]) -> _R:
    try:
        return decoder.decode(row)
    except msgspec.DecodeError:  # a number beyond a float's range: as `decode_jsonb` reads it
        converted: _R = msgspec.convert(decode_jsonb(row), decoder.type)
        return converted


def readable_by_caller(admin: bool) -> list[ColumnElement[bool]]:
    """The panels of the caller's tenant the caller may read, the caller as bound parameters
    (`caller_parameters`)."""
    return [Panel.tenant_id == TENANT_PARAMETER, *readable_panels_bound(admin)]


def _as_json(*columns: Any) -> ColumnElement[str]:
    return cast(func.json_build_array(*columns), Text)


@cache
def _one_panel(admin: bool) -> RawQuery:
    panel = Panel.id == bindparam("panel_id")
    return RawQuery(select(_as_json(*_READ_COLUMNS)).where(*readable_by_caller(admin), panel))


@cache
def _panel_page(
    admin: bool, sort: SortField, order: SortDirection, searching: bool
) -> tuple[RawQuery, RawQuery]:
    """The page's statement and the count's, for this kind of caller and request."""
    conditions = readable_by_caller(admin)
    if searching:
        conditions.append(Panel.name.ilike(bindparam("name_pattern"), escape="\\"))
    column: InstrumentedAttribute[Any] = _SORT_COLUMNS[sort]
    ascending = order == "asc"
    order_by = (column.asc(), Panel.id.asc()) if ascending else (column.desc(), Panel.id.desc())
    page = (
        select(_as_json(*_READ_COLUMNS, func.count().over()))
        .where(*conditions)
        .order_by(*order_by)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return RawQuery(page), RawQuery(select(cast(func.count(), Text)).where(*conditions))


def _panel_read(row: _PanelRow) -> PanelRead:
    return PanelRead(
        id=row.id,
        name=row.name,
        description=row.description,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        cohort_rule=row.cohort_rule,
        metadata=row.metadata,
        created_at=iso_timestamp(row.created_at),
        updated_at=iso_timestamp(row.updated_at),
    )
