"""What one app instance holds: settings, database configs, Redis, cache, token verifier.

Built by `create_app()`, stored on `app.state.runtime`; no module-level engines or clients.

Which database a request reads: the primary, except for the GET routes marked
`opt={"replica": True}` when `DATABASE_READ_URL` is set. Those never fill the cache (every
cached read is on the primary, so a stale row can never outlive the version bump that follows
its write), and a replica that lags only delays what they show, except to the caller who just
wrote: after each committed write a Redis marker per tenant and user lives for
`READ_YOUR_WRITES_SECONDS`, and while it does, or while Redis cannot say, that user's marked
reads go to the primary too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Request
from litestar.channels import ChannelsPlugin
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.auth import IssuedCredentials, TokenVerifier
from panels.platform.cache import CACHE, CircuitBreaker, VersionedCache
from panels.platform.crypto import SecretBox
from panels.platform.db import after_commit, bind_tenant
from panels.platform.realtime import ANNOUNCER, Announcer
from panels.platform.tenancy import RequestContext, check_claimed_tenant, tenant_session
from panels.settings import Settings

# Longer than a healthy replica's lag; a lagging one is seen stale only by the other users.
READ_YOUR_WRITES_SECONDS = 5
_ON_REPLICA = "panels_on_replica"
_MARKS_WRITES = "panels_marks_writes"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: SQLAlchemyAsyncConfig
    read_db: SQLAlchemyAsyncConfig | None
    redis: Redis
    hot_redis: Redis  # the cache's and the rate limiter's (see `hot_path_redis_client`)
    breaker: CircuitBreaker
    cache: VersionedCache
    verifier: TokenVerifier
    secrets: SecretBox
    announcer: Announcer
    channels: ChannelsPlugin
    credentials: IssuedCredentials | None = None
    """API keys and built-in sessions, when the app has the identity feature."""


def recent_write_key(tenant_id: str, user_id: str) -> str:
    return f"panels:{tenant_id}:wrote:{user_id}"


async def choose_read_database(request: Request[Any, Any, Any]) -> None:
    """Before a handler runs: send it to the replica when that is safe (see module docstring)."""
    runtime: Runtime = request.app.state.runtime
    if (
        runtime.read_db is None
        or request.method != "GET"
        or not request.route_handler.opt.get("replica")
        or runtime.breaker.is_open
    ):
        return
    try:
        recently_wrote = await runtime.redis.exists(
            recent_write_key(request.user.tenant_id, request.user.user_id)
        )
    except Exception as exc:
        runtime.breaker.trip(exc)
        return
    if not recently_wrote:
        request.scope["state"][_ON_REPLICA] = True


async def before_api_request(request: Request[Any, Any, Any]) -> None:
    """The API router's one `before_request` hook (a hook set on a lower layer replaces it
    rather than adding to it): the body's tenant claim, then where the request reads."""
    await check_claimed_tenant(request)
    await choose_read_database(request)


def provide_tenant_session(request: Request[Any, Any, Any], ctx: RequestContext) -> AsyncSession:
    """The request's tenant-bound session, on the database `choose_read_database` chose."""
    runtime: Runtime = request.app.state.runtime
    replica = runtime.read_db if request.scope["state"].get(_ON_REPLICA) else None
    session = with_effects(tenant_session(request, replica or runtime.db, ctx), runtime)
    if (
        runtime.read_db is not None
        and request.method not in _READ_METHODS
        and not session.info.get(_MARKS_WRITES)
    ):
        session.info[_MARKS_WRITES] = True
        after_commit(session, lambda: _mark_recent_write(runtime, ctx))
    return session


async def _mark_recent_write(runtime: Runtime, ctx: RequestContext) -> None:
    try:
        await runtime.redis.set(
            recent_write_key(ctx.tenant_id, ctx.user_id), 1, ex=READ_YOUR_WRITES_SECONDS
        )
    except Exception as exc:
        # With the breaker open, every marked read goes to the primary for its cooldown.
        runtime.breaker.trip(exc)


def with_effects(session: AsyncSession, runtime: Runtime) -> AsyncSession:
    """Give a session what its after-commit effects use: the announcer and the cache."""
    session.info[ANNOUNCER] = runtime.announcer
    session.info[CACHE] = runtime.cache
    return session


@asynccontextmanager
async def background_session(runtime: Runtime, tenant_id: str) -> AsyncIterator[AsyncSession]:
    """A session bound to one tenant outside any request (jobs), with the same after-commit
    effects as a request's."""
    async with runtime.db.get_session() as session:
        yield with_effects(bind_tenant(session, tenant_id), runtime)
