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

from panels.platform.cache import AfterCommitBatch

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
    """Announces a transaction's events on the tenant's channel once it has committed.

    The events go in the transaction's after-commit batch, so they leave in the same Redis
    round trip as its cache bumps (`VersionedCache.send`). Published directly rather than
    through the channels plugin's queue: that queue sends one event per round trip from a
    single task, and under write load fell seconds behind. The plugin still does the receiving
    side. Redis trouble trips the shared circuit breaker; the events are then lost, never the
    request.
    """

    def queue(
        self, batch: AfterCommitBatch, tenant_id: str, events: Sequence[msgspec.Struct]
    ) -> None:
        channel = tenant_channel(tenant_id)
        batch.publishes.extend((channel, msgspec.json.encode(event)) for event in events)
