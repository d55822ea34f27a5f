"""Per-user rate limiting kept in Redis: one atomic round trip per request, failing open.

A fixed window per user of a tenant: the first request opens a window of `WINDOW_SECONDS`, and
each request in it counts; past the limit the answer is a 429 with the standard error body,
`Retry-After` and the `RateLimit-*` headers, until the window ends. The count and the window's
remaining time come from one Lua script, so every worker and every replica shares one budget
with no lock and no read-modify-write race. While Redis is away (the circuit breaker is open)
the limit is simply not applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis

from panels.platform.auth import Principal
from panels.platform.cache import CircuitBreaker

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_SECONDS = 60
KEY_PREFIX = "panels:ratelimit:"
# INCR, and on the window's first request its expiry; returns the count and the window's
# remaining milliseconds (a key left without expiry, which never happens, gets one again).
_COUNT = """
local count = redis.call('INCR', KEYS[1])
local ttl = -1
if count > 1 then ttl = redis.call('PTTL', KEYS[1]) end
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


def rate_limit_identity(scope: Scope) -> str:
    """One budget per user of a tenant (authentication runs before this)."""
    principal = scope.get("user")
    if isinstance(principal, Principal):
        return f"{principal.tenant_id}:{principal.user_id}"
    client = scope.get("client")
    return f"ip:{client[0] if client else '127.0.0.1'}"


class RateLimiter:
    """`limit` requests per user and `WINDOW_SECONDS`; see the module docstring."""

    def __init__(self, redis: Redis, breaker: CircuitBreaker, limit: int) -> None:
        self.limit = limit
        self._breaker = breaker
        self._count = redis.register_script(_COUNT)
        self._policy = f"{limit}; w={WINDOW_SECONDS}"

    async def headers_for(self, scope: Scope) -> dict[str, str] | None:
        """The `RateLimit-*` headers of this request, or None when the limit is not applied
        (Redis away); raises the 429 when the caller's budget is spent."""
        if self._breaker.is_open:
            return None
        try:
            count, ttl_ms = await self._count(
                keys=[KEY_PREFIX + rate_limit_identity(scope)],
                args=[WINDOW_SECONDS * 1000],
            )
        except Exception as exc:  # unlimited rather than failed while Redis is away
            self._breaker.trip(exc)
            return None
        reset = str(max(1, -(-int(ttl_ms) // 1000)))  # whole seconds, rounded up
        headers = {
            "RateLimit-Policy": self._policy,
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - int(count), 0)),
            "RateLimit-Reset": reset,
        }
        if count > self.limit:
            raise TooManyRequestsException(headers={**headers, "Retry-After": reset})
        return headers


def rate_limit_middleware(app: ASGIApp) -> ASGIApp:
    """Route middleware (after authentication): count the request against the app's
    `RateLimiter` (on `app.state.rate_limiter`), then add its headers to the response."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        limiter: RateLimiter | None = scope["app"].state.get("rate_limiter")
        if scope["type"] != ScopeType.HTTP or limiter is None:
            await app(scope, receive, send)
            return
        headers = await limiter.headers_for(scope)
        if headers is None:
            await app(scope, receive, send)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await app(scope, receive, send_with_headers)

    return handle
