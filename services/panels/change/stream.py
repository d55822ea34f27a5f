"""`/api/ws`: committed changes and the caller's notifications, pushed as they happen.

Protocol (JSON text frames):
- Authenticate with `Sec-WebSocket-Protocol: bearer, <token>`, or send
  `{"type": "auth", "token": "…"}` first (within 5 s). Otherwise the socket closes with 4401.
- `{"type": "subscribe", "panelIds": [1, 2], "since": 120}`: changes of those panels from now
  on, after replaying the ones with an id above `since` (at most 500). Panels the caller may not
  read are reported in `{"type": "error", "panelIds": [...]}` and never streamed.
- `{"type": "unsubscribe", "panelIds": [1]}`; `{"type": "ping"}` → `{"type": "pong"}`.
- The server sends `{"type": "change", "panelId", "change"}` and `{"type": "notification",
  "userId", "notification"}` (the caller's own), and `{"type": "ping"}` every 20 s of quiet.
- A client that falls 256 events behind is closed with 1013 rather than buffered forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from sqlalchemy import select

from panels.acl.permissions import readable_panels
from panels.change.entities import PanelChange
from panels.change.realtime import ChangeEvent, Event
from panels.change.schemas import ChangeRead
from panels.panel.entities import Panel
from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.platform.realtime import tenant_channel
from panels.platform.runtime import Runtime

log = structlog.get_logger("panels.stream")
AUTH_TIMEOUT_SECONDS = 5.0
HEARTBEAT_SECONDS = 20.0
MAX_PENDING = 256
MAX_REPLAY = 500
MAX_SUBSCRIBED = 500
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013

PanelIds = Annotated[
    list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]], msgspec.Meta(max_length=MAX_SUBSCRIBED)
]


class ClientMessage(msgspec.Struct, rename="camel", kw_only=True):
    type: Literal["auth", "subscribe", "unsubscribe", "ping"]
    token: str | None = None
    panel_ids: PanelIds = msgspec.field(default_factory=list)
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None


class TooSlow(Exception):
    """The client stopped reading; its backlog is full."""


@websocket("/api/ws", name="change_stream", include_in_schema=False)
async def change_stream(socket: WebSocket[Any, Any, Any]) -> None:
    runtime: Runtime = socket.app.state.runtime
    offered = [
        p.strip() for p in socket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    token = offered[1] if len(offered) == 2 and offered[0].lower() == "bearer" else None
    await socket.accept(subprotocols="bearer" if token else None)
    try:
        principal = await _authenticate(socket, runtime, token)
    except (NotAuthorizedException, TimeoutError, msgspec.ValidationError, msgspec.DecodeError):
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")
        return
    stream = _Stream(socket, runtime, principal)
    await stream.run()


async def _authenticate(
    socket: WebSocket[Any, Any, Any], runtime: Runtime, token: str | None
) -> Principal:
    if token is None:
        first = await asyncio.wait_for(socket.receive_text(), AUTH_TIMEOUT_SECONDS)
        message = msgspec.json.decode(first, type=ClientMessage)
        if message.type != "auth" or not message.token:
            raise NotAuthorizedException("the first message must authenticate")
        token = message.token
    return await runtime.verifier.verify(token)


class _Stream:
    def __init__(
        self, socket: WebSocket[Any, Any, Any], runtime: Runtime, principal: Principal
    ) -> None:
        self.socket = socket
        self.runtime = runtime
        self.principal = principal
        self.panels: set[int] = set()
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING)

    async def run(self) -> None:
        channels = self.runtime.channels
        subscriber = await channels.subscribe(tenant_channel(self.principal.tenant_id))
        tasks = [
            asyncio.create_task(self._read_client()),
            asyncio.create_task(self._forward(subscriber.iter_events())),
            asyncio.create_task(self._write()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if isinstance(task.exception(), TooSlow):
                    await self.socket.close(code=CLOSE_TOO_SLOW, reason="too slow")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await channels.unsubscribe(subscriber)

    async def _read_client(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await self.socket.receive_text()
                try:
                    message = msgspec.json.decode(raw, type=ClientMessage)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    self._send({"type": "error", "message": str(exc)})
                    continue
                if message.type == "ping":
                    self._send({"type": "pong"})
                elif message.type == "subscribe":
                    await self._subscribe(message.panel_ids, message.since)
                elif message.type == "unsubscribe":
                    self.panels.difference_update(message.panel_ids)
                    self._send({"type": "unsubscribed", "panelIds": message.panel_ids})

    async def _subscribe(self, panel_ids: list[int], since: int | None) -> None:
        async with self.runtime.db.get_session() as session:
            bind_tenant(session, self.principal.tenant_id)
            readable = set(
                await session.scalars(
                    select(Panel.id).where(
                        Panel.tenant_id == self.principal.tenant_id,
                        Panel.id.in_(panel_ids),
                        *readable_panels(self.principal),
                    )
                )
            )
            replay = []
            if since is not None and readable:
                statement = (
                    select(PanelChange)
                    .where(
                        PanelChange.tenant_id == self.principal.tenant_id,
                        PanelChange.panel_id.in_(readable),
                        PanelChange.id > since,
                    )
                    .order_by(PanelChange.id)
                    .limit(MAX_REPLAY)
                )
                replay = list(await session.scalars(statement))
        refused = [p for p in panel_ids if p not in readable]
        if refused:
            self._send({"type": "error", "message": "Panel not found", "panelIds": refused})
        if len(self.panels | readable) > MAX_SUBSCRIBED:
            self._send({"type": "error", "message": f"At most {MAX_SUBSCRIBED} panels per socket"})
            return
        self.panels |= readable
        self._send({"type": "subscribed", "panelIds": sorted(readable)})
        for change in replay:
            self._send(ChangeEvent(panel_id=change.panel_id, change=ChangeRead.from_entity(change)))

    async def _forward(self, events: Any) -> None:
        async for raw in events:
            event = msgspec.json.decode(raw, type=Event)
            mine = (
                event.panel_id in self.panels
                if isinstance(event, ChangeEvent)
                else event.user_id == self.principal.user_id
            )
            if mine:
                self._put(raw)

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                try:
                    payload = await asyncio.wait_for(self.outbox.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    payload = b'{"type":"ping"}'
                await self.socket.send_text(payload.decode())

    def _send(self, message: Any) -> None:
        self._put(msgspec.json.encode(message))

    def _put(self, payload: bytes) -> None:
        try:
            self.outbox.put_nowait(payload)
        except asyncio.QueueFull:
            raise TooSlow from None
