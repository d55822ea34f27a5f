"""Grant bookkeeping that other features do inside their own transactions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import Insert, String, bindparam, delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from panels.acl.entities import Grant
from panels.platform.tenancy import RequestContext

ResourceType = Literal["panel", "view"]


def creator_name(ctx: RequestContext) -> str:
    """How a grant names the caller: by email when the token has one, else by user id."""
    return ctx.principal.email or ctx.user_id


def grant_owner(
    session: AsyncSession, ctx: RequestContext, resource_type: ResourceType, resource_id: int
) -> None:
    """The creator of a panel or view owns it, from the same transaction on."""
    session.add(
        Grant(
            tenant_id=ctx.tenant_id,
            resource_type=resource_type,
            resource_id=resource_id,
            user_email=creator_name(ctx),
            permission="owner",
        )
    )


OWNER_GRANT_PARAMETERS = ("grant_tenant_id", "grant_user_email")


def insert_owner_grant(resource_type: ResourceType, created: CTE) -> Insert:
    """`grant_owner` for a resource that the same statement creates (a data-modifying CTE
    returning its `id`), so that both are written in one round trip. Its parameters (bind
    them with `owner_grant_parameters`) let the statement be built once."""
    names = ["tenant_id", "resource_type", "resource_id", "user_email", "permission"]
    tenant, owner = OWNER_GRANT_PARAMETERS
    values = select(
        bindparam(tenant, type_=String),
        literal(resource_type),
        created.c.id,
        bindparam(owner, type_=String),
        literal("owner"),
    )
    return insert(Grant).from_select(names, values, include_defaults=False)


def owner_grant_parameters(ctx: RequestContext) -> dict[str, str]:
    tenant, owner = OWNER_GRANT_PARAMETERS
    return {tenant: ctx.tenant_id, owner: creator_name(ctx)}


async def revoke_all(
    session: AsyncSession,
    ctx: RequestContext,
    resource_type: ResourceType,
    resource_ids: Iterable[int],
) -> None:
    """Remove every grant on these resources (they are being deleted)."""
    ids = list(resource_ids)
    if ids:
        await session.execute(
            delete(Grant).where(
                Grant.tenant_id == ctx.tenant_id,
                Grant.resource_type == resource_type,
                Grant.resource_id.in_(ids),
            )
        )
