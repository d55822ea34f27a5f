"""Cache-aside in Redis with versioned keys, failing open.

Keys carry the tenant and a version number: `panels:{tenant}:{scope}:v{n}:{name}`, where the
scope is a panel id or `all` for tenant-wide lists. A write bumps the versions after its
transaction commits, so nothing is deleted by pattern and no reader sees data older than the
last commit: a reader that raced the write stored its entry under the old version, which no
one reads again. Any Redis error opens a circuit breaker for a few seconds, during which the
cache is skipped and every read goes to the database; bumps made meanwhile are kept and sent
before this process reads the cache again. (Another process may serve an entry written before
the outage until the writer's next cache operation, or at most for the entry's TTL.)
"""

from __future__ import annotations

import time

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import after_commit

log = structlog.get_logger("panels.cache")

TENANT_SCOPE = "all"
VIEWS_SCOPE = "views"  # every view entry of the tenant (views show column names of panels)

# One round trip: read the scope's version and the entry stored under it.
_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2])}
"""


class CircuitBreaker:
    """Skip Redis for `cooldown` seconds after it fails, instead of waiting on it each time."""

    def __init__(self, cooldown: float = 5.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, error: BaseException) -> None:
        if not self.is_open:
            log.warning("redis unavailable, bypassing it", error=type(error).__name__)
        self._open_until = time.monotonic() + self.cooldown


class VersionedCache:
    """See the module docstring. Any Redis failure trips the breaker and the request goes on
    without the cache; nothing here ever raises."""

    def __init__(self, redis: Redis, ttl_seconds: int, breaker: CircuitBreaker) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self.breaker = breaker
        self._read = redis.register_script(_READ)
        # Bumps that could not reach Redis. They are sent before this process reads the cache
        # again, so entries written before an outage are not served once Redis is back.
        self._unsent_bumps: set[str] = set()

    async def get(
        self, tenant: str, scope: str, name: str
    ) -> tuple[bytes | None, CacheSlot | None]:
        """The cached bytes (or None) and the slot to fill on a miss (None when bypassed)."""
        if self.breaker.is_open or not await self._send_bumps():
            return None, None
        base = f"panels:{tenant}:{scope}"
        try:
            version, value = await self._read(keys=[f"{base}:ver"], args=[f"{base}:v", f":{name}"])
        except Exception as exc:
            self.breaker.trip(exc)
            return None, None
        slot = CacheSlot(self, f"{base}:v{version.decode()}:{name}")
        return value, slot

    async def bump(self, tenant: str, *scopes: str) -> None:
        """Invalidate everything cached under these scopes; call after commit."""
        self._unsent_bumps.update(f"panels:{tenant}:{scope}:ver" for scope in scopes)
        if not self.breaker.is_open:
            await self._send_bumps()

    def bump_after_commit(self, session: AsyncSession, tenant: str, *scopes: str) -> None:
        """Invalidate these scopes once the session's transaction commits (never on rollback)."""
        after_commit(session, lambda: self.bump(tenant, *scopes))

    async def _send_bumps(self) -> bool:
        """Send the bumps not yet sent; False when Redis could not take them."""
        if not self._unsent_bumps:
            return True
        keys = list(self._unsent_bumps)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                await pipe.execute()
        except Exception as exc:
            self.breaker.trip(exc)
            return False
        self._unsent_bumps.difference_update(keys)
        return True

    async def _store(self, key: str, value: bytes) -> None:
        if self.breaker.is_open:
            return
        try:
            await self._redis.set(key, value, ex=self._ttl)
        except Exception as exc:
            self.breaker.trip(exc)


class CacheSlot:
    """Where a miss's freshly read value goes: the key of the version seen before the read."""

    __slots__ = ("_cache", "key")

    def __init__(self, cache: VersionedCache, key: str) -> None:
        self._cache = cache
        self.key = key

    async def fill(self, value: bytes) -> None:
        await self._cache._store(self.key, value)


def redis_client(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry_on_timeout=False,
        health_check_interval=30,
    )
