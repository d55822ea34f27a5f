"""The server's WebSocket protocol keeps no compression state between messages."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from panels.platform.websocket_server import PerMessageDeflateProtocol


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"] * 2})


async def test_deflate_is_negotiated_without_context_takeover_and_messages_arrive() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _echo, host="127.0.0.1", port=port, ws=PerMessageDeflateProtocol, log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # up to 5 s to start listening
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        async with connect(f"ws://127.0.0.1:{port}") as client:
            agreed = client.response.headers["Sec-WebSocket-Extensions"]
            for text in ("change " * 50, "another change " * 50):
                await client.send(text)
                assert await client.recv() == text * 2
    finally:
        server.should_exit = True
        await serving
    assert "permessage-deflate" in agreed
    assert "server_no_context_takeover" in agreed
    assert "client_no_context_takeover" in agreed
