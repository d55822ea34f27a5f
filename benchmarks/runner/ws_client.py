"""WebSocket load for the realtime scenario: one process holding many subscribed clients.

    BENCH_WS_TOKEN=<jwt> python -m benchmarks.runner.ws_client --url ws://127.0.0.1:P/api/ws \
        --panel 42 --clients 250 --changes 20 --prefix rt-abc- --ready R.json --out O.json

Run by the runner as a subprocess (several of them), so that the load generator is not in the
runner's process. Each client connects with the subprotocols `bearer, <token>` (or, with
`--auth message`, sends `{"type": "auth"}` first), subscribes to the panel and waits for
`subscribed`. When every client is subscribed or has failed, the process writes `--ready`.
From then on each client notes the time.monotonic() (CLOCK_MONOTONIC: the same clock in every
process of the machine) at which it received the `change` of every rename whose new name
starts with `--prefix`. A first line on stdin (or its end) means the writes are over: the
process waits up to `--grace` seconds more for clients still missing changes and writes
`--out`; a second line (or the end of stdin) makes it close every socket and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from benchmarks.runner.measure import raise_nofile_limit

SAMPLES: dict[str, tuple[float, str | bytes]] = {}  # the first unexpected message of each type


class Client:
    def __init__(self, index: int, options: argparse.Namespace, token: str) -> None:
        self.index = index
        self.options = options
        self.token = token
        self.ws: ClientConnection | None = None
        self.connect_ms: float | None = None
        self.failure: str | None = None
        self.closed: str | None = None  # set when the server closed a subscribed socket
        self.received: dict[str, float] = {}
        self.other: Counter[str] = Counter()
        self.complete = asyncio.Event()

    async def open(self, gate: asyncio.Semaphore) -> None:
        """Connect, authenticate, subscribe; on failure note why."""
        options = self.options
        async with gate:
            started = time.monotonic()
            try:
                by_protocol = options.auth == "subprotocol"
                self.ws = await connect(
                    options.url,
                    subprotocols=[Subprotocol("bearer"), Subprotocol(self.token)]
                    if by_protocol
                    else None,
                    proxy=None,
                    open_timeout=options.open_timeout,
                    max_queue=None,
                )
                if not by_protocol:
                    await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
                await self.ws.send(json.dumps({"type": "subscribe", "panelIds": [options.panel]}))
                async with asyncio.timeout(options.open_timeout):
                    while True:
                        message = json.loads(await self.ws.recv())
                        if message["type"] == "subscribed":
                            break
                        if message["type"] == "error":
                            raise RuntimeError(f"subscribe refused: {message}")
                        self.other[message["type"]] += 1
            except Exception as exc:
                self.failure = _describe(exc)
                if self.ws is not None:
                    with contextlib.suppress(Exception):
                        await self.ws.close()
                self.ws = None
                self.complete.set()
                return
            self.connect_ms = (time.monotonic() - started) * 1000

    async def listen(self) -> None:
        """Note the arrival time of each of the benchmark's changes until all have come."""
        ws = self.ws
        if ws is None:
            return
        prefix = self.options.prefix
        try:
            while len(self.received) < self.options.changes:
                raw = await ws.recv()
                now = time.monotonic()
                message = json.loads(raw)
                kind = message.get("type")
                name = (message.get("change") or {}).get("newValues", {}).get("name")
                if kind == "change" and isinstance(name, str) and name.startswith(prefix):
                    self.received.setdefault(name, now)
                else:
                    self.other[str(kind)] += 1
                    SAMPLES.setdefault(str(kind), (now, raw[:400]))
        except ConnectionClosed as exc:
            self.closed = _describe(exc)
        finally:
            self.complete.set()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd or exc.sent
        if frame is not None:
            return f"closed {frame.code} {frame.reason}".strip()
        return "closed without a close frame"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


async def stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(options: argparse.Namespace) -> None:
    token = os.environ["BENCH_WS_TOKEN"]
    gate = asyncio.Semaphore(options.concurrency)
    clients = [Client(i, options, token) for i in range(options.clients)]
    started = time.monotonic()
    await asyncio.gather(*(client.open(gate) for client in clients))
    connect_s = time.monotonic() - started
    listeners = [asyncio.create_task(client.listen()) for client in clients]
    connected = [c for c in clients if c.ws is not None]
    failures = Counter(c.failure for c in clients if c.failure)
    _write_json(
        Path(options.ready),
        {
            "pid": os.getpid(),
            "clients": len(clients),
            "connected": len(connected),
            "failed": len(clients) - len(connected),
            "failures": dict(failures),
            "connect_s": round(connect_s, 3),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        },
    )

    commands = await stdin_lines()
    await commands.readline()  # "end" (or EOF): the writes are over
    # The writes are over; give the missing deliveries a little longer.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(options.grace):
            await asyncio.gather(*(c.complete.wait() for c in connected))
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    received: dict[str, list[float]] = {}
    other: Counter[str] = Counter()
    for client in clients:
        for name, at in client.received.items():
            received.setdefault(name, []).append(at)
        other.update(client.other)
    closed = Counter(c.closed for c in clients if c.closed)
    result = {
        "pid": os.getpid(),
        "clients": len(clients),
        "connected": len(connected),
        "failed": len(clients) - len(connected),
        "failures": dict(failures),
        "closed": sum(closed.values()),
        "close_reasons": dict(closed),
        "connect_s": round(connect_s, 3),
        "connect_ms": sorted(round(c.connect_ms, 2) for c in connected if c.connect_ms),
        "complete": sum(1 for c in connected if len(c.received) >= options.changes),
        "received": received,
        "other_messages": dict(other),
        "other_samples": {k: [at, str(raw)] for k, (at, raw) in SAMPLES.items()},
    }
    _write_json(Path(options.out), result)
    await commands.readline()  # "close" (or EOF)
    await asyncio.gather(
        *(c.ws.close() for c in connected if c.ws is not None), return_exceptions=True
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all (the runner polls for the file)."""
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(data))
    partial.replace(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner.ws_client")
    parser.add_argument("--url", required=True, help="ws://host:port/api/ws")
    parser.add_argument("--panel", type=int, required=True, help="the panel id to subscribe to")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--changes", type=int, required=True, help="changes each client awaits")
    parser.add_argument("--prefix", required=True, help="the new names of those changes")
    parser.add_argument("--ready", required=True, help="file written once all are subscribed")
    parser.add_argument("--out", required=True, help="file the results are written to")
    parser.add_argument("--auth", choices=["subprotocol", "message"], default="subprotocol")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes in flight")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--grace", type=float, default=10.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise_nofile_limit()
    arguments = parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(arguments))
    else:
        uvloop.run(main(arguments))
