"""Realtime plumbing: a Redis pub/sub backend that survives Redis going away, the tenant channel,
and the announcer that publishes a committed transaction's events in one round trip.

What the events are and when they are queued is the change feature's business
(`panels.change.realtime`); this module knows only encoded structs and channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import suppress
from typing import Any

import msgspec
import structlog
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis

from panels.platform.cache import CircuitBreaker

log = structlog.get_logger("panels.realtime")
ANNOUNCER = "realtime_announcer"
RECONNECT_SECONDS = 1.0
SHUTDOWN_SECONDS = 2.0


class ResilientPubSubBackend(RedisChannelsPubSubBackend):
    """Redis pub/sub that outlives Redis going away.

    The channels plugin sends from one task and receives in another; an exception kills
    either for good (and a dead sender makes shutdown wait forever). Here a failed publish is
    logged and dropped, and the receiver waits and reconnects (redis-py subscribes again).
    """

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        try:
            await super().publish(data, channels)
        except Exception as exc:
            log.warning("realtime publish failed", error=type(exc).__name__)

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        while True:
            try:
                async for event in super().stream_events():
                    yield event
            except Exception as exc:
                log.warning("realtime stream interrupted", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)

    async def on_shutdown(self) -> None:
        with suppress(Exception):
            await asyncio.wait_for(super().on_shutdown(), SHUTDOWN_SECONDS)


def tenant_channel(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


class Announcer:
    """Publishes a transaction's events on the tenant's channel, in one Redis round trip.

    Published directly rather than through the channels plugin's queue: that queue sends one
    event per round trip from a single task, and under write load fell seconds behind. The
    plugin still does the receiving side. Redis trouble trips the shared circuit breaker; the
    events are then lost, never the request.
    """

    def __init__(self, redis: Redis, breaker: CircuitBreaker) -> None:
        self._redis = redis
        self._breaker = breaker

    async def publish(self, tenant_id: str, events: Sequence[msgspec.Struct]) -> None:
        if self._breaker.is_open or not events:
            return
        channel = tenant_channel(tenant_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(channel, msgspec.json.encode(event))
                await pipe.execute()
        except Exception as exc:  # the change itself is committed; only its announcement is lost
            self._breaker.trip(exc)
