"""Announcing committed changes and notifications to connected clients, through Redis.

Services never publish: `record` (and the notification derivation) queue what they wrote on
the session, and the queue is published only once the transaction has committed, so a rolled
back change is never announced. Events go to one Litestar channel per tenant, backed by Redis
pub/sub, so every worker of every replica receives them and delivers to its own sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import structlog
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from panels.change.schemas import ChangeRead, NotificationRead, NotificationView
from panels.platform.cache import CircuitBreaker
from panels.platform.db import after_commit, transaction_state
from panels.platform.schemas import CamelStruct

if TYPE_CHECKING:
    from panels.change.entities import PanelChange, ViewNotification
    from panels.view.entities import PanelView

log = structlog.get_logger("panels.realtime")
_PENDING = "realtime_pending"
ANNOUNCER = "realtime_announcer"
RECONNECT_SECONDS = 1.0
SHUTDOWN_SECONDS = 2.0


class ChangeEvent(CamelStruct, tag="change", tag_field="type"):
    panel_id: int
    change: ChangeRead


class NotificationEvent(CamelStruct, tag="notification", tag_field="type"):
    user_id: str
    notification: NotificationRead


Event = ChangeEvent | NotificationEvent
EventKind = Literal["change", "notification"]


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

    async def publish(self, tenant_id: str, events: list[Event]) -> None:
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


def queue_change(session: AsyncSession, change: PanelChange) -> None:
    _pending(session).append(("change", change))


def queue_notification(
    session: AsyncSession, notification: ViewNotification, view: PanelView
) -> None:
    summary = NotificationView(
        id=view.id, name=view.name, panel_id=view.panel_id, published_by=view.published_by
    )
    _pending(session).append(("notification", (notification, summary)))


def _pending(session: AsyncSession) -> list[tuple[EventKind, Any]]:
    state = transaction_state(session)
    pending: list[tuple[EventKind, Any]] | None = state.get(_PENDING)
    if pending is None:
        pending = state[_PENDING] = []
        announcer: Announcer | None = session.info.get(ANNOUNCER)
        after_commit(session, lambda: _announce(announcer, pending))
    return pending


async def _announce(announcer: Announcer | None, pending: list[tuple[EventKind, Any]]) -> None:
    if announcer is None or not pending:
        return
    events: list[Event] = []
    tenant_id = ""
    for kind, item in pending:
        if kind == "change":
            tenant_id = item.tenant_id
            events.append(ChangeEvent(panel_id=item.panel_id, change=ChangeRead.from_entity(item)))
        else:
            notification, summary = item
            tenant_id = notification.tenant_id
            read = NotificationRead.from_entity(notification, summary)
            events.append(NotificationEvent(user_id=notification.user_id, notification=read))
    await announcer.publish(tenant_id, events)
