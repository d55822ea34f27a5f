"""Ingest through `POST …/records`: 1,000,000 records in 16 MiB NDJSON requests, twice.

    uv run python -m benchmarks.ingest [--records 1000000] [--workers 1]

Starts PostgreSQL and Redis (embedded in a temporary folder, or DATABASE_URL / REDIS_URL) and
a real `panels serve` process, creates a panel with a `custom` source, then pushes synthetic
patient records in NDJSON bodies just under 16 MiB, one request after another: first into an
empty source (every record inserted), then the same bodies again (every record unchanged, so
nothing is rewritten). Prints records/s of each pass (request time only; the bodies are built
before each request) and the server's peak RSS growth over its RSS before the first push,
sampled every 50 ms from /proc over all its worker processes. The CPU seconds of the service,
of PostgreSQL and of everything else on the machine during each pass tell a slow pass on a
busy machine from a slow service.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from benchmarks.runner.common import HOST, log
from benchmarks.runner.measure import CpuMeter, rss_mb
from benchmarks.runner.services import Server, free_port, start_backing

MAX_BODY = 16 * 1024 * 1024
WARDS = [f"W{n}" for n in range(1, 13)]
NAMES = ["Ada", "Bo", "Cy", "Di", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lia"]


def patient(n: int, rng: random.Random) -> bytes:
    record = {
        "id": f"MRN{n:08d}",
        "name": f"{rng.choice(NAMES)} {rng.choice(NAMES)}son",
        "born": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "ward": rng.choice(WARDS),
        "riskScore": round(rng.random() * 100, 2),
        "admitted": rng.random() < 0.3,
        "vitals": {"hr": rng.randint(50, 130), "spo2": rng.randint(85, 100)},
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def bodies(records: int, seed: int) -> Iterator[tuple[bytes, int]]:
    """NDJSON bodies just under the route's limit, with their record counts; deterministic."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    size = 0
    for n in range(records):
        line = patient(n, rng)
        if size + len(line) > MAX_BODY:
            yield b"".join(lines), len(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield b"".join(lines), len(lines)


class RssSampler:
    """The peak of the summed VmRSS of the server's workers, sampled in a thread."""

    def __init__(self, server: Server, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> float:
        return sum(rss_mb(pid) or 0.0 for pid in self.server.worker_pids())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    token: str,
    body: bytes,
    media_type: str = "application/json",
) -> dict[str, int]:
    conn.request(
        method,
        path,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": media_type},
    )
    response = conn.getresponse()
    content = response.read()
    if response.status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {response.status} {content[:300]!r}")
    result: dict[str, int] = json.loads(content)
    return result


def push_all(
    conn: http.client.HTTPConnection, url: str, token: str, records: int
) -> tuple[float, dict[str, int]]:
    """Seconds spent in requests, and the summed counts."""
    elapsed = 0.0
    totals: dict[str, int] = {}
    for body, count in bodies(records, seed=7):
        started = time.perf_counter()
        counts = call(conn, "POST", url, token, body, "application/x-ndjson")
        elapsed += time.perf_counter() - started
        assert counts["recordsProcessed"] == count, counts
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value
    return elapsed, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    from panels.platform.auth import mint_token
    from panels.settings import Settings

    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pbench-ingest-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        backing = start_backing(stack, workdir)
        secret = secrets.token_urlsafe(48)
        env = {
            **os.environ,
            "DATABASE_URL": backing.database_url,
            "REDIS_URL": backing.redis_url,
            "JWT_SECRET": secret,
            "RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "PANELS_DATA_DIR": str(workdir / "service"),
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        panels_bin = str(Path(sys.executable).with_name("panels"))
        argv = [panels_bin, "serve", "--workers", str(args.workers)]
        argv += ["--host", HOST, "--port", str(port)]
        server = Server("service", argv, env, port, workdir / "service.log", args.workers)
        stack.callback(server.stop)
        server.start()
        server.wait_ready()
        settings = Settings.from_env(env)
        token = mint_token(
            settings.jwt,
            tenant="bench-ingest",
            user="bench",
            role="builder",
            ttl=timedelta(hours=2),
        )
        conn = http.client.HTTPConnection(HOST, port, timeout=600)
        panel = call(conn, "POST", "/api/panels", token, b'{"name":"Ingest"}')
        source = call(
            conn, "POST", f"/api/panels/{panel['id']}/datasources", token, b'{"type":"custom"}'
        )
        url = f"/api/panels/{panel['id']}/datasources/{source['id']}/records"
        meter = CpuMeter()
        assert server.proc is not None
        meter.roots["service"] = server.proc.pid
        if backing.postgres_pid is not None:
            meter.roots["postgres"] = backing.postgres_pid
        with RssSampler(server) as sampler:
            time.sleep(0.2)
            baseline = sampler.current()
            log(f"server RSS before the first push: {baseline:.1f} MB")
            results = []
            for label in ("first load", "unchanged re-push"):
                start = meter.snapshot()
                seconds, totals = push_all(conn, url, token, args.records)
                cpu = meter.since(start)
                rate = totals["recordsProcessed"] / seconds
                results.append((label, seconds, rate, cpu))
                log(f"{label}: {rate:,.0f} records/s ({seconds:.1f} s) {totals} CPU s {cpu}")
        growth = sampler.peak - baseline
        print()
        print(
            f"| pass ({args.records:,} records, 16 MiB NDJSON requests) | seconds | records/s"
            " | CPU s: service | CPU s: PostgreSQL | CPU s: other work on the machine |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for label, seconds, rate, cpu in results:
            print(
                f"| {label} | {seconds:.1f} | {rate:,.0f} | {cpu['service']:.1f}"
                f" | {cpu.get('postgres', 0.0):.1f} | {cpu['others']:.1f} |"
            )
        print(f"\nserver peak RSS growth: {growth:.1f} MB (from {baseline:.1f} MB)")
        print("targets: >= 50,000 records/s, RSS growth < 150 MB")


if __name__ == "__main__":
    main()
