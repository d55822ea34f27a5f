"""The WebSocket stream's own rules: a bounded backlog, heartbeats in quiet times, and one
subscription per tenant and process shared by its sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend

from panels.change import stream
from panels.change.fanout import Fanout, Published
from panels.change.realtime import RowsEvent
from panels.change.stream import MAX_PENDING, TooSlow, _Stream
from panels.platform.auth import Principal
from panels.platform.realtime import tenant_channel


class RecordingSocket:
    """Stands in for the client end: keeps what the server sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)


def make_stream(socket: Any, tenant_id: str = "t") -> _Stream:
    principal = Principal("u", None, tenant_id, "user")
    return _Stream(socket, runtime=None, principal=principal)  # type: ignore[arg-type]


def rows_event(panel_id: int) -> bytes:
    event = RowsEvent(panel_id=panel_id, datasource_id=1, job_id="j", status="succeeded")
    return msgspec.json.encode(event)


async def inbox_events(of: _Stream, count: int) -> list[Any]:
    async with asyncio.timeout(2):
        return [(await of.inbox.get()) for _ in range(count)]


def test_a_client_that_falls_too_far_behind_is_dropped() -> None:
    queue_owner = make_stream(RecordingSocket())
    for _ in range(MAX_PENDING):
        queue_owner._put(b"{}")
    with pytest.raises(TooSlow):
        queue_owner._put(b"{}")


async def test_quiet_sockets_get_heartbeats_and_events_go_out_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.05)
    socket = RecordingSocket()
    writer_of = make_stream(socket)
    writer_of._put(b'{"type":"change","n":1}')
    writer_of._put(b'{"type":"change","n":2}')
    writer = asyncio.create_task(writer_of._write())
    await asyncio.sleep(0.2)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    assert socket.sent[:2] == ['{"type":"change","n":1}', '{"type":"change","n":2}']
    assert '{"type":"ping"}' in socket.sent[2:]


async def test_the_sockets_of_a_tenant_share_one_subscription_and_get_every_event_in_order() -> (
    None
):
    async with ChannelsPlugin(
        backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True
    ) as channels:
        fanout = Fanout(channels)
        first, second = make_stream(RecordingSocket()), make_stream(RecordingSocket())
        other_tenant = make_stream(RecordingSocket(), tenant_id="other")
        for joining in (first, second, other_tenant):
            joining.ended = asyncio.get_running_loop().create_future()
            await fanout.join(joining)
        assert len(channels._channels[tenant_channel("t")]) == 1

        await channels.wait_published(rows_event(1), tenant_channel("t"))
        await channels.wait_published(rows_event(2), tenant_channel("t"))
        for joined in (first, second):
            received = await inbox_events(joined, 2)
            assert all(isinstance(item, Published) for item in received)
            assert [item.event.panel_id for item in received] == [1, 2]
        assert other_tenant.inbox.empty()

        for leaving in (first, second, other_tenant):
            await fanout.leave(leaving)
        assert fanout.feeds == {}
        assert not any(channels._channels.values())


async def test_a_socket_whose_inbox_is_full_is_ended_as_too_slow_the_others_still_served() -> None:
    async with ChannelsPlugin(
        backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True
    ) as channels:
        fanout = Fanout(channels)
        slow, reading = make_stream(RecordingSocket()), make_stream(RecordingSocket())
        for joining in (slow, reading):
            joining.ended = asyncio.get_running_loop().create_future()
            await fanout.join(joining)
        for panel_id in range(MAX_PENDING + 1):
            await channels.wait_published(rows_event(panel_id + 1), tenant_channel("t"))
            await inbox_events(reading, 1)  # this one keeps up
        async with asyncio.timeout(2):
            assert isinstance(await slow.ended, TooSlow)
        assert not reading.ended.done()
        for leaving in (slow, reading):
            await fanout.leave(leaving)
