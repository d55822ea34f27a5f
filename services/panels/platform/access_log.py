"""The access log: one JSON line per request, written in batches.

The line is the one structlog's JSON renderer made for the `panels.access` event (same keys, same
order, same values), but built directly from the request and encoded by msgspec. Going through
the logging machinery for it (a `LogRecord`, structlog's processor chain, a handler lock and a
write per request) cost about a sixth of a cached read's CPU. Lines wait at most
`FLUSH_SECONDS` and are written together; `flush()` runs at shutdown and at exit, so none is
lost when the process stops. Every other log event (warnings, errors) still goes through
logging and is written at once.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

if TYPE_CHECKING:
    from litestar.types import Scope

FLUSH_SECONDS = 0.005
_MAX_PENDING = 256
"""Lines kept before a write without waiting for the timer (bounds the batch's memory)."""


class _Line(msgspec.Struct, kw_only=True):
    # Field order is the line's key order (structlog's: the event's own fields, then those
    # its processors add).
    request_id: str
    method: str | None
    path: str | None
    route: str | None
    status: int
    latency_ms: float | None
    tenant: str | None
    user: str | None
    event: str = "request"
    level: str = "info"
    logger: str = "panels.access"
    timestamp: str


_ENCODER = msgspec.json.Encoder()


class AccessLog:
    """See the module docstring. `enabled` is decided by the log level and format (see
    `panels.platform.observability.configure_logging`)."""

    def __init__(self) -> None:
        self.enabled = False
        self.stream: TextIO = sys.stderr
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def record(self, scope: Scope, request_id: str, status: int, started: float | None) -> None:
        principal: Any = scope.get("user")
        method: str | None = scope.get("method")  # type: ignore[assignment]  # HTTP scopes have it
        now = time.time()
        line = _ENCODER.encode(
            _Line(
                request_id=request_id,
                method=method,
                path=scope.get("path"),
                route=scope.get("path_template"),
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
                tenant=getattr(principal, "tenant_id", None),
                user=getattr(principal, "user_id", None),
                timestamp=self._timestamp(now),
            )
        )
        pending = self._pending
        pending.append(line)
        if len(pending) >= _MAX_PENDING:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside an event loop: nothing would run the timer
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the lines still waiting (also called by the timer, at shutdown and at exit)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._pending = self._pending, []
        if not lines:
            return
        lines.append(b"")
        try:
            self.stream.write(b"\n".join(lines).decode())
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: as logging's handlers do
            pass

    def _timestamp(self, now: float) -> str:
        """ISO 8601 in UTC with microseconds, as structlog's `TimeStamper(fmt="iso")`; the
        date and time of day are formatted once per second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1_000_000):06d}Z"


access_log = AccessLog()
atexit.register(access_log.flush)
