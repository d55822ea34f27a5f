"""Each tenant's published events, received once per process and handed to its sockets.

Each socket used to hold a channels subscriber of its own (a queue) and a task moving its
events to its inbox, decoding every event again: with a thousand sockets open that was a good
part of what they cost a worker (benchmarks/README.md, "Memory per worker"). `Fanout` keeps
one subscription per tenant and process; one task per tenant decodes each event once and
offers it to every listening socket of the tenant, in the order published.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Protocol

import msgspec
from litestar.channels import ChannelsPlugin, Subscriber

from panels.change.realtime import Event
from panels.platform.auth import Principal
from panels.platform.realtime import tenant_channel


@dataclass(frozen=True, slots=True)
class Published:
    event: Event
    raw: bytes


class Listener(Protocol):
    """A socket's stream, as the fanout sees it."""

    principal: Principal

    def offer(self, published: Published) -> None:
        """Take a published event of the listener's tenant."""

    def end(self, reason: Exception) -> None:
        """Stop: the events could not be read."""


class _Feed:
    """One tenant's channel in one process: its subscription and the sockets it feeds."""

    def __init__(self, channels: ChannelsPlugin, tenant_id: str) -> None:
        self.streams: set[Listener] = set()
        self.delivery: asyncio.Task[None] | None = None
        self.opening = asyncio.ensure_future(self._open(channels, tenant_id))

    def failed(self) -> bool:
        opening = self.opening
        return opening.done() and (opening.cancelled() or opening.exception() is not None)

    async def _open(self, channels: ChannelsPlugin, tenant_id: str) -> Subscriber:
        subscriber = await channels.subscribe(tenant_channel(tenant_id))
        self.delivery = asyncio.create_task(self._deliver(subscriber))
        return subscriber

    async def _deliver(self, subscriber: Subscriber) -> None:
        async for raw in subscriber.iter_events():
            try:
                published = Published(msgspec.json.decode(raw, type=Event), raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                for stream in list(self.streams):
                    stream.end(exc)
                continue
            for stream in list(self.streams):
                stream.offer(published)


class Fanout:
    """One channels subscription per tenant and process, shared by the tenant's sockets there
    (see the module docstring)."""

    def __init__(self, channels: ChannelsPlugin) -> None:
        self.channels = channels
        self.feeds: dict[str, _Feed] = {}

    async def join(self, stream: Listener) -> None:
        """Feed `stream` its tenant's events from now on (subscribed once this returns)."""
        tenant_id = stream.principal.tenant_id
        feed = self.feeds.get(tenant_id)
        if feed is None:
            feed = self.feeds[tenant_id] = _Feed(self.channels, tenant_id)
        feed.streams.add(stream)
        await asyncio.shield(feed.opening)

    async def leave(self, stream: Listener) -> None:
        tenant_id = stream.principal.tenant_id
        feed = self.feeds.get(tenant_id)
        if feed is None or stream not in feed.streams:
            return
        feed.streams.discard(stream)
        if feed.streams and not feed.failed():
            return
        del self.feeds[tenant_id]  # a failed subscription is tried again by the next socket
        if feed.streams:
            return
        with contextlib.suppress(Exception):
            subscriber = await asyncio.shield(feed.opening)
            if feed.delivery is not None:
                feed.delivery.cancel()
            await self.channels.unsubscribe(subscriber)
