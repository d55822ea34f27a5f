"""Request ids, structured logs, security headers and metrics."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar.enums import ScopeType
from prometheus_client import Counter, Gauge, Histogram

from panels.platform.access_log import access_log

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from panels.settings import Settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNPROTECTED_PREFIXES = ("/docs", "/schema")
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_REVALIDATE = (b"cache-control", b"private, no-cache")
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
# The access log in the console format (development); JSON lines skip logging (see access_log).
console_access_log = structlog.get_logger("panels.access")


def request_id(scope: Scope) -> str:
    """The request's id: the client's when it is well formed, else a new one; made once."""
    state: dict[str, Any] = scope.setdefault("state", {})
    existing = state.get("request_id")
    if existing is not None:
        return str(existing)
    value = None
    for name, raw in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = raw.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                value = candidate
            break
    value = value or os.urandom(16).hex()  # as random as uuid4's hex, without the UUID
    state["request_id"] = value
    return value


def make_response_decorator(settings: Settings) -> Any:
    """A before-send hook: request id and security headers on every response, one access log."""
    hsts = settings.is_production

    async def decorate(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        # Appended as raw pairs: none of these is set anywhere else, and rescanning the
        # header list for each one is measurable on every request.
        headers = list(message.get("headers", ()))
        headers.append((b"x-request-id", request_id(scope).encode()))
        headers.extend(_SECURITY_HEADERS)
        path = scope.get("path", "")
        if not path.startswith(_UNPROTECTED_PREFIXES):
            headers.append(_CSP)
        if path.startswith("/api/") and not any(name == b"cache-control" for name, _ in headers):
            headers.append(_REVALIDATE)
        if hsts:
            headers.append(_HSTS)
        message["headers"] = headers
        _log_access(scope, message["status"])

    return decorate


def _log_access(scope: Scope, status: int) -> None:
    state = scope.get("state", {})
    started = state.get("started_at")
    if access_log.enabled:
        access_log.record(scope, request_id(scope), status, started)
        return
    principal = scope.get("user")
    console_access_log.info(
        "request",
        request_id=request_id(scope),
        method=scope.get("method"),
        path=scope.get("path"),
        route=scope.get("path_template"),
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        tenant=getattr(principal, "tenant_id", None),
        user=getattr(principal, "user_id", None),
    )


def _json_line(event: dict[str, Any], **_options: Any) -> str:
    """A log event as one JSON line: msgspec encodes it several times faster than the json
    module (one per request, for the access log); what it cannot encode is written as repr."""
    return msgspec.json.encode(event, enc_hook=repr).decode()


def configure_logging(settings: Settings) -> None:
    """structlog for our events and the standard library's (uvicorn, SQLAlchemy) alike."""
    # The lines carry none of a record's caller, thread or process fields, so the records skip
    # finding them (the logging HOWTO's "Optimization"): a stack walk and three lookups per
    # record, one record per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    level = getattr(logging, settings.log_level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # Dropping filtered events first keeps disabled levels nearly free on the hot path.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "sqlalchemy.engine", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    access_log.flush()
    access_log.stream = handler.stream
    access_log.enabled = settings.log_format == "json" and level <= logging.INFO


_NOT_MEASURED = ("/metrics", "/health", "/liveness")
_MEASURED_SCOPES = frozenset({ScopeType.HTTP, ScopeType.WEBSOCKET})
_APP_NAME = "panels"


class _Metrics:
    """Litestar's request metrics (same names and labels: method, path template, status code,
    app name), with each label combination's children looked up once per process: finding a
    child through `labels()` costs more than the increment itself."""

    def __init__(self) -> None:
        labels = ["method", "path", "status_code", "app_name"]
        self.total = Counter("panels_requests_total", "Total requests", labels)
        self.errors = Counter("panels_requests_error_total", "Total errors in requests", labels)
        self.duration = Histogram(
            "panels_request_duration_seconds", "Request duration, in seconds", labels
        )
        self.in_progress = Gauge(
            "panels_requests_in_progress",
            "Total requests currently in progress",
            labels,
            multiprocess_mode="livesum",
        )
        self._done: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._started: dict[tuple[str, str], Any] = {}

    def started(self, method: str, path: str) -> Any:
        gauge = self._started.get((method, path))
        if gauge is None:
            gauge = self._started[method, path] = self.in_progress.labels(
                method, path, 200, _APP_NAME
            )
        return gauge

    def done(self, method: str, path: str, status: int) -> tuple[Any, Any, Any]:
        key = (method, path, status)
        children = self._done.get(key)
        if children is None:
            children = self._done[key] = (
                self.total.labels(method, path, status, _APP_NAME),
                self.duration.labels(method, path, status, _APP_NAME),
                self.errors.labels(method, path, status, _APP_NAME) if status >= 500 else None,
            )
        return children


_metrics: _Metrics | None = None


def request_middleware(app: ASGIApp) -> ASGIApp:
    """Outermost route middleware: fixes the request id and start time, binds log context,
    and counts and times every request but the probes, by route template and status (what
    `/metrics` serves: Litestar's controller reads the same registry). One layer for both:
    each layer costs a call and a wrapped `send` on every request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        global _metrics  # one set of metrics per process, as the registry is
        kind = scope["type"]
        if kind == ScopeType.HTTP:
            scope.setdefault("state", {})["started_at"] = time.perf_counter()
            structlog.contextvars.bind_contextvars(request_id=request_id(scope))
        if kind not in _MEASURED_SCOPES or scope["path"].startswith(_NOT_MEASURED):
            await app(scope, receive, send)
            return
        if _metrics is None:
            _metrics = _Metrics()
        metrics = _metrics
        method = str(scope.get("method", kind))
        # The route template, never the raw path: the label values stay few.
        path = scope.get("path_template") or "(unrouted)"
        started = time.perf_counter()
        span = [200, 0.0]

        async def measured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span[0] = message["status"]
            elif message["type"] == "http.response.body":
                span[1] = time.perf_counter() - started
            await send(message)

        in_progress = metrics.started(method, path)
        in_progress.inc()
        try:
            await app(scope, receive, measured_send)
        finally:
            in_progress.dec()
            status = int(span[0])
            total, duration, errors = metrics.done(method, path, status)
            if errors is not None:
                errors.inc()
            total.inc()
            duration.observe(span[1])

    return middleware
