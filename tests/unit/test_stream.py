"""The WebSocket stream's own rules: a bounded backlog and heartbeats in quiet times."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from panels.change import stream
from panels.change.stream import MAX_PENDING, TooSlow, _Stream
from panels.platform.auth import Principal


class RecordingSocket:
    """Stands in for the client end: keeps what the server sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)


def make_stream(socket: Any) -> _Stream:
    return _Stream(socket, runtime=None, principal=Principal("u", None, "t", "user"))  # type: ignore[arg-type]


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
