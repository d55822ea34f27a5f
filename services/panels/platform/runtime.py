"""What one app instance holds: settings, database configs, Redis, cache, token verifier.

Built by `create_app()`, stored on `app.state.runtime`; no module-level engines or clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Request
from litestar.channels import ChannelsPlugin
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.auth import TokenVerifier
from panels.platform.cache import CACHE, CircuitBreaker, VersionedCache
from panels.platform.crypto import SecretBox
from panels.platform.realtime import ANNOUNCER, Announcer
from panels.platform.tenancy import RequestContext, tenant_session
from panels.settings import Settings


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: SQLAlchemyAsyncConfig
    read_db: SQLAlchemyAsyncConfig | None
    redis: Redis
    breaker: CircuitBreaker
    cache: VersionedCache
    verifier: TokenVerifier
    secrets: SecretBox
    announcer: Announcer
    channels: ChannelsPlugin


def provide_tenant_session(request: Request[Any, Any, Any], ctx: RequestContext) -> AsyncSession:
    """The request's tenant-bound session; GETs read from the replica when one is set."""
    runtime: Runtime = request.app.state.runtime
    config = runtime.read_db if request.method == "GET" and runtime.read_db else runtime.db
    session = tenant_session(request, config, ctx)
    session.info[ANNOUNCER] = runtime.announcer
    session.info[CACHE] = runtime.cache
    return session
