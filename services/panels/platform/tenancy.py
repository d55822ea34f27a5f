"""Who is asking and in which tenant: the request context and the tenant-bound session.

This is the one place the tenant filter is applied: services receive a `RequestContext` and a
session bound to its tenant, and build every statement from `tenant_statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import Annotated, Any

import msgspec
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Request
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.platform.errors import Forbidden
from panels.platform.observability import request_id
from panels.platform.ratelimit import RateCount, pending_count
from panels.platform.schemas import CamelStruct


@dataclass(frozen=True, slots=True)
class RequestContext:
    principal: Principal
    request_id: str
    rate_count: RateCount | None = None
    """The request's rate-limit count, when the cache's first read is to take it."""

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
    return statement_in_tenant(model, ctx.tenant_id)  # type: ignore[arg-type]  # classes hash


@lru_cache(maxsize=4096)
def statement_in_tenant(model: type[Any], tenant_id: str) -> Select[Any]:
    """`tenant_statement` outside a request (jobs): `SELECT model WHERE tenant_id = …`."""
    # Statements are immutable, so one per (model, tenant) is shared by every request; building
    # it costs more than the rest of a cached read.
    return select(model).where(model.tenant_id == tenant_id)


class RequestBody(CamelStruct, kw_only=True):
    """Base of every request body: it documents the `tenantId` older clients send, which
    `check_claimed_tenant` compares with the token's tenant before any route reads the body."""

    tenant_id: Annotated[
        str | None,
        msgspec.Meta(
            description="Accepted from older clients; any value but the token's tenant is a 403."
        ),
    ] = None


class _ClaimedTenant(msgspec.Struct):
    tenant_id: str | None = msgspec.field(default=None, name="tenantId")


_CLAIM_DECODER = msgspec.json.Decoder(_ClaimedTenant)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def check_claimed_tenant(request: Request[Principal, Any, Any]) -> None:
    """403 for a JSON body whose `tenantId` is not the token's tenant, on every route.

    Runs as the API router's `before_request` hook: after authentication, before the route
    parses its body (which Litestar then reads from the same cached bytes).
    """
    if request.method not in _BODY_METHODS:
        return
    body = await request.body()
    # Only bodies that could name the key are decoded; an escaped key needs a backslash.
    if b'"tenantId"' not in body and b"\\" not in body:
        return
    try:
        claimed = _CLAIM_DECODER.decode(body).tenant_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # not an object with a string tenantId: the route's own parsing answers
    if claimed is not None and claimed != request.user.tenant_id:
        raise Forbidden("Access denied to tenant")


def provide_request_context(request: Request[Principal, Any, Any]) -> RequestContext:
    scope = request.scope
    return RequestContext(
        principal=request.user,
        request_id=request_id(scope),
        rate_count=pending_count(scope["state"]),
    )


def tenant_session(
    request: Request[Any, Any, Any], config: SQLAlchemyAsyncConfig, ctx: RequestContext
) -> AsyncSession:
    """The request's session (shared with everything else in the request), tenant-bound."""
    session = config.provide_session(request.app.state, request.scope)
    return bind_tenant(session, ctx.tenant_id)
