"""`/api/ws`: committed changes and the caller's notifications, pushed as they happen.

Protocol (JSON text frames):
- Authenticate with `Sec-WebSocket-Protocol: bearer, <token>`, or send
  `{"type": "auth", "token": "…"}` first (within 5 s). Otherwise the socket closes with 4401.
- The socket closes with 4401 "token expired" when the token's `exp` passes; the client
  re-authenticates by connecting again with a fresh token (and `since` to resume).
- `{"type": "subscribe", "panelIds": [1, 2], "since": 120}`: changes of those panels from now
  on, after replaying the ones with an id above `since` (at most 500). Panels the caller may not
  read are reported in `{"type": "error", "panelIds": [...], "reason": "not_found"}` and never
  streamed.
- `{"type": "unsubscribe", "panelIds": [1]}`; `{"type": "ping"}` → `{"type": "pong"}`.
- The server sends `{"type": "change", "panelId", "change"}` and `{"type": "notification",
  "userId", "notification"}` (the caller's own), and `{"type": "ping"}` every 20 s of quiet.
- A change about a view (the view itself, or a grant on it) is sent only to callers who may
  read that view now, or who made the change, live and replayed alike
  (`acl.permissions.readable_changes`).
- Access is checked again whenever an event may have changed it (a grant, a view published,
  unpublished or deleted, a panel deleted), before anything after that event is sent. Panels
  no longer readable are dropped and reported in `{"type": "error", "panelIds": [...],
  "reason": "revoked"}`.
- A client that falls 256 events behind is closed with 1013 rather than buffered forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any, Literal

import jwt
import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from sqlalchemy import select

from panels.acl.permissions import may_read_change, readable_changes
from panels.change.entities import PanelChange
from panels.change.fanout import Fanout, Published
from panels.change.realtime import ChangeEvent, RowsEvent
from panels.change.stream_access import Rechecks, may_change_access, readable_now
from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.platform.runtime import Runtime

log = structlog.get_logger("panels.stream")
AUTH_TIMEOUT_SECONDS = 5.0
HEARTBEAT_SECONDS = 20.0
MAX_PENDING = 256
MAX_REPLAY = 500
MAX_SUBSCRIBED = 500
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013
CLOSE_INTERNAL_ERROR = 1011
_RECHECKS = "stream_rechecks"
_FANOUT = "stream_fanout"

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


class TokenExpired(Exception):
    """The caller's token expired while the socket was open."""


@websocket("/api/ws", name="change_stream", include_in_schema=False)
async def change_stream(socket: WebSocket[Any, Any, Any]) -> None:
    runtime: Runtime = socket.app.state.runtime
    # From the raw scope: `socket.headers` would parse every header into a multidict that the
    # connection's scope keeps for as long as the socket is open (about 2 KB a socket).
    header = next((v for k, v in socket.scope["headers"] if k == b"sec-websocket-protocol"), b"")
    offered = [p.strip() for p in header.decode("latin-1").split(",") if p.strip()]
    token = offered[1] if len(offered) == 2 and offered[0].lower() == "bearer" else None
    await socket.accept(subprotocols="bearer" if token else None)
    try:
        principal, expires_at = await _authenticate(socket, runtime, token)
    except (NotAuthorizedException, TimeoutError, msgspec.ValidationError, msgspec.DecodeError):
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")
        return
    stream = _Stream(socket, runtime, principal)
    await stream.run(expires_at)


async def _authenticate(
    socket: WebSocket[Any, Any, Any], runtime: Runtime, token: str | None
) -> tuple[Principal, float | None]:
    """The caller, and when their token expires (None: never)."""
    if token is None:
        first = await asyncio.wait_for(socket.receive_text(), AUTH_TIMEOUT_SECONDS)
        message = msgspec.json.decode(first, type=ClientMessage)
        if message.type != "auth" or not message.token:
            raise NotAuthorizedException("the first message must authenticate")
        token = message.token
    principal = await runtime.verifier.verify(token)
    # Verified just above, so its claims can be read without checking the signature again.
    expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return principal, float(expires) if isinstance(expires, int | float) else None


class _Stream:
    """One socket. Client commands and published events go through one inbox, handled in order,
    so a recheck of access always comes between an event that prompted it and what follows."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], runtime: Runtime, principal: Principal
    ) -> None:
        self.socket = socket
        self.runtime = runtime
        self.principal = principal
        self.panels: set[int] = set()
        self.views: set[int] = set()  # of the followed panels, that the caller may read
        self.inbox: asyncio.Queue[ClientMessage | Published] = asyncio.Queue(MAX_PENDING)
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING)
        self.ended: asyncio.Future[Exception]  # made by `run`, set by `end`

    async def run(self, expires_at: float | None) -> None:
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        expiry = None
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            expiry = loop.call_later(delay, self.end, TokenExpired())
        fanout = self._fanout()
        tasks: list[asyncio.Task[None]] = []
        try:
            await fanout.join(self)
            tasks = [
                asyncio.create_task(self._read_client()),
                asyncio.create_task(self._handle()),
                asyncio.create_task(self._write()),
            ]
            waited: list[asyncio.Future[Any]] = [self.ended, *tasks]
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            await self._close(done)
        finally:
            if expiry is not None:
                expiry.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await fanout.leave(self)

    def end(self, reason: Exception) -> None:
        """Stop the stream from outside its tasks: the token expired, the client fell behind
        on published events, or they could not be read."""
        if not self.ended.done():
            self.ended.set_result(reason)

    async def _close(self, done: set[asyncio.Future[Any]]) -> None:
        if self.ended in done:
            failure: BaseException | None = self.ended.result()
        else:
            failure = next((t.exception() for t in done if t.exception() is not None), None)
        if isinstance(failure, TokenExpired):
            await self.socket.close(code=CLOSE_UNAUTHORIZED, reason="token expired")
        elif isinstance(failure, TooSlow):
            await self.socket.close(code=CLOSE_TOO_SLOW, reason="too slow")
        elif failure is not None:
            # Access could not be checked (the database is away): stop rather than guess.
            log.warning("stream failed", error=type(failure).__name__)
            with contextlib.suppress(Exception):
                await self.socket.close(code=CLOSE_INTERNAL_ERROR, reason="internal error")

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
                elif message.type in ("subscribe", "unsubscribe"):
                    self._take(message)

    def _take(self, item: ClientMessage | Published) -> None:
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:
            raise TooSlow from None

    def offer(self, published: Published) -> None:
        """A published event of the caller's tenant (from the worker's `_Fanout`)."""
        try:
            self._take(published)
        except TooSlow as exc:
            self.end(exc)

    async def _handle(self) -> None:
        while True:
            batch = [await self.inbox.get()]
            while not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
            # One recheck serves every access change of the batch: it starts after all of them
            # were received, so it sees all their commits.
            if any(
                isinstance(item, Published)
                and isinstance(item.event, ChangeEvent)
                and may_change_access(item.event)
                for item in batch
            ):
                await self._recheck()
            for item in batch:
                if isinstance(item, Published):
                    self._deliver(item)
                elif item.type == "subscribe":
                    await self._subscribe(item.panel_ids, item.since)
                else:
                    self.panels.difference_update(item.panel_ids)
                    self._send({"type": "unsubscribed", "panelIds": item.panel_ids})

    async def _recheck(self) -> None:
        if not self.panels:
            return
        readable = await self._rechecks().readable(self.principal, self.panels)
        revoked = self.panels - readable.panels
        self.panels -= revoked
        self.views = readable.views
        if revoked:
            self._send(
                {
                    "type": "error",
                    "message": "Panel no longer readable",
                    "panelIds": sorted(revoked),
                    "reason": "revoked",
                }
            )

    def _rechecks(self) -> Rechecks:
        """The process's rechecks, shared by all its sockets."""
        state = self.socket.app.state
        if _RECHECKS not in state:
            state[_RECHECKS] = Rechecks(self.runtime.db)
        rechecks: Rechecks = state[_RECHECKS]
        return rechecks

    def _fanout(self) -> Fanout:
        """The process's tenant subscriptions, shared by all its sockets."""
        state = self.socket.app.state
        if _FANOUT not in state:
            state[_FANOUT] = Fanout(self.runtime.channels)
        fanout: Fanout = state[_FANOUT]
        return fanout

    async def _subscribe(self, panel_ids: list[int], since: int | None) -> None:
        tenant_id = self.principal.tenant_id
        async with self.runtime.db.get_session() as session:
            bind_tenant(session, tenant_id)
            [readable] = await readable_now(session, tenant_id, [(self.principal, panel_ids)])
            replay = []
            if since is not None and readable.panels:
                statement = (
                    select(PanelChange)
                    .where(
                        PanelChange.tenant_id == tenant_id,
                        PanelChange.panel_id.in_(readable.panels),
                        PanelChange.id > since,
                        *readable_changes(self.principal),
                    )
                    .order_by(PanelChange.id)
                    .limit(MAX_REPLAY)
                )
                replay = list(await session.scalars(statement))
        refused = [p for p in panel_ids if p not in readable.panels]
        if refused:
            self._send(
                {
                    "type": "error",
                    "message": "Panel not found",
                    "panelIds": refused,
                    "reason": "not_found",
                }
            )
        if len(self.panels | readable.panels) > MAX_SUBSCRIBED:
            self._send({"type": "error", "message": f"At most {MAX_SUBSCRIBED} panels per socket"})
            return
        self.panels |= readable.panels
        self.views |= readable.views
        self._send({"type": "subscribed", "panelIds": sorted(readable.panels)})
        for change in replay:
            self._send(ChangeEvent.from_entity(change))

    def _deliver(self, published: Published) -> None:
        event = published.event
        if isinstance(event, RowsEvent):
            if event.panel_id in self.panels:
                self._put(published.raw)
            return
        if not isinstance(event, ChangeEvent):
            if event.user_id == self.principal.user_id:
                self._put(published.raw)
            return
        if event.panel_id not in self.panels:
            return
        change = event.change
        created = event.view_id if change.change_type == "view_created" else None
        if created is not None and change.changed_by == self.principal.user_id:
            self.views.add(created)  # its creator owns a new view
        if may_read_change(
            self.principal,
            view_id=event.view_id,
            changed_by=event.change.changed_by,
            readable_view_ids=self.views,
        ):
            self._put(published.raw)

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                try:
                    # `asyncio.timeout`, not `wait_for`: no extra task per waiting socket.
                    async with asyncio.timeout(HEARTBEAT_SECONDS):
                        payload = await self.outbox.get()
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
