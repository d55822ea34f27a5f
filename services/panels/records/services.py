"""Pushing records to a data source: who may, which source, and the write itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import Access
from panels.datasource.entities import DataSource
from panels.panel.services import PanelService
from panels.platform.errors import NotFound
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext
from panels.records.formats import parse_records
from panels.records.writer import RecordCounts, WriteMode, key_field_of, write_records


class RecordService:
    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        self.session = session
        self.ctx = ctx
        self.panels = PanelService(session, ctx, runtime.cache)

    async def push(
        self,
        panel_id: int,
        source_id: int,
        media_type: str,
        body: AsyncIterator[bytes],
        mode: WriteMode,
    ) -> RecordCounts:
        """Write the body's records to the source, all of them or (on any error) none.

        Any type of source takes records; a later full sync of an `api`, `database` or `file`
        source replaces them with what the sync reads.
        """
        await self.panels.require_access(panel_id, Access.EDITOR, "push records to this panel")
        config = await self.session.scalar(
            select(DataSource.config).where(
                DataSource.tenant_id == self.ctx.tenant_id,
                DataSource.panel_id == panel_id,
                DataSource.id == source_id,
            )
        )
        if config is None:
            raise NotFound("Data source not found")
        batches, position = parse_records(media_type, body)
        return await write_records(
            self.session,
            tenant_id=self.ctx.tenant_id,
            panel_id=panel_id,
            source_id=source_id,
            key_field=key_field_of(config),
            batches=batches,
            mode=mode,
            position=position,
        )
