from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from msgspec import UnsetType
from sqlalchemy import (
    Executable,
    Select,
    bindparam,
    insert,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.grants import insert_owner_grant, owner_grant_parameters, revoke_all
from panels.acl.permissions import (
    Access,
    access,
    access_of,
    caller_parameters,
    panel_access_bound,
    readable_panels,
    require,
    require_panel_creator,
)
from panels.change import recording as changes
from panels.change.entities import PanelChange
from panels.change.notifications import notify_owners, views_of_panel
from panels.panel.entities import Panel
from panels.panel.reads import readable_by_caller
from panels.panel.schemas import (
    PanelCreate,
    PanelRead,
    PanelUpdate,
    panel_snapshot,
)
from panels.platform.cache import Authorization, VersionedCache
from panels.platform.errors import NotFound
from panels.platform.http import JsonBody, check_if_match, encoded
from panels.platform.metadata import merge_metadata
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.view.entities import PanelView

_PANEL_ATTRIBUTES = [a for a in inspect(Panel).column_attrs if a.key != "id"]


@cache
def _create_statement() -> Select[tuple[int, int]]:
    """Panel, owner grant and change record in one statement, with bind parameters only:
    built once, as building it costs more than running it."""
    created = (
        insert(Panel)
        .values(
            {a.key: bindparam(f"panel_{a.key}", type_=a.columns[0].type) for a in _PANEL_ATTRIBUTES}
        )
        .returning(Panel.id)
        .cte("created_panel")
    )
    recorded = changes.insert_for_panel(created).cte("change_record")
    owner = insert_owner_grant("panel", created).cte("owner_grant")
    # One row each: joined on true, said so, rather than a cartesian product SQLAlchemy warns of.
    both = created.join(recorded, true())
    return select(created.c.id, recorded.c.id).select_from(both).add_cte(owner)


_KEYS = [a.key for a in inspect(Panel).column_attrs]
# What a PUT may change.
_CHANGING = ("name", "description", "meta", "cohort_rule", "updated_at")


@cache
def _locked_panel(admin: bool) -> Select[Any]:
    """The panel the caller may read, locked, with what `access_of` needs for a non-admin."""
    columns = [getattr(Panel, key) for key in _KEYS]
    if not admin:
        columns += panel_access_bound()
    panel = Panel.id == bindparam("panel_id")
    return select(*columns).where(*readable_by_caller(admin), panel).with_for_update(of=Panel)


@cache
def _update_statement(*, recorded: bool) -> Executable:
    """The UPDATE of what a PUT may change; `recorded`, with its change record (as
    `_create_statement` writes a new panel's)."""
    updated = (
        update(Panel)
        .where(Panel.tenant_id == bindparam("panel_tenant_id"), Panel.id == bindparam("panel_id"))
        .values(
            {key: bindparam(f"panel_{key}", type_=getattr(Panel, key).type) for key in _CHANGING}
        )
    )
    if not recorded:
        return updated
    changed = updated.returning(Panel.id).cte("updated_panel")
    record = changes.insert_for_panel(changed).cte("change_record")
    return select(record.c.id).select_from(changed.join(record, true()))


class PanelRepository(SQLAlchemyAsyncRepository[Panel]):
    model_type = Panel


class PanelService(SQLAlchemyAsyncRepositoryService[Panel, PanelRepository]):
    """Panels of the caller's tenant that the caller may read: every query starts there."""

    repository_type = PanelRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext, cache: VersionedCache) -> None:
        statement = tenant_statement(Panel, ctx).where(*readable_panels(ctx.principal))
        super().__init__(session=session, statement=statement, auto_refresh=False)
        self.session = session
        self.ctx = ctx
        self.cache = cache

    def read_authorization(self, panel_id: int) -> Authorization:
        """The check that guards shared cached reads about this panel (its columns, sources)."""
        return Authorization("read-panel", lambda: self.get_readable(panel_id))

    async def get_readable(self, panel_id: int, *, for_update: bool = False) -> Panel:
        """The panel if the caller may read it; 404 alike when it is missing or hidden."""
        panel = await self.get_one_or_none(Panel.id == panel_id, with_for_update=for_update)
        if panel is None:
            raise NotFound("Panel not found")
        return panel

    async def require_access(
        self, panel_id: int, needed: Access, action: str, *, for_update: bool = False
    ) -> Panel:
        """The panel, if the caller may see it (else 404) and do `action` to it (else 403)."""
        panel = await self.get_readable(panel_id, for_update=for_update)
        require(await access(self.session, self.ctx.principal, panel), needed, action)
        return panel

    async def create_panel(self, data: PanelCreate) -> Panel:
        """The panel, its creator's owner grant and its change record, in one statement (a
        data-modifying CTE): one round trip where ORM flushes took three."""
        require_panel_creator(self.ctx.principal)
        now = datetime.now(UTC)
        panel = Panel(
            tenant_id=self.ctx.tenant_id,
            user_id=self.ctx.user_id,
            name=data.name,
            description=data.description,
            cohort_rule=msgspec.to_builtins(data.cohort_rule),
            meta=data.metadata,
            created_at=now,
            updated_at=now,
        )
        change = changes.new_record(
            self.ctx,
            panel_id=0,  # set from the statement's result below
            change_type="panel_created",
            entity_type="panel",
            entity_id=0,
            description=f'Panel "{panel.name}" created',
            new=panel_snapshot(panel),
        )
        parameters = {
            **{f"panel_{a.key}": getattr(panel, a.key) for a in _PANEL_ATTRIBUTES},
            **owner_grant_parameters(self.ctx),
            **changes.record_parameters(change),
        }
        result = await self.session.execute(_create_statement(), parameters)
        panel.id, change.id = tuple(result.one())
        change.panel_id = change.entity_id = panel.id
        changes.recorded(self.session, change)
        return panel

    async def update_panel(self, panel_id: int, data: PanelUpdate, if_match: str | None) -> Panel:
        """The change in one statement with its record (two round trips with the read that
        locks the panel and checks the caller's right); a new cohort rule also warns the owners
        of the panel's views, through the session."""
        panel, granted = await self._locked(panel_id)
        require(granted, Access.EDITOR, "change this panel")
        check_if_match(if_match, self.encode(panel).etag)
        before = panel_snapshot(panel)
        if not isinstance(data.name, UnsetType):
            panel.name = data.name
        if not isinstance(data.description, UnsetType):
            panel.description = data.description
        if not isinstance(data.metadata, UnsetType):
            panel.meta = merge_metadata(panel.meta, data.metadata)
        if not isinstance(data.cohort_rule, UnsetType):
            panel.cohort_rule = msgspec.to_builtins(data.cohort_rule)
        after = panel_snapshot(panel)
        if after == before:
            return panel
        panel.updated_at = datetime.now(UTC)
        values = {
            "panel_id": panel.id,
            "panel_tenant_id": panel.tenant_id,
            **{f"panel_{key}": getattr(panel, key) for key in _CHANGING},
        }
        fields = self._fields_record(panel, before, after)
        if before["cohortRule"] != after["cohortRule"] or fields is None:
            await self.session.execute(_update_statement(recorded=False), values)
            await self._record_cohort_change(panel, before, after)
            if fields is not None:
                self.session.add(fields)
                changes.recorded(self.session, fields)
            return panel
        parameters = {**values, **changes.record_parameters(fields)}
        result = await self.session.execute(_update_statement(recorded=True), parameters)
        fields.id = result.scalar_one()
        fields.panel_id = fields.entity_id = panel.id
        changes.recorded(self.session, fields)
        return panel

    async def _locked(self, panel_id: int) -> tuple[Panel, Access]:
        """The panel if the caller may read it (else 404), locked for a change, as an object
        outside the session (the change is written by statement), and the caller's access."""
        principal = self.ctx.principal
        parameters = {**caller_parameters(principal), "panel_id": panel_id}
        found = await self.session.execute(_locked_panel(principal.is_admin), parameters)
        row = found.first()
        if row is None:
            raise NotFound("Panel not found")
        panel = Panel(**dict(zip(_KEYS, row, strict=False)))
        if principal.is_admin:
            return panel, Access.OWNER
        level, published = row[len(_KEYS) :]
        return panel, access_of(level, published)

    async def delete_panel(self, panel_id: int, if_match: str | None) -> None:
        panel = await self.require_access(
            panel_id, Access.OWNER, "delete this panel", for_update=True
        )
        check_if_match(if_match, self.encode(panel).etag)
        snapshot = panel_snapshot(panel)
        views = select(PanelView.id).where(
            PanelView.tenant_id == self.ctx.tenant_id, PanelView.panel_id == panel_id
        )
        await revoke_all(self.session, self.ctx, "view", await self.session.scalars(views))
        await revoke_all(self.session, self.ctx, "panel", [panel_id])
        await self.session.delete(panel)
        await self.session.flush()
        await changes.record(
            self.session,
            self.ctx,
            panel_id=panel_id,
            change_type="panel_deleted",
            entity_type="panel",
            entity_id=panel_id,
            description=f'Panel "{snapshot["name"]}" deleted',
            old=snapshot,
        )

    @staticmethod
    def encode(panel: Panel) -> JsonBody:
        return encoded(PanelRead.from_entity(panel))

    async def _record_cohort_change(
        self, panel: Panel, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        if before["cohortRule"] == after["cohortRule"]:
            return
        session = self.session
        change = await changes.record(
            session,
            self.ctx,
            panel_id=panel.id,
            change_type="cohort_changed",
            entity_type="panel",
            entity_id=panel.id,
            description=f'Cohort rule of panel "{panel.name}" changed',
            old={"cohortRule": before["cohortRule"]},
            new={"cohortRule": after["cohortRule"]},
        )
        views = await views_of_panel(session, self.ctx, panel.id)
        message = f'the cohort rule of panel "{panel.name}" changed'
        await notify_owners(session, self.ctx, change, views, "warning", message)

    def _fields_record(
        self, panel: Panel, before: dict[str, Any], after: dict[str, Any]
    ) -> PanelChange | None:
        """The record of the fields other than the cohort rule that changed, if any did."""
        old_fields = {k: v for k, v in before.items() if k != "cohortRule"}
        new_fields = {k: v for k, v in after.items() if k != "cohortRule"}
        if old_fields == new_fields:
            return None
        changed = [k for k in new_fields if old_fields[k] != new_fields[k]]
        return changes.new_record(
            self.ctx,
            panel_id=panel.id,
            change_type="panel_updated",
            entity_type="panel",
            entity_id=panel.id,
            description=f'Panel "{panel.name}" updated: {", ".join(changed)}',
            old=old_fields,
            new=new_fields,
        )
