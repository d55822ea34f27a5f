"""`Idempotency-Key` for every POST under /api.

The key and the response it produced are stored in the same transaction as the write: the
record is inserted just before the response starts (that is, before the request commits), so
one can never exist without the other. Two concurrent requests with one key both run, but the
second one's insert waits on the first's unique key; when the first commits, the second rolls
back its own write and replays the first response, so the key acts once. Only 2xx responses
are remembered: a failed attempt may be retried with the same key.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING, Any, cast

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from litestar.enums import ScopeType
from sqlalchemy import Integer, LargeBinary, String, and_, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.platform.errors import BadRequest, Conflict
from panels.platform.guards import read_body, replaying

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler
    from litestar.types import (
        ASGIApp,
        HTTPResponseStartEvent,
        Message,
        Receive,
        Scope,
        Send,
    )
    from sqlalchemy import Table

    from panels.platform.runtime import Runtime

RETENTION = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = ("content-type", "location", "etag")


class IdempotencyRecord(DefaultBase):
    __tablename__ = "idempotency_key"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


def idempotency_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key")
        principal = scope.get("user")
        if scope["type"] != ScopeType.HTTP or scope["method"] != "POST" or key is None:
            await app(scope, receive, send)
            return
        if not _KEY.match(key) or not isinstance(principal, Principal):
            raise BadRequest("header.Idempotency-Key", "must be 1 to 255 visible ASCII characters")
        runtime: Runtime = scope["app"].state.runtime
        handler: HTTPRouteHandler = scope["route_handler"]  # type: ignore[assignment]
        # The route's own limit: the records route takes 16 MiB where others take 1 MiB.
        body = await read_body(receive, handler.resolve_request_max_body_size())
        fingerprint = sha256(
            b"%s\n%s\n%s"
            % (scope["path"].encode(), (_header(scope, b"content-type") or "").encode(), body)
        ).hexdigest()
        session = bind_tenant(
            runtime.db.provide_session(scope["app"].state, scope), principal.tenant_id
        )
        identity = (principal.tenant_id, principal.user_id, key)
        stored = await _find(session, identity)
        if stored is not None:
            await _replay(stored, fingerprint, send)
            return
        await app(scope, replaying(body, receive), _Recorder(session, identity, fingerprint, send))

    return middleware


class _Recorder:
    """Holds the response back until it is whole, then records it before it starts."""

    def __init__(
        self, session: AsyncSession, identity: tuple[str, str, str], fingerprint: str, send: Send
    ) -> None:
        self._session = session
        self._identity = identity
        self._fingerprint = fingerprint
        self._send = send
        self._start: HTTPResponseStartEvent | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        chunk = message
        self._chunks.append(chunk.get("body", b""))
        if chunk.get("more_body", False):
            return
        body = b"".join(self._chunks)
        status = self._start["status"]
        if 200 <= status < 300 and not await self._remember(status, body):
            # A concurrent request with this key committed first: undo ours, answer with its.
            await self._session.rollback()
            stored = await _find(self._session, self._identity)
            if stored is not None:
                await _replay(stored, self._fingerprint, self._send)
                return
        await self._send(self._start)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _remember(self, status: int, body: bytes) -> bool:
        assert self._start is not None
        raw_headers = [
            (name.decode().lower(), value.decode("latin-1"))
            for name, value in self._start.get("headers", ())
        ]
        headers = {name: value for name, value in raw_headers if name in _REPLAYED_HEADERS}
        # Stored as the handler made it: a replay may go to a client that takes no gzip.
        if ("content-encoding", "gzip") in raw_headers:
            body = gzip.decompress(body)
        tenant_id, user_id, key = self._identity
        table = cast("Table", IdempotencyRecord.__table__)
        values: dict[str, Any] = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "key": key,
            "request_hash": self._fingerprint,
            "status_code": status,
            "headers": headers,
            "body": body,
            "created_at": datetime.now(UTC),
        }
        statement = (
            insert(table)
            .values(values)
            .on_conflict_do_update(
                index_elements=["tenant_id", "user_id", "key"],
                set_={k: v for k, v in values.items() if k not in ("tenant_id", "user_id", "key")},
                where=table.c.created_at < datetime.now(UTC) - RETENTION,
            )
            .returning(table.c.key)
        )
        result = await self._session.execute(statement)
        return result.first() is not None


async def _find(session: AsyncSession, identity: tuple[str, str, str]) -> IdempotencyRecord | None:
    tenant_id, user_id, key = identity
    statement = select(IdempotencyRecord).where(
        and_(
            IdempotencyRecord.tenant_id == tenant_id,
            IdempotencyRecord.user_id == user_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at >= datetime.now(UTC) - RETENTION,
        )
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def _replay(stored: IdempotencyRecord, fingerprint: str, send: Send) -> None:
    if stored.request_hash != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request")
    headers = [(k.encode(), v.encode("latin-1")) for k, v in stored.headers.items()]
    headers += [
        (b"content-length", str(len(stored.body)).encode()),
        (b"idempotent-replayed", b"true"),
    ]
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
