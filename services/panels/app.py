"""`create_app()`: plugins, routers, middleware and stores. No logic lives here."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.channels import ChannelsPlugin
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from redis.asyncio import Redis

from panels import __version__
from panels.acl.routes import GrantController
from panels.change.routes import ChangeController, NotificationController
from panels.change.stream import change_stream
from panels.column.routes import ColumnController
from panels.datasource.routes import DataSourceController, PanelDataSourceController
from panels.identity.keys import access_token_key
from panels.identity.members import StytchMembers
from panels.identity.routes import (
    ApiKeyController,
    AuditController,
    AuthController,
    MemberController,
    SessionController,
    UserController,
)
from panels.identity.verification import Credentials
from panels.panel.routes import PanelController
from panels.platform.access_log import access_log
from panels.platform.auth import JwtAuthenticationMiddleware, TokenVerifier
from panels.platform.cache import (
    CircuitBreaker,
    VersionedCache,
    hot_path_redis_client,
    redis_client,
)
from panels.platform.crypto import SecretBox
from panels.platform.db import database_config, transaction_middleware
from panels.platform.errors import exception_handlers
from panels.platform.guards import request_shape_middleware
from panels.platform.health import routes as health_routes
from panels.platform.heap import settle_heap
from panels.platform.idempotency import idempotency_middleware
from panels.platform.observability import (
    configure_logging,
    make_response_decorator,
    request_middleware,
)
from panels.platform.openapi import BEARER, finish_schema, openapi_config
from panels.platform.ratelimit import RateLimiter, rate_limit_middleware
from panels.platform.realtime import Announcer, ResilientPubSubBackend
from panels.platform.runtime import Runtime, before_api_request
from panels.platform.tenancy import provide_request_context
from panels.records.routes import RecordController
from panels.rows.routes import RowController
from panels.settings import Settings, load_settings
from panels.sync.routes import DataSourceSyncController, PanelSyncController, SyncJobController
from panels.sync.worker import sync_worker
from panels.view.routes import ViewController


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    settings.check_ready_to_serve()
    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError(
            "DATABASE_URL and REDIS_URL must be set; `panels serve` starts embedded ones"
        )
    configure_logging(settings)
    db = database_config(settings.database_url, settings.db_pool_size)
    read_db = (
        database_config(settings.database_read_url, settings.db_pool_size, read_only=True)
        if settings.database_read_url
        else None
    )
    redis = redis_client(settings.redis_url)
    hot_redis = hot_path_redis_client(settings.redis_url)
    # Pub/sub blocks on reads by design, so it gets a client without the cache's timeouts.
    pubsub_redis = Redis.from_url(
        settings.redis_url, health_check_interval=30, socket_connect_timeout=1
    )
    channels = ChannelsPlugin(
        backend=ResilientPubSubBackend(redis=pubsub_redis, key_prefix="panels:channels"),
        arbitrary_channels_allowed=True,
        subscriber_max_backlog=1000,
        subscriber_backlog_strategy="dropleft",
    )
    breaker = CircuitBreaker()
    runtime = Runtime(
        settings=settings,
        db=db,
        read_db=read_db,
        redis=redis,
        hot_redis=hot_redis,
        breaker=breaker,
        cache=VersionedCache(hot_redis, settings.cache_ttl_seconds, breaker),
        verifier=TokenVerifier(
            settings.jwt,
            builtin_key=access_token_key(settings) if settings.identity.accepts_builtin else None,
            accept_external=settings.identity.accepts_external,
        ),
        secrets=SecretBox(settings.secret_keys),
        announcer=Announcer(),
        channels=channels,
    )
    credentials = runtime.credentials = Credentials(runtime)
    rate_limiter = (
        RateLimiter(hot_redis, breaker, settings.rate_limit_per_minute)
        if settings.rate_limit_per_minute > 0
        else None
    )
    api_middleware: list[Any] = [DefineMiddleware(JwtAuthenticationMiddleware)]
    rate_limit = [rate_limit_middleware] if settings.rate_limit_per_minute > 0 else []
    api_middleware += [*rate_limit, request_shape_middleware, idempotency_middleware]
    api = Router(
        path="/",
        route_handlers=[
            PanelController,
            PanelDataSourceController,
            DataSourceController,
            RecordController,
            ColumnController,
            ViewController,
            RowController,
            ChangeController,
            NotificationController,
            GrantController,
            PanelSyncController,
            DataSourceSyncController,
            SyncJobController,
            SessionController,
            UserController,
            ApiKeyController,
            AuditController,
            MemberController,
        ],
        middleware=api_middleware,
        before_request=before_api_request,
        dependencies={"ctx": Provide(provide_request_context, sync_to_thread=False)},
        security=[{BEARER: []}],
    )

    # Login and refresh take no bearer token: a router of their own, without authentication
    # (the per-address rate limit still applies).
    unauthenticated_api = Router(
        path="/",
        route_handlers=[AuthController],
        middleware=[*rate_limit, request_shape_middleware],
        security=[],
    )

    worker = sync_worker(runtime) if settings.in_process_worker else None

    async def start_worker() -> None:
        credentials.start()
        if worker is not None:
            worker.start()

    async def close_services() -> None:
        if worker is not None:
            await worker.close()
        await credentials.stop()
        await runtime.cache.close()
        if rate_limiter is not None:
            await rate_limiter.close()
        await redis.aclose()
        await hot_redis.aclose()
        await pubsub_redis.aclose()

    app = Litestar(
        route_handlers=[api, unauthenticated_api, change_stream, *health_routes],
        plugins=[SQLAlchemyPlugin(config=[c for c in (db, read_db) if c is not None]), channels],
        middleware=[
            request_middleware,
            transaction_middleware(db, read_db),
        ],
        before_send=[make_response_decorator(settings)],
        exception_handlers=exception_handlers,
        openapi_config=openapi_config(__version__),
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
                "X-API-Key",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "X-Total-Count",
                "X-Request-ID",
                "x-cache",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
            ],
        )
        if settings.cors_origins
        else None,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        request_max_body_size=settings.max_body_bytes,
        on_startup=[start_worker],
        on_shutdown=[close_services, access_log.flush],
        logging_config=None,
        debug=False,
    )
    app.state.runtime = runtime
    app.state.stytch_members = StytchMembers(settings.identity)
    if rate_limiter is not None:
        app.state.rate_limiter = rate_limiter
    finish_schema(app.openapi_schema)
    return app


def create_served_app() -> Litestar:
    """`create_app()` for a server worker (`panels serve`): the app, with the heap it built
    settled for a long life (see `panels.platform.heap`)."""
    app = create_app()
    settle_heap()
    return app
