from __future__ import annotations

from hashlib import blake2b
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from msgspec import UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import Access
from panels.change import recording as changes
from panels.change.entities import PanelChange
from panels.change.notifications import Impact, notify_owners, views_using_columns
from panels.column.entities import PanelColumn
from panels.column.formula import FormulaError, parse, rename_column, to_text, validate
from panels.column.schemas import (
    BaseColumnCreate,
    BaseColumnRead,
    CalculatedColumnCreate,
    CalculatedColumnRead,
    ColumnList,
    ColumnRead,
    ColumnUpdate,
    Properties,
    column_read,
    column_snapshot,
)
from panels.datasource.entities import DataSource
from panels.panel.services import PanelService
from panels.platform.errors import BadRequest, Conflict, NotFound
from panels.platform.http import JsonBody, check_if_match, encoded
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.rows.indexes import queue_index_update
from panels.view.services import ViewService

MAX_COLUMNS_PER_PANEL = 500


class ColumnRepository(SQLAlchemyAsyncRepository[PanelColumn]):
    model_type = PanelColumn


class ColumnService(SQLAlchemyAsyncRepositoryService[PanelColumn, ColumnRepository]):
    """A panel's base and calculated columns. Writes lock the panel row, so that name
    uniqueness and the absence of formula cycles hold under concurrent requests."""

    repository_type = ColumnRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        super().__init__(
            session=session, statement=tenant_statement(PanelColumn, ctx), auto_refresh=False
        )
        self.session = session
        self.ctx = ctx
        self.runtime = runtime
        self.panels = PanelService(session, ctx, runtime.cache)

    async def list_columns(self, panel_id: int, ids: list[int], tags: list[str]) -> JsonBody:
        key = blake2b(f"{sorted(ids)}|{sorted(tags)}".encode(), digest_size=12).hexdigest()

        async def load() -> JsonBody:
            return await self._listing(panel_id, ids, tags)

        return await self.runtime.cache.read_through(
            self.ctx,
            str(panel_id),
            f"columns:{key}",
            load,
            authorization=self.panels.read_authorization(panel_id),
        )

    async def _listing(self, panel_id: int, ids: list[int], tags: list[str]) -> JsonBody:
        columns = await self._panel_columns(panel_id)
        names = {c.id: c.name for c in columns}
        wanted = [
            c for c in columns if (not ids or c.id in ids) and (not tags or set(tags) & set(c.tags))
        ]
        wanted.sort(key=display_order)
        reads = [column_read(c, names) for c in wanted]
        listing = ColumnList(
            base_columns=[r for r in reads if isinstance(r, BaseColumnRead)],
            calculated_columns=[r for r in reads if isinstance(r, CalculatedColumnRead)],
        )
        return encoded(listing)

    async def create_base(self, panel_id: int, data: BaseColumnCreate) -> ColumnRead:
        columns = await self._columns_for_write(panel_id)
        self._check_new_name(columns, data.name)
        if data.data_source_id is not None:
            await self._check_source(panel_id, data.data_source_id, "body.dataSourceId")
        column = PanelColumn(
            tenant_id=self.ctx.tenant_id,
            panel_id=panel_id,
            column_type="base",
            name=data.name,
            type=data.type,
            properties=merge_properties({}, data.properties),
            meta=data.metadata,
            tags=data.tags,
            source_field=data.source_field if data.source_field is not None else data.name,
            data_source_id=data.data_source_id,
            dependency_ids=[],
        )
        return await self._add(column, columns)

    async def create_calculated(self, panel_id: int, data: CalculatedColumnCreate) -> ColumnRead:
        columns = await self._columns_for_write(panel_id)
        self._check_new_name(columns, data.name)
        column = PanelColumn(
            tenant_id=self.ctx.tenant_id,
            panel_id=panel_id,
            column_type="calculated",
            name=data.name,
            type=data.type,
            properties=merge_properties({}, data.properties),
            meta=data.metadata,
            tags=data.tags,
            formula=data.formula,
        )
        column.dependency_ids = _validate_formula(column, columns)
        return await self._add(column, columns)

    async def update_column(
        self, panel_id: int, column_id: int, data: ColumnUpdate, if_match: str | None
    ) -> ColumnRead:
        columns = await self._columns_for_write(panel_id)
        column = _find(columns, column_id)
        check_if_match(if_match, encoded(_read(column, columns)).etag)
        before = column_snapshot(column)
        old_name, old_type = column.name, column.type
        self._apply(column, data, columns)
        if not isinstance(data.data_source_id, UnsetType) and data.data_source_id is not None:
            await self._check_source(panel_id, data.data_source_id, "body.dataSourceId")
        if column.is_calculated and (
            not isinstance(data.formula, UnsetType)
            or column.type != old_type
            or column.name != old_name
        ):
            column.dependency_ids = _validate_formula(column, columns)
        dependents = [c for c in columns if column.id in c.dependency_ids]
        if column.name != old_name:
            await self._rewrite_dependents(dependents, old_name, column.name)
        if column.type != old_type:
            _revalidate_dependents(dependents, columns)
        after = column_snapshot(column)
        if after != before:
            await self.update(column)
            if any(before.get(f) != after.get(f) for f in ("type", "sourceField", "dataSourceId")):
                # The value the column's indexes hold is another expression now.
                await queue_index_update(
                    self.session, self.ctx.tenant_id, panel_id, only_if_indexed=True
                )
            change = await self._record(
                column,
                "column_modified",
                _describe_change(old_name, before, after),
                old=before,
                new=after,
            )
            await self._notify_views(change, before, after)
        return _read(column, columns)

    async def delete_column(self, panel_id: int, column_id: int, if_match: str | None) -> None:
        columns = await self._columns_for_write(panel_id)
        column = _find(columns, column_id)
        check_if_match(if_match, encoded(_read(column, columns)).etag)
        dependents = sorted(c.name for c in columns if column.id in c.dependency_ids)
        if dependents:
            raise Conflict(
                f'Column "{column.name}" is used by calculated columns: {", ".join(dependents)}'
            )
        snapshot = column_snapshot(column)
        # Views lose the column in this same transaction, and their owners hear of it.
        views = await ViewService(self.session, self.ctx, self.runtime).detach_column(
            panel_id, column.id
        )
        await self.session.delete(column)
        await self.session.flush()
        change = await self._record(
            column, "column_removed", f'Column "{column.name}" removed', old=snapshot
        )
        message = f'column "{column.name}" was removed'
        await notify_owners(self.session, self.ctx, change, views, "breaking", message)

    async def _columns_for_write(self, panel_id: int) -> list[PanelColumn]:
        await self.panels.require_access(
            panel_id, Access.EDITOR, "change this panel's columns", for_update=True
        )
        return await self._panel_columns(panel_id)

    async def _panel_columns(self, panel_id: int) -> list[PanelColumn]:
        return list(await self.get_many(PanelColumn.panel_id == panel_id, order_by=[("id", False)]))

    async def _add(self, column: PanelColumn, columns: list[PanelColumn]) -> ColumnRead:
        if len(columns) >= MAX_COLUMNS_PER_PANEL:
            raise Conflict(f"A panel has at most {MAX_COLUMNS_PER_PANEL} columns")
        column = await self.create(column)
        kind = "Calculated column" if column.is_calculated else "Column"
        await self._record(
            column, "column_added", f'{kind} "{column.name}" added', new=column_snapshot(column)
        )
        return _read(column, columns)

    def _check_new_name(
        self, columns: list[PanelColumn], name: str, own_id: int | None = None
    ) -> None:
        clash = next(
            (c for c in columns if c.name.lower() == name.lower() and c.id != own_id), None
        )
        if clash is not None:
            raise Conflict(f'A column named "{clash.name}" already exists in this panel')

    async def _check_source(self, panel_id: int, source_id: int, where: str) -> None:
        source = await self.session.get(DataSource, source_id)
        if source is None or source.panel_id != panel_id or source.tenant_id != self.ctx.tenant_id:
            raise BadRequest(where, "must be a data source of this panel")

    def _apply(self, column: PanelColumn, data: ColumnUpdate, columns: list[PanelColumn]) -> None:
        if not isinstance(data.name, UnsetType):
            self._check_new_name(columns, data.name, column.id)
            column.name = data.name
        if not isinstance(data.type, UnsetType):
            column.type = data.type
        if not isinstance(data.properties, UnsetType):
            column.properties = merge_properties(column.properties, data.properties)
        if not isinstance(data.metadata, UnsetType):
            column.meta = data.metadata
        if not isinstance(data.tags, UnsetType):
            column.tags = data.tags
        kind_fields = {"sourceField": data.source_field, "dataSourceId": data.data_source_id}
        if column.is_calculated:
            for wire_name, value in kind_fields.items():
                if not isinstance(value, UnsetType):
                    raise BadRequest(f"body.{wire_name}", "only base columns have it")
            if not isinstance(data.formula, UnsetType):
                column.formula = data.formula
            return
        if not isinstance(data.formula, UnsetType):
            raise BadRequest("body.formula", "only calculated columns have a formula")
        if not isinstance(data.source_field, UnsetType):
            column.source_field = (
                data.source_field if data.source_field is not None else column.name
            )
        if not isinstance(data.data_source_id, UnsetType):
            column.data_source_id = data.data_source_id

    async def _rewrite_dependents(self, dependents: list[PanelColumn], old: str, new: str) -> None:
        for dependent in dependents:
            before = column_snapshot(dependent)
            dependent.formula = to_text(rename_column(parse(dependent.formula or ""), old, new))
            after = column_snapshot(dependent)
            if after != before:
                await self.update(dependent)
                description = (
                    f'Formula of "{dependent.name}" follows the rename of "{old}" to "{new}"'
                )
                await self._record(dependent, "column_modified", description, old=before, new=after)

    async def _record(
        self, column: PanelColumn, change_type: changes.ChangeType, description: str, **values: Any
    ) -> PanelChange:
        return await changes.record(
            self.session,
            self.ctx,
            panel_id=column.panel_id,
            change_type=change_type,
            entity_type="column",
            entity_id=column.id,
            description=description,
            affected_column=column.name,
            **values,
        )

    async def _notify_views(
        self, change: PanelChange, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        """Tell the owners of views that use the column what the change means for them."""
        if before["name"] != after["name"]:
            impact: Impact = "info"
            message = f'column "{before["name"]}" was renamed to "{after["name"]}"'
        elif before["type"] != after["type"] or before.get("formula") != after.get("formula"):
            impact = "warning"
            message = f'column "{after["name"]}" changed its ' + (
                "type" if before["type"] != after["type"] else "formula"
            )
        elif before.get("dataSourceId") != after.get("dataSourceId") or before.get(
            "sourceField"
        ) != after.get("sourceField"):
            impact = "warning"
            message = f'column "{after["name"]}" now reads another source field'
        else:
            return
        views = await views_using_columns(
            self.session, self.ctx, change.panel_id, [change.entity_id or 0]
        )
        await notify_owners(self.session, self.ctx, change, views, impact, message)


def _read(column: PanelColumn, columns: list[PanelColumn]) -> ColumnRead:
    names = {c.id: c.name for c in columns}
    names[column.id] = column.name
    return column_read(column, names)


def _find(columns: list[PanelColumn], column_id: int) -> PanelColumn:
    column = next((c for c in columns if c.id == column_id), None)
    if column is None:
        raise NotFound("Column not found")
    return column


def display_order(column: PanelColumn) -> tuple[bool, int, int]:
    """`properties.display.order` (missing last), then id: the order columns are listed in."""
    order = column.properties.get("display", {}).get("order")
    return (order is None, order if isinstance(order, int) else 0, column.id)


def _validate_formula(column: PanelColumn, columns: list[PanelColumn]) -> list[int]:
    """Check the column's formula against the panel; the ids of the columns it reads."""
    others = [c for c in columns if c.id != column.id]
    types = {c.name: c.type for c in others} | {column.name: column.type}
    formulas = {c.name: c.formula or "" for c in others if c.is_calculated}
    try:
        _, dependencies = validate(column.formula or "", column.name, column.type, types, formulas)
    except FormulaError as exc:
        raise BadRequest("body.formula", str(exc)) from None
    ids = {c.name.lower(): c.id for c in others}
    return [ids[name.lower()] for name in dependencies]


def _revalidate_dependents(dependents: list[PanelColumn], columns: list[PanelColumn]) -> None:
    broken = []
    for dependent in dependents:
        try:
            _validate_formula(dependent, columns)
        except BadRequest:
            broken.append(dependent.name)
    if broken:
        raise Conflict(f"The new type breaks the formulas of: {', '.join(sorted(broken))}")


def merge_properties(stored: dict[str, Any], patch: Properties) -> dict[str, Any]:
    """Shallow merge, `display` one level deeper; a key sent as null is removed."""
    incoming: dict[str, Any] = msgspec.to_builtins(patch)
    merged = dict(stored)
    for key, value in incoming.items():
        if value is None:
            merged.pop(key, None)
            continue
        if isinstance(value, dict):
            stored_display = merged.get(key) if key == "display" else None
            deeper: dict[str, Any] = stored_display if isinstance(stored_display, dict) else {}
            value = {k: v for k, v in {**deeper, **value}.items() if v is not None}
        merged[key] = value
    return merged


def _describe_change(old_name: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    if before["name"] != after["name"]:
        return f'Column "{old_name}" renamed to "{after["name"]}"'
    if before["type"] != after["type"]:
        return f'Column "{old_name}" type changed from {before["type"]} to {after["type"]}'
    changed = [k for k in after if before.get(k) != after.get(k)]
    return f'Column "{old_name}" changed: {", ".join(changed)}'
