"""Who is asking and in which tenant: the request context and the tenant-bound session.

This is the one place the tenant filter is applied: services receive a `RequestContext` and a
session bound to its tenant, and build every statement from `tenant_statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Request
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.platform.errors import Forbidden
from panels.platform.observability import request_id


@dataclass(frozen=True, slots=True)
class RequestContext:
    principal: Principal
    request_id: str

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def cache_identity(self) -> str:
        """Cached reads are kept per identity: what a caller may see depends on who they are."""
        p = self.principal
        return blake2b(f"{p.role}|{p.user_id}|{p.email}".encode(), digest_size=8).hexdigest()


def tenant_statement(model: type[Any], ctx: RequestContext) -> Select[Any]:
    """`SELECT model WHERE tenant_id = caller's tenant`: the base of every service query."""
    return _tenant_statement(model, ctx.tenant_id)  # type: ignore[arg-type]  # classes hash


@lru_cache(maxsize=4096)
def _tenant_statement(model: type[Any], tenant_id: str) -> Select[Any]:
    # Statements are immutable, so one per (model, tenant) is shared by every request; building
    # it costs more than the rest of a cached read.
    return select(model).where(model.tenant_id == tenant_id)


def ensure_same_tenant(ctx: RequestContext, claimed: str | None) -> None:
    """Older clients send `tenantId`; accept it only when it is the token's tenant."""
    if claimed is not None and claimed != ctx.tenant_id:
        raise Forbidden("Access denied to tenant")


def provide_request_context(request: Request[Principal, Any, Any]) -> RequestContext:
    return RequestContext(principal=request.user, request_id=request_id(request.scope))


def tenant_session(
    request: Request[Any, Any, Any], config: SQLAlchemyAsyncConfig, ctx: RequestContext
) -> AsyncSession:
    """The request's session (shared with everything else in the request), tenant-bound."""
    session = config.provide_session(request.app.state, request.scope)
    return bind_tenant(session, ctx.tenant_id)
