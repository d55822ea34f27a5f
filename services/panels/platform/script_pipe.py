"""One Lua script called on the hot path, over a pipelined connection of its own.

Every cached read makes one Redis call (the cache read and the rate-limit count, one script).
Through redis-py that call cost far more than its round trip: profiled under load, the client's
own work per command (the script object's argument handling, the retry wrapper, the pool's
checkout and release, packing, the parser's reads) was about 15% of a cached read's CPU, the
socket write and read a fifth of that. Here the calls of all requests share one connection:
each is written as soon as it is made and its reply is matched in order (Redis answers a
connection's commands in the order it received them), so there is no pool, no lock and no
task per call; `hiredis` packs and parses.

Only for that script (and the rate limiter's own count): everything else uses redis-py. A
call waits at most `timeout` for its reply (one timer per connection, see `_Replies`) and
`CONNECT_TIMEOUT_SECONDS` to connect; a connection whose reply is late is dropped and the
next call connects again. Timeouts, connection errors and Redis errors are raised to the
caller, which trips the circuit breaker as for any Redis failure. TLS (`rediss://`) is not
spoken here: such a URL uses redis-py's script object (within the same `timeout`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from hashlib import sha1
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

CONNECT_TIMEOUT_SECONDS = 0.5

Arg = str | bytes | int


class _Replies(asyncio.Protocol):
    """The connection: replies are handed to the waiting calls in the order they were sent.

    One timer watches the oldest call still waiting: when its reply is `timeout` seconds
    late, every waiting call fails with `TimeoutError` and the connection is dropped (its
    later replies could no longer be matched), so no call waits longer than that and no call
    pays for a timer of its own.
    """

    def __init__(self, timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.closed = False
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter, _ = self.waiting.popleft()
            if not waiter.done():  # a cancelled call's reply is dropped
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Redis connection lost: {exc}"))

    def send(self, command: bytes) -> asyncio.Future[Any]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiting.append((waiter, loop.time() + self._timeout))
        self.transport.write(command)
        if self._watch is None:
            self._watch = loop.call_at(self.waiting[0][1], self._check)
        return waiter

    def _check(self) -> None:
        self._watch = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self.waiting[0][1]
        if deadline > loop.time():
            self._watch = loop.call_at(deadline, self._check)
            return
        self._fail(TimeoutError("Redis did not answer in time"))
        self.abort()

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self.waiting:
            waiter, _ = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class ScriptPipe:
    """Calls one Lua script by its SHA (sending it whole on `NOSCRIPT`) on a shared connection;
    called as redis-py's script objects are (`keys=`, `args=`)."""

    def __init__(self, redis: Redis, script: str, *, timeout: float) -> None:
        self._timeout = timeout
        self._script = script.encode()
        self._sha = sha1(self._script, usedforsecurity=False).hexdigest().encode()
        pool = redis.connection_pool
        self._params: dict[str, Any] = dict(pool.connection_kwargs)
        self._unix = issubclass(pool.connection_class, UnixDomainSocketConnection)
        self._tls = (
            redis.register_script(script)
            if issubclass(pool.connection_class, SSLConnection)
            else None
        )
        self._connection: _Replies | None = None
        self._connecting: asyncio.Lock | None = None

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if self._tls is not None:
            async with asyncio.timeout(self._timeout):
                return await self._tls(keys=keys, args=args)
        connection = await self._connected()
        reply = await self._wait(connection, _pack(b"EVALSHA", self._sha, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._wait(
                connection,
                _pack(b"EVAL", self._script, len(keys), *keys, *args),
            )
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def _wait(self, connection: _Replies, command: bytes) -> Any:
        return await connection.send(command)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.abort()
            self._connection = None

    async def _connected(self) -> _Replies:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one connect for all the calls that found none
            connection = self._connection
            if connection is None or connection.closed:
                connection = self._connection = await self._connect()
        return connection

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        p = self._params

        def replies() -> _Replies:
            return _Replies(self._timeout)

        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            if self._unix:
                _, connection = await loop.create_unix_connection(replies, p["path"])
            else:
                _, connection = await loop.create_connection(
                    replies, p.get("host", "localhost"), p.get("port", 6379)
                )
            try:
                for setup in _setup_commands(p):
                    reply = await connection.send(_pack(*setup))
                    if isinstance(reply, hiredis.ReplyError):
                        raise RedisConnectionError(f"Redis refused the connection: {reply}")
            except BaseException:
                connection.abort()
                raise
        return connection


def _setup_commands(params: dict[str, Any]) -> list[tuple[Arg, ...]]:
    """What redis-py sends on a new connection of these parameters: AUTH, then SELECT."""
    commands: list[tuple[Arg, ...]] = []
    password, username = params.get("password"), params.get("username")
    if password is not None:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if params.get("db"):
        commands.append(("SELECT", int(params["db"])))
    return commands


def _pack(*parts: Arg) -> bytes:
    """One command in the Redis protocol (hiredis's stub types the tuple as one element)."""
    packed: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]
    return packed
