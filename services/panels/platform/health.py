"""Liveness, readiness, metrics and the interactive docs: the routes outside /api."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Literal

from litestar import MediaType, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy import text

from panels import __version__
from panels.platform.runtime import Runtime
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp

_STARTED = time.monotonic()
CHECK_TIMEOUT_SECONDS = 2.0


class Health(CamelStruct):
    status: Literal["ok"]
    version: str
    uptime: float
    timestamp: Timestamp


class Check(CamelStruct):
    status: Literal["ok", "error"]
    latency_ms: float
    message: str | None = None


class Checks(CamelStruct):
    database: Check
    redis: Check


class Readiness(CamelStruct):
    status: Literal["ok", "degraded", "error"]
    checks: Checks


@get(["/health", "/liveness"], tags=["Health"], summary="Liveness")
async def health() -> Health:
    return Health(
        status="ok",
        version=__version__,
        uptime=round(time.monotonic() - _STARTED, 3),
        timestamp=iso_timestamp(datetime.now(UTC)),
    )


@get(
    ["/ready", "/healthz"],
    tags=["Health"],
    summary="Readiness",
    description="503 with `error` when the database is unreachable; `degraded` when only Redis is.",
    responses={
        503: ResponseSpec(
            Readiness, description="The database is unreachable.", generate_examples=False
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[Readiness]:
    runtime: Runtime = request.app.state.runtime
    database, redis = await asyncio.gather(_check_database(runtime), _check_redis(runtime))
    if database.status == "error":
        status: Literal["ok", "degraded", "error"] = "error"
    else:
        status = "degraded" if redis.status == "error" else "ok"
    return Response(
        Readiness(status=status, checks=Checks(database=database, redis=redis)),
        status_code=503 if status == "error" else 200,
    )


async def _timed(probe: Any) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return Check(status="error", latency_ms=_since(started), message=reason)
    return Check(status="ok", latency_ms=_since(started))


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _check_database(runtime: Runtime) -> Check:
    async def probe() -> None:
        async with runtime.db.get_engine().connect() as connection:
            await connection.execute(text("SELECT 1"))

    return await _timed(probe)


async def _check_redis(runtime: Runtime) -> Check:
    return await _timed(runtime.redis.ping)


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request[Any, Any, Any]) -> bytes:
    """The page embeds the whole schema: rendered once per app, not per request."""
    state = request.app.state
    page: bytes | None = state.get("docs_page")
    if page is None:
        page = state.docs_page = ScalarRenderPlugin().render(
            request, request.app.openapi_schema.to_schema()
        )
    return page


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


routes: list[Any] = [health, ready, docs, MetricsController]
