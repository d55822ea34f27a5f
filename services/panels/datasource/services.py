from __future__ import annotations

from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from msgspec import UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import Access
from panels.change import recording as changes
from panels.change.entities import PanelChange
from panels.change.notifications import notify_owners, views_using_source
from panels.datasource.config import (
    digest_large_values,
    mask_config,
    seal_config,
    validate_config,
)
from panels.datasource.entities import DataSource
from panels.datasource.schemas import DataSourceCreate, DataSourceRead, DataSourceUpdate
from panels.panel.services import PanelService
from panels.platform.errors import BadRequest, NotFound
from panels.platform.http import JsonBody, check_if_match, encode_json, encoded
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.rows.indexes import queue_index_update


class DataSourceRepository(SQLAlchemyAsyncRepository[DataSource]):
    model_type = DataSource


class DataSourceService(SQLAlchemyAsyncRepositoryService[DataSource, DataSourceRepository]):
    """A panel's data sources. Their configs are sealed at rest and masked on the wire."""

    repository_type = DataSourceRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        super().__init__(
            session=session, statement=tenant_statement(DataSource, ctx), auto_refresh=False
        )
        self.session = session
        self.ctx = ctx
        self.runtime = runtime
        self.panels = PanelService(session, ctx, runtime.cache)

    async def list_sources(self, panel_id: int) -> JsonBody:
        async def load() -> JsonBody:
            sources = await self.get_many(DataSource.panel_id == panel_id, order_by=[("id", False)])
            return JsonBody(encode_json([self.to_read(s) for s in sources]), total=len(sources))

        return await self.runtime.cache.read_through(
            self.ctx,
            str(panel_id),
            "datasources",
            load,
            authorization=self.panels.read_authorization(panel_id),
        )

    async def create_source(self, panel_id: int, data: DataSourceCreate) -> DataSource:
        await self.panels.require_access(
            panel_id, Access.EDITOR, "manage this panel's data sources"
        )
        source_type = str(data.__struct_config__.tag)
        config = await self._validate(source_type, msgspec.to_builtins(data.config))
        source = await self.create(
            DataSource(
                tenant_id=self.ctx.tenant_id,
                panel_id=panel_id,
                type=source_type,
                config=seal_config(config, self.runtime.secrets),
                sync_status="never",
            )
        )
        await self._record(
            source, "source_added", f"{source_type} data source added", new=self._snapshot(source)
        )
        return source

    async def update_source(
        self, source_id: int, data: DataSourceUpdate, panel_id: int | None, if_match: str | None
    ) -> DataSource:
        source = await self.get_source(source_id, panel_id)
        await self.panels.require_access(
            source.panel_id, Access.EDITOR, "manage this panel's data sources"
        )
        check_if_match(if_match, self.encode(source).etag)
        before = self._snapshot(source)
        new_type = source.type if isinstance(data.type, UnsetType) else data.type
        if isinstance(data.config, UnsetType):
            if new_type != source.type:
                raise BadRequest("body.config", "is required when the type changes")
        else:
            stored = source.config if new_type == source.type else None
            config = await self._validate(new_type, data.config)
            source.config = seal_config(config, self.runtime.secrets, stored)
        source.type = new_type
        after = self._snapshot(source)
        if after == before:
            return source
        source = await self.update(source)
        change = await self._record(
            source, "source_changed", f"{source.type} data source changed", old=before, new=after
        )
        views = await views_using_source(self.session, self.ctx, source.panel_id, source.id)
        message = f"the {source.type} data source behind it changed"
        await notify_owners(self.session, self.ctx, change, views, "warning", message)
        return source

    async def delete_source(
        self, source_id: int, panel_id: int | None, if_match: str | None
    ) -> None:
        source = await self.get_source(source_id, panel_id)
        await self.panels.require_access(
            source.panel_id, Access.EDITOR, "manage this panel's data sources"
        )
        check_if_match(if_match, self.encode(source).etag)
        snapshot = self._snapshot(source)
        # Found before the delete, which unbinds the columns from the source.
        views = await views_using_source(self.session, self.ctx, source.panel_id, source.id)
        await self.session.delete(source)
        await self.session.flush()
        change = await self._record(
            source, "source_removed", f"{source.type} data source removed", old=snapshot
        )
        message = f"the {source.type} data source behind it was removed"
        await notify_owners(self.session, self.ctx, change, views, "breaking", message)

    def to_read(self, source: DataSource) -> DataSourceRead:
        return DataSourceRead.from_entity(source, mask_config(source.config, self.runtime.secrets))

    def encode(self, source: DataSource) -> JsonBody:
        return encoded(self.to_read(source))

    async def _validate(self, source_type: str, raw: Any) -> dict[str, Any]:
        return await validate_config(
            source_type, raw, allow_private=self.runtime.settings.allow_private_sources
        )

    async def get_source(
        self, source_id: int, panel_id: int | None, *, lock: bool = True
    ) -> DataSource:
        """The source (locked unless `lock` is False), 404 when it is not found or, given a
        panel, not on that panel; its callers then check the panel (404 when it is hidden)."""
        source = await self.get_one_or_none(DataSource.id == source_id, with_for_update=lock)
        if source is None or (panel_id is not None and source.panel_id != panel_id):
            raise NotFound("Data source not found")
        return source

    def _snapshot(self, source: DataSource) -> dict[str, Any]:
        """Tracked fields for change records: secrets masked, large values as digests."""
        config = mask_config(source.config, self.runtime.secrets)
        return {"type": source.type, "config": digest_large_values(config)}

    async def _record(
        self, source: DataSource, change_type: changes.ChangeType, description: str, **values: Any
    ) -> PanelChange:
        if change_type in ("source_added", "source_removed"):
            # A column without a source of its own reads every live source, and one of the
            # removed source now reads them all: the expressions its indexes hold change.
            await queue_index_update(
                self.session, self.ctx.tenant_id, source.panel_id, only_if_indexed=True
            )
        return await changes.record(
            self.session,
            self.ctx,
            panel_id=source.panel_id,
            change_type=change_type,
            entity_type="datasource",
            entity_id=source.id,
            description=description,
            **values,
        )
