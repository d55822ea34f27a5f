from __future__ import annotations

from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.entities import EVERYONE, Grant
from panels.acl.permissions import Access, access, identities, require_grant_right
from panels.acl.schemas import (
    GrantCreate,
    GrantOne,
    GrantRead,
    GrantUpdate,
    PublicShare,
    ResourceType,
    normalise_user,
)
from panels.change import recording as changes
from panels.panel.entities import Panel
from panels.panel.services import PanelService
from panels.platform.errors import Conflict, Forbidden, NotFound
from panels.platform.http import JsonBody, check_if_match, encoded
from panels.platform.runtime import Runtime
from panels.platform.tenancy import RequestContext, tenant_statement
from panels.view.entities import PanelView
from panels.view.services import ViewService


class GrantRepository(SQLAlchemyAsyncRepository[Grant]):
    model_type = Grant


class GrantService(SQLAlchemyAsyncRepositoryService[Grant, GrantRepository]):
    """Grants on panels and views. Anyone who may read a resource sees its grants; owners (and
    admins) change any of them, editors the viewer and editor grants; a resource never loses
    its last owner."""

    repository_type = GrantRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext, runtime: Runtime) -> None:
        super().__init__(
            session=session, statement=tenant_statement(Grant, ctx), auto_refresh=False
        )
        self.session = session
        self.ctx = ctx
        self.runtime = runtime

    async def grants_on(self, resource_type: ResourceType, resource_id: int) -> list[Grant]:
        await self._resource(resource_type, resource_id)
        return await self._grants(resource_type, resource_id)

    async def grants_of_user(self, user: str, resource_type: ResourceType | None) -> list[Grant]:
        user = normalise_user(user)
        own = [name for name in identities(self.ctx.principal) if name != EVERYONE]
        if not self.ctx.principal.is_admin and user not in own:
            raise Forbidden("Only admins may list another user's grants")
        # Asking for oneself by either name finds the grants made to the other name too; the
        # grants to everyone apply to every user, so they are part of anyone's list.
        names = [*(own if user in own else [user]), EVERYONE]
        conditions: list[ColumnElement[bool]] = [Grant.user_email.in_(names)]
        if resource_type is not None:
            conditions.append(Grant.resource_type == resource_type)
        return list(await self.get_many(*conditions, order_by=[("id", False)]))

    async def add_grant(
        self, resource_type: ResourceType, resource_id: int, data: GrantCreate
    ) -> Grant:
        resource, _ = await self._manageable(resource_type, resource_id, data.permission)
        user = normalise_user(data.user_email)
        if await self._find(resource_type, resource_id, user) is not None:
            raise Conflict(
                f'"{user}" already has a grant on this {resource_type}; change it with PUT'
            )
        grant = await self.create(
            Grant(
                tenant_id=self.ctx.tenant_id,
                resource_type=resource_type,
                resource_id=resource_id,
                user_email=user,
                permission=data.permission,
            )
        )
        await self._record(
            resource, grant, f"{user} may now act as {grant.permission}", new=_snapshot(grant)
        )
        return grant

    async def change_grant(
        self,
        resource_type: ResourceType,
        resource_id: int,
        user: str,
        data: GrantUpdate,
        if_match: str | None = None,
    ) -> Grant:
        resource, grant = await self._manageable_grant(
            resource_type, resource_id, user, data.permission
        )
        check_if_match(if_match, self.encode(grant).etag)
        if grant.permission == data.permission:
            return grant
        if grant.permission == "owner":
            await self._keep_an_owner(resource_type, resource_id, grant)
        before = _snapshot(grant)
        grant.permission = data.permission
        grant = await self.update(grant)
        await self._record(
            resource,
            grant,
            f"{grant.user_email} is now {grant.permission}",
            old=before,
            new=_snapshot(grant),
        )
        return grant

    async def remove_grant(
        self, resource_type: ResourceType, resource_id: int, user: str, if_match: str | None
    ) -> None:
        resource, grant = await self._manageable_grant(resource_type, resource_id, user)
        check_if_match(if_match, self.encode(grant).etag)
        if grant.permission == "owner":
            await self._keep_an_owner(resource_type, resource_id, grant)
        before = _snapshot(grant)
        await self.session.delete(grant)
        await self.session.flush()
        await self._record(resource, grant, f"{grant.user_email} no longer has a grant", old=before)

    async def share_with_everyone(
        self, resource_type: ResourceType, resource_id: int, data: PublicShare
    ) -> tuple[Grant, bool]:
        """The `_all` grant, created (True) or changed (False)."""
        existing = await self._find(resource_type, resource_id, EVERYONE)
        if existing is None:
            grant = await self.add_grant(
                resource_type,
                resource_id,
                GrantCreate(user_email=EVERYONE, permission=data.permission),
            )
            return grant, True
        return await self.change_grant(
            resource_type, resource_id, EVERYONE, GrantUpdate(permission=data.permission)
        ), False

    @staticmethod
    def encode(grant: Grant) -> JsonBody:
        """A grant as its `POST` and `PUT` return it: `If-Match` compares this one's ETag."""
        return encoded(GrantOne(acl=GrantRead.from_entity(grant)))

    async def _resource(self, resource_type: ResourceType, resource_id: int) -> Panel | PanelView:
        if resource_type == "panel":
            return await PanelService(self.session, self.ctx, self.runtime.cache).get_readable(
                resource_id
            )
        return await ViewService(self.session, self.ctx, self.runtime).get_readable(resource_id)

    async def _manageable(
        self, resource_type: ResourceType, resource_id: int, *permissions: str
    ) -> tuple[Panel | PanelView, Access]:
        """The resource and the caller's access to it, if the caller may see it (else 404) and
        manage grants with these permissions on it (else 403), checked before any conflict."""
        resource = await self._resource(resource_type, resource_id)
        granted = await access(self.session, self.ctx.principal, resource)
        require_grant_right(granted, *permissions)
        return resource, granted

    async def _manageable_grant(
        self, resource_type: ResourceType, resource_id: int, user: str, *new_permission: str
    ) -> tuple[Panel | PanelView, Grant]:
        """The resource and one of its grants, if the caller may manage that grant: its current
        permission and the new one both count (an editor cannot touch an owner grant)."""
        resource, granted = await self._manageable(resource_type, resource_id, *new_permission)
        grant = await self._existing(resource_type, resource_id, normalise_user(user))
        require_grant_right(granted, grant.permission)
        return resource, grant

    async def _grants(self, resource_type: ResourceType, resource_id: int) -> list[Grant]:
        return list(
            await self.get_many(
                Grant.resource_type == resource_type,
                Grant.resource_id == resource_id,
                order_by=[("id", False)],
            )
        )

    async def _find(
        self, resource_type: ResourceType, resource_id: int, user: str, *, for_update: bool = False
    ) -> Grant | None:
        return await self.get_one_or_none(
            Grant.resource_type == resource_type,
            Grant.resource_id == resource_id,
            Grant.user_email == user,
            with_for_update=for_update,
        )

    async def _existing(self, resource_type: ResourceType, resource_id: int, user: str) -> Grant:
        """The grant, locked: its `If-Match` check holds until the change commits."""
        grant = await self._find(resource_type, resource_id, user, for_update=True)
        if grant is None:
            raise NotFound("Grant not found")
        return grant

    async def _keep_an_owner(
        self, resource_type: ResourceType, resource_id: int, leaving: Grant
    ) -> None:
        owners = await self.count(
            Grant.resource_type == resource_type,
            Grant.resource_id == resource_id,
            Grant.permission == "owner",
            Grant.id != leaving.id,
        )
        if owners == 0:
            raise Conflict(f"This {resource_type} would have no owner left")

    async def _record(
        self, resource: Panel | PanelView, grant: Grant, description: str, **values: Any
    ) -> None:
        is_panel = isinstance(resource, Panel)
        panel_id = resource.panel_id if isinstance(resource, PanelView) else resource.id
        await changes.record(
            self.session,
            self.ctx,
            panel_id=panel_id,
            change_type="panel_updated" if is_panel else "view_updated",
            entity_type="grant",
            entity_id=grant.id,
            description=f"Sharing of {grant.resource_type} {grant.resource_id}: {description}",
            view_id=None if is_panel else resource.id,
            **values,
        )


def _snapshot(grant: Grant) -> dict[str, Any]:
    return {
        "resourceType": grant.resource_type,
        "resourceId": grant.resource_id,
        "userEmail": grant.user_email,
        "permission": grant.permission,
    }
