"""The realtime scenario: change delivery to many WebSocket clients of one panel.

Client processes (`ws_client.py`) open the sockets and subscribe to one panel; the runner then
renames the panel through the REST API at a steady pace, and every client notes when each
change reached it. Latency = that moment minus the moment just before the PUT was sent
(CLOCK_MONOTONIC, shared by every process of the machine).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runner.common import HOST, REPO, log
from benchmarks.runner.httpclient import Http
from benchmarks.runner.measure import established_connections, nofile_limit, rss_mb
from benchmarks.runner.scenarios import cpu_meter
from benchmarks.runner.services import Backing, Server, redis_publish_calls

READY_TIMEOUT_S = 180.0
GRACE_S = 10.0
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process


@dataclass
class RealtimeSettings:
    clients: int
    changes: int
    interval_ms: int
    processes: int


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def _spread(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Clients:
    """The client processes; stopped (killed if need be) whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[tuple[Path, Path, Path]] = []  # ready, out, log

    def start(self, argv: list[str], count: int, token: str) -> None:
        index = len(self.procs)
        ready = self.workdir / f"ws-client-{index}.ready.json"
        out = self.workdir / f"ws-client-{index}.out.json"
        log_path = self.workdir / f"ws-client-{index}.log"
        argv = [*argv, "--clients", str(count), "--ready", str(ready), "--out", str(out)]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.runner.ws_client", *argv],
                cwd=REPO,
                env={**os.environ, "BENCH_WS_TOKEN": token, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.files.append((ready, out, log_path))

    def wait_ready(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            if all(ready.exists() for ready, _, _ in self.files):
                return [json.loads(ready.read_text()) for ready, _, _ in self.files]
            for proc, (_, _, log_path) in zip(self.procs, self.files, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"a WebSocket client exited early:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"WebSocket clients not subscribed after {timeout:.0f}s")
            time.sleep(0.1)

    def tell(self, line: bytes) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.write(line)
                proc.stdin.flush()

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        """What each client process received (it writes that once all arrived, or on time)."""
        deadline = time.monotonic() + timeout
        while not all(out.exists() for _, out, _ in self.files):
            for proc, (_, out, log_path) in zip(self.procs, self.files, strict=True):
                if proc.poll() is not None and not out.exists():
                    raise RuntimeError(
                        f"a WebSocket client failed (exit {proc.returncode}):\n{_tail(log_path)}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError("WebSocket clients did not report their deliveries")
            time.sleep(0.05)
        return [json.loads(out.read_text()) for _, out, _ in self.files]

    def close(self, timeout: float) -> None:
        """Let the clients close their sockets and exit."""
        self.tell(b"close\n")
        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
        for proc, (_, _, log_path) in zip(self.procs, self.files, strict=True):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"WARNING: a WebSocket client did not exit:\n{_tail(log_path)}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_publish_quiet(
    redis_url: str, since: tuple[float, int] | None, quiet_s: float = 1.0, timeout: float = 120.0
) -> dict[str, Any]:
    """Wait until Redis has run no PUBLISH for `quiet_s`.

    The service announces changes after commit from a queue per worker; after a write-heavy
    scenario that queue may still be draining, and a change made now would wait behind it.
    `since`: (time.monotonic(), PUBLISH count) when the last writes ended. Returns how many
    announcements went out after that, and when the last one did.
    """
    started = time.monotonic()
    last = redis_publish_calls(redis_url)
    at, first = since if since is not None else (started, last)
    last_change = at
    quiet_since = started
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() - started < timeout:
        time.sleep(0.1)
        now = redis_publish_calls(redis_url)
        if now != last:
            last, quiet_since = now, time.monotonic()
            last_change = quiet_since
    return {
        "publishes_after_writes": last - first,
        "last_publish_s_after_writes": round(last_change - at, 2),
        "waited_s": round(time.monotonic() - started, 2),
        "quiet": time.monotonic() - quiet_since >= quiet_s,
    }


def measure_realtime(
    server: Server,
    backing: Backing,
    token: str,
    tenant: str,
    workdir: Path,
    settings: RealtimeSettings,
    writes_ended: tuple[float, int] | None = None,
) -> dict[str, Any]:
    """Run the scenario against a started service; return its figures (or why it failed).

    `writes_ended`: (time.monotonic(), Redis PUBLISH count) when the last wrk writes ended.
    """
    started = time.monotonic()
    drain = wait_publish_quiet(backing.redis_url, writes_ended)
    log(
        f"realtime: {drain['publishes_after_writes']} announcements (Redis PUBLISH) went out "
        f"after the earlier writes ended, the last {drain['last_publish_s_after_writes']}s after"
    )
    log_offset = server.log_size()
    http = Http(server.port)
    clients = _Clients(workdir)
    try:
        result = _measure(server, backing, token, tenant, settings, http, clients, log_offset)
        return {"announcement_backlog_before": drain, **result}
    except Exception as exc:  # the other scenarios' report is still worth writing
        log(f"WARNING: the realtime scenario failed: {exc}")
        return {
            "announcement_backlog_before": drain,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "settings": settings.__dict__,
            "server_errors": server.error_summary(start=log_offset),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    finally:
        clients.stop()
        http.close()


def _measure(
    server: Server,
    backing: Backing,
    token: str,
    tenant: str,
    settings: RealtimeSettings,
    http: Http,
    clients: _Clients,
    log_offset: int,
) -> dict[str, Any]:
    body = json.dumps({"name": "Realtime bench panel", "metadata": {"source": "bench"}})
    status, _, content = http.request("POST", "/api/panels", token, body)
    if status != 201:
        raise RuntimeError(f"POST /api/panels answered {status}: {content[:300]!r}")
    panel_id = int(json.loads(content)["id"])
    prefix = f"rt-{secrets.token_hex(3)}-"
    workers = server.worker_pids()
    limits = {str(pid): nofile_limit(pid) for pid in workers}
    before = established_connections(server.port, workers)
    # Worst case, one worker accepts every socket: it needs that many descriptors and more.
    short = [
        pid
        for pid, (soft, _) in limits.items()
        if soft is not None and soft < settings.clients + 200
    ]
    if short:
        log(
            f"WARNING: RLIMIT_NOFILE of workers {short} may be too low "
            f"for {settings.clients} sockets"
        )

    counts = _spread(settings.clients, settings.processes)
    log(
        f"realtime: {settings.clients} WebSocket clients in {len(counts)} processes, "
        f"subscribing to panel {panel_id} of {tenant}"
    )
    argv = ["--url", f"ws://{HOST}:{server.port}/api/ws", "--panel", str(panel_id)]
    argv += ["--changes", str(settings.changes), "--prefix", prefix, "--grace", str(GRACE_S)]
    argv += ["--concurrency", str(CONNECT_CONCURRENCY)]
    connect_started = time.monotonic()
    for count in counts:
        clients.start(argv, count, token)
    ready = clients.wait_ready(READY_TIMEOUT_S)
    connect_s = time.monotonic() - connect_started
    connected = sum(r["connected"] for r in ready)
    after = established_connections(server.port, workers)
    per_worker = {str(pid): after.get(pid, 0) - before.get(pid, 0) for pid in workers}
    rss_open = {str(pid): rss_mb(pid) for pid in workers}
    log(
        f"realtime: {connected}/{settings.clients} subscribed in {connect_s:.1f}s; "
        f"sockets per worker {per_worker}"
    )

    meter = cpu_meter(server, backing)
    for i, proc in enumerate(clients.procs):
        meter.roots[f"client{i}"] = proc.pid
    cpu_start = meter.snapshot()
    sent: dict[str, float] = {}
    puts: list[dict[str, Any]] = []
    interval = settings.interval_ms / 1000
    first = time.monotonic()
    for i in range(settings.changes):
        time.sleep(max(0.0, first + i * interval - time.monotonic()))
        name = f"{prefix}{i:03d}"
        body = json.dumps({"name": name})
        at = time.monotonic()
        status, _, content = http.request("PUT", f"/api/panels/{panel_id}", token, body)
        done = time.monotonic()
        sent[name] = at
        puts.append({"name": name, "status": status, "ms": round((done - at) * 1000, 2)})
        if status != 200:
            log(f"  WARNING: PUT answered {status}: {content[:200]!r}")
    writes_s = time.monotonic() - first
    clients.tell(b"end\n")
    results = clients.collect(timeout=GRACE_S + 60)
    # Measured before the sockets close: the figures cover connecting nothing, closing nothing.
    cpu = meter.since(cpu_start)
    clients.close(timeout=60)

    latencies: list[float] = []
    per_change: list[dict[str, Any]] = []
    for name, at in sent.items():
        arrivals = sorted(
            (t - at) * 1000 for result in results for t in result["received"].get(name, [])
        )
        latencies.extend(arrivals)
        per_change.append(
            {
                "name": name,
                "delivered": len(arrivals),
                "p50_ms": _round(percentile(arrivals, 0.5)),
                "max_ms": _round(arrivals[-1] if arrivals else None),
            }
        )
    latencies.sort()
    connect_ms = sorted(ms for result in results for ms in result["connect_ms"])
    put_ms = sorted(p["ms"] for p in puts)
    delivered = len(latencies)
    client_cpu = sum(v for k, v in cpu.items() if k.startswith("client"))
    failures: dict[str, int] = {}
    closes: dict[str, int] = {}
    other: dict[str, int] = {}
    for result in results:
        for target, source in (
            (failures, result["failures"]),
            (closes, result["close_reasons"]),
            (other, result["other_messages"]),
        ):
            for key, count in source.items():
                target[key] = target.get(key, 0) + count
    log(
        f"  realtime: delivered {delivered:,}/{settings.clients * settings.changes:,}, "
        f"p50 {_round(percentile(latencies, 0.5))} ms, p99 {_round(percentile(latencies, 0.99))} "
        f"ms, max {_round(latencies[-1] if latencies else None)} ms"
    )
    return {
        "settings": settings.__dict__,
        "panel_id": panel_id,
        "tenant": tenant,
        "auth": "subprotocol bearer, <token>",
        "client_processes": len(counts),
        "connect_concurrency_per_process": CONNECT_CONCURRENCY,
        "clients_per_process": counts,
        "client_nofile": [r["nofile"] for r in ready],
        "connected": connected,
        "failed": settings.clients - connected,
        "connect_failures": failures,
        "closed": sum(closes.values()),
        "close_reasons": closes,
        "connect_s": round(connect_s, 2),
        "connect_ms": {
            "p50": _round(percentile(connect_ms, 0.5)),
            "p99": _round(percentile(connect_ms, 0.99)),
            "max": _round(connect_ms[-1] if connect_ms else None),
        },
        "server_sockets_per_worker": per_worker,
        "server_nofile_per_worker": limits,
        "server_nofile_maybe_short": short,
        "worker_rss_mb_with_sockets_open": rss_open,
        "changes": settings.changes,
        "writes_s": round(writes_s, 2),
        "put_status": _count(str(p["status"]) for p in puts),
        "put_ms": {
            "p50": _round(percentile(put_ms, 0.5)),
            "max": _round(put_ms[-1] if put_ms else None),
        },
        "expected": settings.clients * settings.changes,
        "expected_connected": connected * settings.changes,
        "delivered": delivered,
        "clients_with_every_change": sum(r["complete"] for r in results),
        "latency_ms": {
            "min": _round(latencies[0] if latencies else None),
            "p50": _round(percentile(latencies, 0.5)),
            "p90": _round(percentile(latencies, 0.9)),
            "p99": _round(percentile(latencies, 0.99)),
            "max": _round(latencies[-1] if latencies else None),
        },
        "per_change": per_change,
        "other_messages": other,
        "other_samples": {
            kind: sample
            for result in reversed(results)
            for kind, sample in result.get("other_samples", {}).items()
        },
        "cpu_s": cpu,
        "cpu_us_per_delivery": {
            "server": round(cpu["server"] * 1e6 / max(delivered, 1)),
            "clients": round(client_cpu * 1e6 / max(delivered, 1)),
        },
        "server_errors": server.error_summary(start=log_offset),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
