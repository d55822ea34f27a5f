"""Cache-aside in Redis with versioned keys, failing open.

Keys carry the tenant and a version number: `panels:{tenant}:{scope}:v{n}:{name}`, where the
scope is a name the features choose (which change bumps which scope is decided in one table,
`panels.change.invalidation`). A write bumps the versions after its
transaction commits, so nothing is deleted by pattern and no reader sees data older than the
last commit: a reader that raced the write stored its entry under the old version, which no
one reads again. Any Redis error opens a circuit breaker for a few seconds, during which the
cache is skipped and every read goes to the database; bumps made meanwhile are kept and sent
before this process reads the cache again. (Another process may serve an entry written before
the outage until the writer's next cache operation, or at most for the entry's TTL.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import after_commit, transaction_state
from panels.platform.http import JsonBody
from panels.platform.ratelimit import COUNT_LUA, REDIS_TIMEOUT_SECONDS, RateCount
from panels.platform.script_pipe import ScriptPipe
from panels.platform.tenancy import RequestContext

log = structlog.get_logger("panels.cache")

# One round trip: the scope's version, the entry stored under it, (when asked) the marker
# saying this caller's right to read it was checked at that version, and (when the request's
# rate-limit count is still to be taken, see `panels.platform.ratelimit`) that count.
_READ = (
    COUNT_LUA
    + """
local version = redis.call('GET', KEYS[1]) or '0'
local prefix = ARGV[1] .. version .. ':'
local marker = false
if ARGV[3] ~= '' then marker = redis.call('GET', prefix .. ARGV[3]) end
local rate = false
if KEYS[2] then rate = count_request(KEYS[2], ARGV[4]) end
return {version, redis.call('GET', prefix .. ARGV[2]), marker, rate}
"""
)
_NO_TOTAL = b"-"
CACHE = "versioned_cache"  # where a request's session finds the cache (see `bump_after_commit`)

Loader = Callable[[], Awaitable[JsonBody]]


@dataclass(frozen=True, slots=True)
class Authorization:
    """A permission check shared entries are served behind.

    `rule` names what `check` decides (`read-panel`): its outcome is remembered per caller under
    the scope's current version, so it runs once per caller and version, and again after any
    change that bumps the scope (a grant, a publication).
    """

    rule: str
    check: Callable[[], Awaitable[object]]


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
        self._read = ScriptPipe(redis, _READ, timeout=REDIS_TIMEOUT_SECONDS)
        # Bumps that could not reach Redis. They are sent before this process reads the cache
        # again, so entries written before an outage are not served once Redis is back.
        self._unsent_bumps: set[str] = set()
        # The loads of entries missing right now, by versioned key (see `_load_once`).
        self._loading: dict[str, asyncio.Future[JsonBody]] = {}

    async def read_through(
        self,
        ctx: RequestContext,
        scope: str,
        name: str,
        load: Loader,
        *,
        authorization: Authorization | None = None,
    ) -> JsonBody:
        """The entry `name` of `scope`, from Redis or from `load`, never served to a caller the
        permission rules do not allow at this moment.

        Without `authorization`, `load` applies the caller's permission filters itself, so the
        entry is the caller's own: it is kept under the caller's identity. With it, the entry is
        shared by everyone allowed, and the check runs before any cached byte is returned
        (its success is remembered under the same version, see `Authorization`).
        """
        marker = f"{authorization.rule}:{ctx.cache_identity}" if authorization else ""
        entry = name if authorization else f"{name}:{ctx.cache_identity}"
        base = f"panels:{ctx.tenant_id}:{scope}"
        rate = ctx.rate_count if ctx.rate_count is not None and not ctx.rate_count.taken else None
        found = await self._read_entry(base, entry, marker, rate)
        if found is None:  # Redis unavailable: the database answers alone
            if authorization:
                await authorization.check()
            return _missed(await load())
        prefix, cached, checked = found
        new_keys: list[tuple[str, bytes]] = []
        if authorization and not checked:
            await authorization.check()  # raises the caller's 403/404
            new_keys.append((prefix + marker, b"1"))
        if cached is not None:
            body = _decode_entry(cached)
        else:
            body, loaded_here = await self._load_once(prefix + entry, load)
            if loaded_here:
                new_keys.append((prefix + entry, _encode_entry(body)))
        await self._store(new_keys)
        return body

    async def _load_once(self, key: str, load: Loader) -> tuple[JsonBody, bool]:
        """`load`'s body, and whether this call ran it: the misses of one entry that arrive
        while it is being loaded in this worker wait for that load instead of each running
        their own (a page many people open after a change would otherwise be computed once per
        waiting request: measured, 50 readers of a 1,000,000-row view's first pages).

        Only calls that would read the same cache entry share a load: `key` is the versioned
        entry, the caller's identity in it unless the entry is shared, and a shared entry's
        permission check has already passed for every caller that gets here. If the load fails
        or is cancelled, each waiting call runs its own."""
        pending = self._loading.get(key)
        if pending is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():
                return pending.result(), False
            return _missed(await load()), False
        future: asyncio.Future[JsonBody] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            body = _missed(await load())
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._loading[key]
        future.set_result(body)
        return body, True

    async def _read_entry(
        self, base: str, entry: str, marker: str, rate: RateCount | None
    ) -> tuple[str, bytes | None, bool] | None:
        """(the versioned key prefix, the cached entry, whether the marker is set); None when
        the cache is bypassed. Takes `rate`'s count in the same round trip (raising the 429
        when the budget is spent)."""
        if self.breaker.is_open or not await self._send_bumps():
            return None
        keys = [f"{base}:ver"]
        args: list[str | int] = [f"{base}:v", entry, marker]
        if rate is not None:
            keys.append(rate.key)
            args.append(rate.window_ms)
        try:  # bounded by the script's own timeout
            version, value, checked, counted = await self._read(keys=keys, args=args)
        except Exception as exc:
            self.breaker.trip(exc)
            return None
        if rate is not None:
            rate.settle(*counted)
        return f"{base}:v{version.decode()}:", value, bool(checked)

    async def close(self) -> None:
        await self._read.close()

    async def bump(self, tenant: str, *scopes: str) -> None:
        """Invalidate everything cached under these scopes; call after commit."""
        await self.send(AfterCommitBatch({_version_key(tenant, scope) for scope in scopes}))

    def bump_after_commit(self, session: AsyncSession, tenant: str, *scopes: str) -> None:
        """Invalidate these scopes once the session's transaction commits (never on rollback)."""
        batch = after_commit_batch(session)
        if batch is not None:
            batch.bumps.update(_version_key(tenant, scope) for scope in scopes)

    async def send(self, batch: AfterCommitBatch) -> None:
        """A committed transaction's bumps and announcements, in one pipeline."""
        self._unsent_bumps |= batch.bumps
        if not self.breaker.is_open:
            await self._send_bumps(batch.publishes)

    async def _send_bumps(self, publishes: Sequence[tuple[str, bytes]] = ()) -> bool:
        """Send the bumps not yet sent (and these announcements, in the same round trip);
        False when Redis could not take them.

        The pending set is taken before the round trip, so bumps queued by concurrent writes
        meanwhile are sent by their own call, not again by this one (each write increments
        each of its versions once); on failure they are put back for the next call. Failed
        announcements are lost (the changes are committed; only their announcement is not).
        """
        if not self._unsent_bumps and not publishes:
            return True
        keys, self._unsent_bumps = self._unsent_bumps, set()
        try:
            async with (
                asyncio.timeout(REDIS_TIMEOUT_SECONDS),
                self._redis.pipeline(transaction=False) as pipe,
            ):
                for key in keys:
                    pipe.incr(key)
                for channel, message in publishes:
                    pipe.publish(channel, message)
                await pipe.execute()
        except Exception as exc:
            self._unsent_bumps |= keys
            self.breaker.trip(exc)
            return False
        return True

    async def _store(self, items: list[tuple[str, bytes]]) -> None:
        if self.breaker.is_open or not items:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                if len(items) == 1:
                    await self._redis.set(items[0][0], items[0][1], ex=self._ttl)
                    return
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, value in items:
                        pipe.set(key, value, ex=self._ttl)
                    await pipe.execute()
        except Exception as exc:
            self.breaker.trip(exc)


@dataclass(slots=True)
class AfterCommitBatch:
    """What a transaction sends to Redis once it has committed: version bumps and realtime
    announcements (channel, message), together in one pipeline."""

    bumps: set[str] = field(default_factory=set)
    publishes: list[tuple[str, bytes]] = field(default_factory=list)


_BATCH = "redis_after_commit"


def after_commit_batch(session: AsyncSession) -> AfterCommitBatch | None:
    """The session transaction's batch, sent after its other after-commit effects (which may
    still add to it); None when the session has no cache (see `with_effects`)."""
    cache: VersionedCache | None = session.info.get(CACHE)
    if cache is None:
        return None
    state = transaction_state(session)
    batch: AfterCommitBatch | None = state.get(_BATCH)
    if batch is None:
        batch = state[_BATCH] = AfterCommitBatch()
        after_commit(session, partial(cache.send, batch), last=True)
    return batch


def _version_key(tenant: str, scope: str) -> str:
    return f"panels:{tenant}:{scope}:ver"


def _missed(body: JsonBody) -> JsonBody:
    return JsonBody(body.content, cache_hit=False, total=body.total)


def _encode_entry(body: JsonBody) -> bytes:
    total = _NO_TOTAL if body.total is None else b"%d" % body.total
    return total + b"\n" + body.content


def _decode_entry(cached: bytes) -> JsonBody:
    total, _, content = cached.partition(b"\n")
    return JsonBody(content, cache_hit=True, total=None if total == _NO_TOTAL else int(total))


def bump_after_commit(session: AsyncSession, tenant: str, scopes: Iterable[str]) -> None:
    """Invalidate these scopes of the session's cache once its transaction commits."""
    cache: VersionedCache | None = session.info.get(CACHE)
    if cache is not None:
        cache.bump_after_commit(session, tenant, *scopes)


def redis_client(url: str) -> Redis:
    """A client whose every socket operation is bounded (for everything but the hot path)."""
    return Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry_on_timeout=False,
        health_check_interval=30,
    )


def hot_path_redis_client(url: str) -> Redis:
    """The client of the cache's writes (bumps, stored entries): without socket timeouts,
    because each of those calls is bounded as a whole (`REDIS_TIMEOUT_SECONDS`, one
    `asyncio.timeout`), where a socket timeout wraps every send in a task of its own. The
    cache read and the rate count go over `ScriptPipe` connections made from its URL."""
    return Redis.from_url(
        url, socket_connect_timeout=0.5, retry_on_timeout=False, health_check_interval=30
    )
