"""Per-user rate limiting kept in Redis: one atomic count per request, failing open.

A fixed window per user of a tenant: the first request opens a window of `WINDOW_SECONDS`, and
each request in it counts; past the limit the answer is a 429 with the standard error body,
`Retry-After` and the `RateLimit-*` headers, until the window ends. The count and the window's
remaining time come from one Lua snippet (`COUNT_LUA`), so every worker and every replica shares
one budget with no lock and no read-modify-write race. While Redis is away (the circuit breaker
is open) the limit is simply not applied.

Routes that read through the cache before anything else (`opt={COUNTED_BY_CACHE: True}`) are
counted by the cache's own round trip instead of one of their own: the middleware leaves a
`RateCount` in the request's state, `VersionedCache` sends it with its read and refuses the
request there when the budget is spent. A request that never reached the cache (refused
earlier, say) is counted by the middleware as its response starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis

from panels.platform.auth import Principal
from panels.platform.script_pipe import ScriptPipe

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from panels.platform.cache import CircuitBreaker

WINDOW_SECONDS = 60
KEY_PREFIX = "panels:ratelimit:"
REDIS_TIMEOUT_SECONDS = 0.5
COUNTED_BY_CACHE = "rate_limit_counted_by_cache"
RATE_COUNT = "panels_rate_count"
# `count_request(key, window_ms)`: INCR, and on the window's first request its expiry; returns
# the count and the window's remaining milliseconds (a key left without expiry gets one again).
COUNT_LUA = """
local function count_request(key, window_ms)
  local count = redis.call('INCR', key)
  local ttl = -1
  if count > 1 then ttl = redis.call('PTTL', key) end
  if ttl < 0 then
    redis.call('PEXPIRE', key, window_ms)
    ttl = tonumber(window_ms)
  end
  return {count, ttl}
end
"""
_COUNT = COUNT_LUA + "return count_request(KEYS[1], ARGV[1])\n"


def rate_limit_identity(scope: Scope) -> str:
    """One budget per user of a tenant (authentication runs before this)."""
    principal = scope.get("user")
    if isinstance(principal, Principal):
        return f"{principal.tenant_id}:{principal.user_id}"
    client = scope.get("client")
    return f"ip:{client[0] if client else '127.0.0.1'}"


class RateLimiter:
    """`limit` requests per user and `WINDOW_SECONDS`; see the module docstring.

    Counts go over the hot path's pipelined script connection (`ScriptPipe`), each call
    bounded by `REDIS_TIMEOUT_SECONDS`.
    """

    def __init__(self, redis: Redis, breaker: CircuitBreaker, limit: int) -> None:
        self.limit = limit
        self.breaker = breaker
        self._count = ScriptPipe(redis, _COUNT, timeout=REDIS_TIMEOUT_SECONDS)
        self._policy = f"{limit}; w={WINDOW_SECONDS}"

    def pending(self, scope: Scope) -> RateCount:
        return RateCount(self, KEY_PREFIX + rate_limit_identity(scope))

    async def count(self, rate: RateCount) -> None:
        """Count the request in its own round trip (unless Redis is away): see `settle`."""
        if self.breaker.is_open:
            return
        try:  # bounded by the script's own timeout
            count, ttl_ms = await self._count(keys=[rate.key], args=[rate.window_ms])
        except Exception as exc:  # unlimited rather than failed while Redis is away
            self.breaker.trip(exc)
            return
        rate.settle(count, ttl_ms)

    async def close(self) -> None:
        await self._count.close()

    def headers(self, count: int, ttl_ms: int) -> dict[str, str]:
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


@dataclass(slots=True)
class RateCount:
    """One request's count against its caller's budget, taken once."""

    limiter: RateLimiter
    key: str
    taken: bool = False
    headers: dict[str, str] | None = None
    """The `RateLimit-*` headers of the response, once counted within the budget."""

    @property
    def window_ms(self) -> int:
        return WINDOW_SECONDS * 1000

    def settle(self, count: int, ttl_ms: int) -> None:
        """Take the count Redis returned; raises the 429 when the budget is spent."""
        self.taken = True
        self.headers = self.limiter.headers(count, ttl_ms)


def rate_limit_middleware(app: ASGIApp) -> ASGIApp:
    """Route middleware (after authentication): count the request against the app's
    `RateLimiter` (on `app.state.rate_limiter`), then add its headers to the response."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        limiter: RateLimiter | None = scope["app"].state.get("rate_limiter")
        if scope["type"] != ScopeType.HTTP or limiter is None:
            await app(scope, receive, send)
            return
        rate = limiter.pending(scope)
        if scope["route_handler"].opt.get(COUNTED_BY_CACHE):
            scope["state"][RATE_COUNT] = rate
        else:
            await limiter.count(rate)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not rate.taken:  # a route counted by the cache that never reached it
                    await _count_late(limiter, rate)
                if rate.headers:
                    raw = [(k.lower().encode(), v.encode()) for k, v in rate.headers.items()]
                    message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await app(scope, receive, send_with_headers)

    return handle


async def _count_late(limiter: RateLimiter, rate: RateCount) -> None:
    """Count a request whose response is already decided: over the budget, it goes out as it
    is (without headers), and the next request is refused."""
    try:
        await limiter.count(rate)
    except TooManyRequestsException:
        rate.headers = None


def pending_count(state: dict[str, Any]) -> RateCount | None:
    """The request's count still to be taken (by the cache's round trip), if any."""
    rate: RateCount | None = state.get(RATE_COUNT)
    return rate if rate is not None and not rate.taken else None
